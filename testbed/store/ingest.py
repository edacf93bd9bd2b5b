"""Adding documents: validated as the report validates them, stored once, byte for byte.

A file is read once; its bytes are hashed (the document's address, so adding it again is a
no-op) and validated (``bench.validate.validate_bytes``: schema, then the document's own
sha256). An invalid or edited file is refused with the problems the report lists for it. A
result whose seal is already stored (the same result, re-formatted) is not stored twice.

Files are added in batches, each batch in one transaction; when another process added one of
them meanwhile (a shared PostgreSQL store), the batch is retried one document at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.errors import UserError
from bench.jsonio import UnreadableDocument, read_document_bytes
from bench.validate import FileReport, expand, validate_bytes
from testbed.store import tables as t
from testbed.store.rows import Extracted, Row, extract
from testbed.store.store import Store, compress, verified

BATCH_FILES = 200
PARALLEL_FROM = 100  # files per validating process (fewer: validated in this process)
VERDICT = "verdict.json"


@dataclass
class Refused:
    path: Path
    problems: list[str]


@dataclass
class AddSummary:
    """What ``add`` did with each file."""

    added: dict[str, int] = field(default_factory=dict)  # schema -> documents added
    present: list[Path] = field(default_factory=list)  # already stored (same bytes or seal)
    refused: list[Refused] = field(default_factory=list)
    runs: set[str] = field(default_factory=set)  # runs that got a document
    audits: list[str] = field(default_factory=list)  # doc ids of added verdicts

    @property
    def files(self) -> int:
        return sum(self.added.values()) + len(self.present) + len(self.refused)


@dataclass
class _Doc:
    path: Path
    data: bytes
    doc_id: str
    schema: str = ""
    doc: Any = None
    rows: Extracted | None = None


Validate = Callable[[list[_Doc]], list[FileReport]]


def candidate_files(paths: Iterable[Path]) -> list[Path]:
    """JSON files under ``paths``. In an audit directory (one with ``verdict.json``) only the
    verdict: the re-runs beside it are the auditor's measurements, not a submission."""
    paths = [Path(p) for p in paths]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise UserError(f"{missing[0]} does not exist.",
                        "Give run directories (results/<run-id>/), audit directories or "
                        "document files.")
    files = expand(paths)
    audit_dirs = {f.parent for f in files if f.name == VERDICT}
    return [f for f in files
            if f.name == VERDICT or not any(parent in audit_dirs for parent in f.parents)]


def add_paths(store: Store, paths: Iterable[Path],
              progress: Callable[[int, int], None] | None = None,
              jobs: int | None = None) -> AddSummary:
    """Add every document under ``paths`` (see the module docstring).

    Schema validation is most of the work (the database part is a few ms per document), so
    many files are validated by ``jobs`` processes (default: one per CPU)."""
    if store.read_only:
        raise RuntimeError("add_paths needs a store opened for writing")
    paths = [Path(p) for p in paths]
    files = candidate_files(paths)
    roots = [p for p in paths if p.is_dir()]
    summary = AddSummary()
    jobs = min(jobs or os.cpu_count() or 1, len(files) // PARALLEL_FROM + 1)
    with contextlib.ExitStack() as stack:
        validate: Validate = _validate_here
        if jobs > 1:
            pool = stack.enter_context(ProcessPoolExecutor(
                jobs, mp_context=multiprocessing.get_context("spawn")))

            def validate(docs: list[_Doc]) -> list[FileReport]:
                return list(pool.map(validate_bytes, [d.data for d in docs],
                                     [d.path for d in docs], chunksize=4))

        for start in range(0, len(files), BATCH_FILES):
            batch = []
            for path in files[start:start + BATCH_FILES]:
                doc = _read(path, summary, roots)
                if doc is not None:
                    batch.append(doc)
            _add_batch(store, batch, summary, validate)
            if progress:
                progress(min(start + BATCH_FILES, len(files)), len(files))
    return summary


def _validate_here(docs: list[_Doc]) -> list[FileReport]:
    return [validate_bytes(d.data, d.path) for d in docs]


def _read(path: Path, summary: AddSummary, roots: list[Path] | None = None) -> _Doc | None:
    """The file's bytes, read as ``validate`` reads them (bench.jsonio): a regular file within
    the size limit, not leading out of the directory it was found in."""
    root = next((r for r in roots or [] if path.is_relative_to(r)), None)
    try:
        data = read_document_bytes(path, root)
    except UnreadableDocument as exc:
        summary.refused.append(Refused(path, [f"$: {exc} (rule: {exc.rule})"]))
        return None
    return _Doc(path, data, hashlib.sha256(data).hexdigest())


def _add_batch(store: Store, batch: list[_Doc], summary: AddSummary,
               validate: Validate = _validate_here) -> None:
    if not batch:
        return
    try:
        with store.begin() as conn:
            outcome = _insert(conn, batch, validate)
    except sa.exc.IntegrityError:
        # Another writer stored some of these meanwhile: one transaction per document.
        outcome = _Outcome()
        for doc in batch:
            try:
                with store.begin() as conn:
                    one = _insert(conn, [doc], validate)
            except sa.exc.IntegrityError:
                one = _Outcome(present=[doc.path])
            outcome.merge(one)
    outcome.into(summary)


@dataclass
class _Outcome:
    added: list[_Doc] = field(default_factory=list)
    present: list[Path] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)

    def merge(self, other: _Outcome) -> None:
        self.added += other.added
        self.present += other.present
        self.refused += other.refused

    def into(self, summary: AddSummary) -> None:
        for doc in self.added:
            summary.added[doc.schema] = summary.added.get(doc.schema, 0) + 1
            if doc.rows and doc.rows.run:
                summary.runs.add(doc.rows.run["run_id"])
            if doc.schema == "audit":
                summary.audits.append(doc.doc_id)
        summary.present += self.present
        summary.refused += self.refused


