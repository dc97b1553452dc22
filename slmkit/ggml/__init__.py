"""llama.cpp's quantization grids: block layouts, byte packing and the reference quantizers (torch-only)."""
