"""Errors a user can act on.

A ``UserError`` is bad input: the CLI prints its message (one paragraph naming the thing and
the fix) and exits with code 2, without a traceback.
"""

from __future__ import annotations

EXIT_USAGE = 2


class UserError(Exception):
    """Bad input from the user: printed as one paragraph, exit code 2."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(f"{what} {fix}")
        self.what = what
        self.fix = fix


class Unsupported(Exception):
    """Raised by a workload or backend when the device cannot run it (recorded, not a crash)."""