def _insert(conn: sa.Connection, batch: list[_Doc],
            validate: Validate = _validate_here) -> _Outcome:
    out = _Outcome()
    ids = [d.doc_id for d in batch]
    stored = set(conn.execute(sa.select(t.documents.c.doc_id)
                              .where(t.documents.c.doc_id.in_(ids))).scalars())
    todo: list[_Doc] = []
    seen: set[str] = set()
    for doc in batch:
        if doc.doc_id in stored or doc.doc_id in seen:
            out.present.append(doc.path)
        else:
            seen.add(doc.doc_id)
            todo.append(doc)
    fresh: list[_Doc] = []
    for doc, report in zip(todo, validate(todo), strict=True):
        if not report.ok:
            out.refused.append(Refused(doc.path, [str(p) for p in report.problems]))
            continue
        doc.schema, doc.doc = report.schema or "", report.doc
        doc.rows = extract(doc.schema, doc.doc_id, doc.doc)
        fresh.append(doc)
    fresh = _drop_known_seals(conn, fresh, out)
    now = datetime.now(tz=timezone.utc).replace(tzinfo=None)
    _insert_rows(conn, t.documents, [{
        "doc_id": d.doc_id, "kind": d.doc.get("kind") or d.schema, "doc_schema": d.schema,
        "run_id": _run_of(d), "name": d.path.name, "source": str(d.path),
        "size_bytes": len(d.data), "body": compress(d.data), "added_at": now}
        for d in fresh])
    write_derived(conn, [d.rows for d in fresh if d.rows])
    out.added += fresh
    return out


def _run_of(doc: _Doc) -> str | None:
    if doc.schema == "audit":
        return (doc.doc.get("submitted") or {}).get("run_id")
    run_id = doc.doc.get("run_id") if isinstance(doc.doc, dict) else None
    return run_id if isinstance(run_id, str) else None


def _drop_known_seals(conn: sa.Connection, docs: list[_Doc], out: _Outcome) -> list[_Doc]:
    """A result or verdict whose own sha256 is stored already is the same document with other
    formatting: not stored twice."""
    keep = []
    for table, schema in ((t.results, "result"), (t.audits, "audit")):
        mine = [d for d in docs if d.schema == schema]
        seals = [d.doc["sha256"] for d in mine]
        known = set(conn.execute(sa.select(table.c.seal).where(table.c.seal.in_(seals)))
                    .scalars()) if seals else set()
        for d in mine:
            if d.doc["sha256"] in known:
                out.present.append(d.path)
            else:
                known.add(d.doc["sha256"])
                keep.append(d)
    keep += [d for d in docs if d.schema not in ("result", "audit")]
    return keep


