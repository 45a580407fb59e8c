"""The one exception type users see: a bad input, said in one line with its fix."""


class UsageError(Exception):
    """Bad input or environment. The CLI prints the message as one line and exits with code 2."""
