"""Validation of result files and run manifests: schema, then the document's own hash.

Files are read with ``bench.jsonio.read_json_file``: a FIFO, a device, a symlink out of the
directory that was named, an oversized or malformed document is an invalid file with its
reason, never a hang, a crash or a traceback, and never takes the other files with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.ids import MANIFEST_FILE
from bench.jsonio import (
    HASH_FIELD,
    UnreadableDocument,
    body_sha256,
    parse_json_document,
    read_document_bytes,
)
from bench.schema import SchemaProblem, validation_errors

KIND_SCHEMAS = {"bench.result": "result", "bench.manifest": "manifest", "bench.audit": "audit",
                "bench.published": "published"}
SEALED = ("result", "audit", "published")  # documents that carry their own sha256


@dataclass
class FileReport:
    path: Path
    schema: str | None
    problems: list[SchemaProblem] = field(default_factory=list)
    doc: Any = None

    @property
    def ok(self) -> bool:
        return not self.problems


def schema_for(doc: Any, path: Path) -> str:
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if isinstance(kind, str) and kind in KIND_SCHEMAS:
        return KIND_SCHEMAS[kind]
    return "manifest" if path.name == MANIFEST_FILE else "result"


def validate_document(doc: Any, path: Path) -> FileReport:
    schema = schema_for(doc, path)
    report = FileReport(path, schema, validation_errors(doc, schema), doc)
    if report.ok and schema in SEALED:
        expected = body_sha256(doc)
        if doc.get(HASH_FIELD) != expected:
            report.problems.append(SchemaProblem(
                f"$.{HASH_FIELD}", "integrity",
                f"sha256 {doc.get(HASH_FIELD)!r} does not match the body's {expected!r}: the "
                "document was changed after it was written"))
    return report


def validate_file(path: Path, root: Path | None = None) -> FileReport:
    """Read and validate one file; ``root``: the directory it was found in (it must not
    lead out of it)."""
    try:
        data = read_document_bytes(path, root)
    except UnreadableDocument as exc:
        return FileReport(path, None, [SchemaProblem("$", exc.rule, str(exc))])
    return validate_bytes(data, path)


def validate_bytes(data: bytes, path: Path) -> FileReport:
    """Validate a document's bytes as read from ``path`` (the results store keeps the bytes it
    validated, so what it stores is exactly what passed)."""
    try:
        doc = parse_json_document(data)
    except UnreadableDocument as exc:
        return FileReport(path, None, [SchemaProblem("$", exc.rule, str(exc))])
    return validate_document(doc, path)


@dataclass(frozen=True)
class Found:
    """A file to read, and the directory it was found in (None: named directly)."""

    path: Path
    root: Path | None = None


def find_files(paths: Iterable[Path]) -> list[Found]:
    """Files as given; directories become their ``*.json`` files, recursively (symlinked
    directories are not followed), each with that directory as its root, except that a run
    directory (one holding ``manifest.json``) gives only its top-level files: what lies below
    it (a Slurm run's per-node results, its job files) is the raw material its own results
    were gathered from, not more results."""
    out: list[Found] = []
    for path in paths:
        if not path.is_dir():
            out.append(Found(path))
            continue
        for folder, subdirs, files in os.walk(path):
            # a directory (or a symlink to one) named *.json is reported, not skipped
            out.extend(Found(Path(folder) / f, path) for f in sorted([*files, *subdirs])
                       if f.endswith(".json") and not f.startswith("."))
            if "manifest.json" in files:
                subdirs.clear()
            # a hidden directory is work in progress (an import being written), not results
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
    return out


def expand(paths: Iterable[Path]) -> list[Path]:
    """The files ``find_files`` finds."""
    return [f.path for f in find_files(paths)]


def listing_problems(manifest: FileReport, reports: dict[Path, FileReport]) -> list[SchemaProblem]:
    """What a valid manifest lists that is not so: a result file missing from its directory,
    or one whose own sha256 is not the one listed (``reports``: the files validated with it;
    a listed file not among them is only checked to be there)."""
    out = []
    for i, entry in enumerate(manifest.doc.get("entries") or []):
        name = entry.get("file")
        if not name:
            continue
        path = manifest.path.parent / name
        where = f"$.entries[{i}].file"
        other = reports.get(path)
        if other is None and not path.is_file():
            out.append(SchemaProblem(where, "listed_file", f"lists {name}, which is not in "
                                     f"{manifest.path.parent}: the run is missing a result"))
        elif other is not None and other.ok and isinstance(other.doc, dict) and \
                other.doc.get(HASH_FIELD) != entry.get("sha256"):
            out.append(SchemaProblem(f"$.entries[{i}].sha256", "listed_file",
                                     f"lists {name} with sha256 {entry.get('sha256')}, the "
                                     f"file's own is {other.doc.get(HASH_FIELD)}: it was "
                                     "replaced after the run"))
    return out
