"""The nn modules compressed models are made of (packed quantized, factorized), which layouts restore."""
