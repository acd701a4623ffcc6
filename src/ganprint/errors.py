"""The one exception type that the CLI turns into a one-line message and a non-zero exit."""


class GanprintError(Exception):
    """A user-facing error: bad input, a wrong file, a mismatched model. Its message is one line."""


class BadImageError(GanprintError):
    """One image could not be read or converted; folders skip these unless --strict."""
