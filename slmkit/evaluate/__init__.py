"""Perplexity, efficiency profile, zero-shot tasks, trust suite and reports."""
