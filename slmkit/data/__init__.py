"""Text corpora, calibration sampling, task files and instruction data."""
