"""Names that become paths: one pattern, checked in one place.

A run id names a directory (``results/<run-id>/``, ``audits/<run-id>-audit-.../``), an entry
id names a result file (``<entry-id>.json``) and a chart (``timeline-<entry-id>.svg``). They
come from suite files, the command line and, in the report and the audit, from documents
someone else wrote. Every one is checked against ``PATH_ID`` before it is joined to a
directory, and the schemas carry the same pattern (tests/test_hostile_inputs.py fails when
they disagree), so a submitted ``../../x`` or ``/etc/x`` is invalid input, never a path.

The run's own files share the run directory with the results; their names are reserved, so
no entry can be called ``manifest`` and have its result overwritten by the manifest.

A run label (``--label``) is a display name, not a path: it may hold spaces and ``/`` and
never becomes part of a file name.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.errors import UserError

# Letters, digits and ._- only, starting with a letter or digit (so never "", "." or "..",
# never hidden, never an option), at most 128 characters (a file name has 255 bytes; the
# longest name made from an id, ".<id>.json.XXXXXXXX.tmp", stays well under that).
PATH_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
# The files a run writes into its directory besides one <entry-id>.json per entry.
MANIFEST_FILE = "manifest.json"
RUN_FILES = (MANIFEST_FILE,)
# Entry ids that would name one of those files (the schemas list them under "not").
RESERVED_IDS = tuple(sorted(Path(name).stem for name in RUN_FILES))
LABEL = r"^[A-Za-z0-9][A-Za-z0-9 ._+@:/-]{0,63}$"

_PATH_ID = re.compile(PATH_ID)
_LABEL = re.compile(LABEL)
RULE = "1 to 128 letters, digits or ._- starting with a letter or digit"


def id_problem(value: object) -> str | None:
    """Why ``value`` cannot name a file or directory (None when it can)."""
    if not isinstance(value, str):
        return f"{value!r} is not a string"
    if not _PATH_ID.fullmatch(value):
        return f"{_quoted(value)} is not {RULE}"
    return None


def entry_id_problem(value: object) -> str | None:
    """Why ``value`` cannot be an entry id (a path id that is not one of the run's files)."""
    problem = id_problem(value)
    if problem is None and value in RESERVED_IDS:
        return (f"{value!r} is reserved: {value}.json is the run's own file "
                f"(reserved ids: {', '.join(RESERVED_IDS)})")
    return problem


def check_run_id(value: str) -> str:
    problem = id_problem(value)
    if problem:
        raise UserError(f"Run id {problem}.",
                        "Leave out --run-id (one is made from the time, vendor and suite) or "
                        "give e.g. --run-id lab1-a100-smoke.")
    return value


def check_label(label: str) -> str:
    """A run label names a device configuration in reports: short, printable, no quotes."""
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise UserError(f"Run label {_quoted(str(label))} is not usable.",
                        "Use 1 to 64 letters, digits, spaces or ._+@:/- (starting with a "
                        "letter or digit), e.g. --label 'cpu 1 thread'.")
    return label


def slug(text: str, fallback: str = "run") -> str:
    """``text`` made into a path id (other characters become ``-``), e.g. a suite file's stem
    in a run id; ``fallback`` when nothing usable is left."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-._")[:64]
    return cleaned if cleaned and _PATH_ID.fullmatch(cleaned) else fallback


def result_file(entry_id: str) -> str:
    """The file name of an entry's result; refuses an id that is not an entry id."""
    problem = entry_id_problem(entry_id)
    if problem:
        raise ValueError(f"entry id {problem}")
    return f"{entry_id}.json"


def inside(root: Path, name: str) -> Path:
    """``root / name`` for a single path id ``name``; anything else is refused, so a name
    read from a document can never leave ``root``."""
    if "/" in name or "\0" in name or name in ("", ".", ".."):
        raise ValueError(f"{_quoted(name)} cannot name a file in {root}")
    return root / name


def _quoted(value: str, limit: int = 80) -> str:
    """``repr`` of a value for a message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(value)} characters)"
