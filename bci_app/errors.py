"""What kind of failure an error is: :class:`UserError` is a problem the user can fix (a setting,
an argument, a file, a stream) and its message says how; the command line prints it and exits
with 2. Any other exception is a bug: one line, exit 1, and ``--debug`` shows the traceback."""

from __future__ import annotations

__all__ = ["InvalidArgument", "UserError"]


class UserError(Exception):
    """A problem with the user's input or environment; the message names it and the fix."""


class InvalidArgument(UserError, ValueError):
    """A public argument out of its allowed range (the message says what is allowed)."""
