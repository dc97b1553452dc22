"""The one exception type users see: printed as a single line, never as a traceback."""


class SlmError(Exception):
    """A problem with the user's input or environment, described in one line."""
