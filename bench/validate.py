"""Validation of result files and run manifests: schema, then the document's own hash."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.jsonio import HASH_FIELD, body_sha256
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
    if kind in KIND_SCHEMAS:
        return KIND_SCHEMAS[kind]
    return "manifest" if path.name == "manifest.json" else "result"


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


def validate_file(path: Path) -> FileReport:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return FileReport(path, None, [SchemaProblem("$", "readable", str(exc))])
    return validate_bytes(data, path)


def validate_bytes(data: bytes, path: Path) -> FileReport:
    """Validate a document's bytes as read from ``path`` (the results store keeps the bytes it
    validated, so what it stores is exactly what passed)."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return FileReport(path, None, [SchemaProblem("$", "json", f"not JSON: {exc}")])
    return validate_document(doc, path)


def expand(paths: Iterable[Path]) -> list[Path]:
    """Files as given; directories become their ``*.json`` files, recursively, except that a
    run directory (one holding ``manifest.json``) gives only its top-level files: what lies
    below it (a Slurm run's per-node results, its job files) is the raw material its own
    results were gathered from, not more results."""
    out: list[Path] = []
    for path in paths:
        if not path.is_dir():
            out.append(path)
            continue
        for folder, subdirs, files in os.walk(path):
            if "manifest.json" in files:
                subdirs.clear()
            subdirs.sort()
            out.extend(Path(folder) / f for f in sorted(files)
                       if f.endswith(".json") and not f.startswith("."))
    return out
