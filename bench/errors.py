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


MESSAGE_LIMIT = 300


def cut(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to about ``limit`` characters, keeping its start and its end.

    Messages quote values read from files (jsonschema quotes the whole offending value): a
    300 MB document must give a message of a line, not of 300 MB. The end is kept because
    that is where jsonschema says what was wrong ("... is not of type 'number'")."""
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 3, limit // 3
    return f"{text[:head]} ...[{len(text) - head - tail} characters cut]... {text[-tail:]}"
