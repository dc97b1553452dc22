"""Model loading, architecture anatomy and saving."""
