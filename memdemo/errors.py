"""The base class of errors a person can cause and fix; the CLI and the app show their message, not a traceback."""


class MemdemoError(Exception):
    """A problem with input, files or setup whose message names the fix."""
