"""The package version, read by packaging (pyproject.toml) and recorded in every manifest."""

__version__ = "0.1.0"
