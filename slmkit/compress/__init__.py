"""Obtaining a small model from a bigger one: pruning, quantization, low-rank factorization."""
