"""Weight quantization: RTN, GPTQ, AWQ, SmoothQuant, and the packed QuantLinear they produce."""
