"""Progress events: the line protocol between a measuring process and the one that started it.

A child process (a repeat, a rank) writes each event as one line on stdout, a JSON object
behind ``PROGRESS_PREFIX``; whoever reads its output passes the events on and keeps every
other line for the error message. torchrun prefixes its ranks' lines, so the prefix is looked
for anywhere in the line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable

from bench.documents import ProgressEvent

PROGRESS_PREFIX = "@@bench-progress "


def emit_progress(event: ProgressEvent) -> None:
    sys.stdout.write(PROGRESS_PREFIX + json.dumps(event) + "\n")
    sys.stdout.flush()


def parse_progress(line: str) -> ProgressEvent | None:
    """The event a line carries, or None for an ordinary output line."""
    at = line.find(PROGRESS_PREFIX)
    if at < 0:
        return None
    try:
        event = json.loads(line[at + len(PROGRESS_PREFIX):])
    except ValueError:
        return None
    return event if isinstance(event, dict) else None  # type: ignore[return-value]  # JSON


def relay(lines: Iterable[str], on_progress: Callable[[ProgressEvent], None],
          keep: Callable[[str], None]) -> None:
    """Pass a process's events on and hand every other line (without its newline) to
    ``keep``, until its output ends."""
    for line in lines:
        event = parse_progress(line)
        if event is not None:
            on_progress(event)
        else:
            keep(line.rstrip("\n"))
