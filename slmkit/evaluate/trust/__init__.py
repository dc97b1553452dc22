"""Trustworthiness evaluations: calibration, robustness, truthfulness, bias, privacy."""
