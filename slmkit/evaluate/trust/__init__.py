"""Trustworthiness evaluations: calibration, robustness, truthfulness, bias, privacy."""

SUITES = ("calibration", "robustness", "truthfulness", "bias", "privacy")  # the names `--trust` and recipes accept
