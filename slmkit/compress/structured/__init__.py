"""Structured compression that makes models genuinely smaller: fewer layers, narrower layers, low-rank Linears."""