def _insert_rows(conn: sa.Connection, table: sa.Table, rows: list[Row]) -> None:
    if rows:
        conn.execute(table.insert(), rows)


def write_derived(conn: sa.Connection, extracted: list[Extracted]) -> None:
    """Insert the derived rows of newly stored documents, and create or update their runs."""
    by_table: dict[str, list[Row]] = {}
    for ex in extracted:
        for name, rows in ex.rows.items():
            by_table.setdefault(name, []).extend(rows)
    for table in t.DERIVED:
        if table is not t.runs:
            _insert_rows(conn, table, by_table.get(table.name, []))
    _merge_runs(conn, [ex for ex in extracted if ex.run])


def _merge_runs(conn: sa.Connection, extracted: list[Extracted]) -> None:
    """One row per run: a manifest's facts win over those read from a result; of two
    manifests, a finished or interrupted one wins over one written while the run went on."""
    wanted: dict[str, tuple[Row, bool]] = {}
    for ex in extracted:
        assert ex.run is not None
        rid = ex.run["run_id"]
        if rid not in wanted or _better(ex.run, ex.manifest, *wanted[rid]):
            wanted[rid] = (ex.run, ex.manifest)
    if not wanted:
        return
    existing = {r.run_id: r._asdict() for r in conn.execute(
        sa.select(t.runs).where(t.runs.c.run_id.in_(list(wanted))))}
    new = []
    for rid, (row, from_manifest) in wanted.items():
        old = existing.get(rid)
        if old is None:
            new.append(row)
        elif _better(row, from_manifest, old, old["manifest_id"] is not None):
            conn.execute(t.runs.update().where(t.runs.c.run_id == rid)
                         .values({k: v for k, v in row.items() if k != "run_id"}))
    _insert_rows(conn, t.runs, new)


def _better(row: Row, manifest: bool, old: Row, old_manifest: bool) -> bool:
    if manifest != old_manifest:
        return manifest
    if not manifest:
        return False
    if (old.get("state") == "running") != (row.get("state") == "running"):
        return old.get("state") == "running"
    return (row.get("ended_at") or datetime.min) > (old.get("ended_at") or datetime.min)


def rebuild(conn: sa.Connection) -> int:
    """Drop and re-derive every derived table from ``documents``; returns the documents read.

    This is how the store upgrades: the documents are the source of truth, the rest is an
    index over them."""
    for view in reversed(t.VIEWS):  # a later view may read an earlier one (PostgreSQL checks)
        conn.execute(sa.text(f"DROP VIEW IF EXISTS {view}"))
    t.metadata.drop_all(conn, tables=list(t.DERIVED))
    t.metadata.create_all(conn, tables=list(t.DERIVED))
    for view, (_, sql) in t.VIEWS.items():
        conn.execute(sa.text(f"CREATE VIEW {view} AS {sql}"))
    if conn.dialect.name == "postgresql":
        from testbed.store.roles import regrant

        regrant(conn)  # the query role read the tables just dropped
    count = 0
    query = sa.select(t.documents.c.doc_id, t.documents.c.doc_schema, t.documents.c.body)
    ids = list(conn.execute(sa.select(t.documents.c.doc_id)
                            .order_by(t.documents.c.added_at, t.documents.c.doc_id)).scalars())
    for start in range(0, len(ids), BATCH_FILES):
        chunk = ids[start:start + BATCH_FILES]
        rows = conn.execute(query.where(t.documents.c.doc_id.in_(chunk))).all()
        order = {doc_id: i for i, doc_id in enumerate(chunk)}
        extracted = [extract(schema, doc_id, json.loads(verified(doc_id, body)))
                     for doc_id, schema, body in sorted(rows, key=lambda r: order[r[0]])]
        write_derived(conn, extracted)
        count += len(rows)
    conn.execute(t.store_meta.delete().where(t.store_meta.c.key == "derived_version"))
    conn.execute(t.store_meta.insert().values(key="derived_version",
                                              value=str(t.DERIVED_VERSION)))
    return count
