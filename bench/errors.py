"""Errors a user can act on.

A ``UserError`` is bad input: the CLI prints its message (one paragraph naming the thing and
the fix) and exits with code 2, without a traceback.
"""

from __future__ import annotations

import re

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


# C0 and C1 controls (ESC starts a terminal escape sequence), DEL, and the bidirectional
# overrides that make text read differently from what it is.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, newlines: bool = False) -> str:
    """``text`` safe to print on a terminal or in a text report: control characters (an
    escape sequence in a stored name would be run by the terminal) written as ``\\x1b``,
    ``\\u202e``; tab kept, newlines kept only with ``newlines``."""
    out = _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"),
                           str(text))
    return out if newlines else out.replace("\n", "\\n").replace("\t", " ")
