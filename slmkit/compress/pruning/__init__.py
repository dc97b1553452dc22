"""Weight pruning: which weights to zero, and in which pattern."""
