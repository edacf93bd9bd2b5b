"""Adding documents: validated as the report validates them, stored once, byte for byte.

A file is read once; its bytes are hashed (the document's address, so adding it again is a
no-op) and validated (``bench.validate.validate_bytes``: schema, then the document's own
sha256). An invalid or edited file is refused with the problems the report lists for it. A
result whose seal is already stored (the same result, re-formatted) is not stored twice.

Nothing is taken on a document's own word (docs/store.md, "Trust"): a result joins a run whose
manifest is stored only if the manifest lists it with its sha256; a second manifest of a run
must list the same results; a verdict must name a stored result; and a verdict counts as an
audit, a manifest as submitted by someone, only when its SSH signature verifies against the
store's trust file (``testbed.signing``). Manifests are added first and verdicts last, so a
run directory and its audit go in whole in one command.

Files are added in batches, each batch in one transaction; when another process added one of
them meanwhile (a shared PostgreSQL store), the batch is retried one document at a time.
What each file needs on its own (parsing, validation, its rows, its signature, compression:
``prepare``) runs in one process per CPU when there are many, a batch ahead of the database;
the rows go in with one statement per table and batch (``insert_rows``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.errors import UserError, cut
from bench.ids import MANIFEST_FILE
from bench.jsonio import UnreadableDocument, read_document_bytes
from bench.schema import fast_validator
from bench.validate import expand, validate_bytes
from testbed import signing
from testbed.store import tables as t
from testbed.store.rows import Extracted, Row, extract, unique_entries
from testbed.store.store import Store, compress, verified

BATCH_FILES = 500  # files per transaction (each costs ~20 statements and a commit)
AHEAD = 2  # batches handed to the workers before this process writes the oldest
PARALLEL_FROM = 100  # files per preparing process (fewer: prepared in this process)
CHUNK_FILES = 10  # files per task handed to a preparing process
VERDICT = "verdict.json"
TRUST_KEY = "allowed_signers"  # store_meta: the text of the store's trust file


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
    signed: list[tuple[Path, str, str]] = field(default_factory=list)  # path, schema, principal
    claims: list[tuple[Path, str, str]] = field(default_factory=list)  # path, schema, why
    apart: list[str] = field(default_factory=list)  # stored results their manifest does not list

    @property
    def files(self) -> int:
        return sum(self.added.values()) + len(self.present) + len(self.refused)


@dataclass
class _Doc:
    """A file to add: what it is (read), then what the store needs of it (``prepare``)."""

    path: Path
    doc_id: str  # sha256 of its bytes
    size: int
    data: bytes | None = None  # the bytes, until prepared
    problems: list[str] | None = None  # prepared and refused: why
    schema: str = ""
    kind: str = ""
    run_id: str | None = None  # documents.run_id
    seal: str | None = None  # a result's or verdict's own sha256
    entry: str | None = None  # a result's entry id
    doc: Any = None  # a manifest or verdict (small): the cross-checks and signatures read it
    rows: Extracted | None = None
    signature: Row | None = None
    trust: str | None = None  # the trust file ``signature`` was checked against
    body: bytes = b""  # the bytes, compressed


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
    audit_dirs = {os.path.dirname(f) for f in files if f.name == VERDICT}
    files = [f for f in files if f.name == VERDICT or not _below(str(f), audit_dirs)]
    # Manifests first (a result is checked against its run's), verdicts last (they must name
    # stored results).
    return sorted(files, key=lambda f: 0 if f.name == MANIFEST_FILE else
                  2 if f.name == VERDICT else 1)


def _below(path: str, directories: set[str]) -> bool:
    """Whether ``path`` lies in (or below) one of ``directories`` (paths as ``expand`` gives
    them, compared as text: a thousand files' ``Path.parents`` cost a tenth of a second)."""
    while (parent := os.path.dirname(path)) != path:
        if parent in directories:
            return True
        path = parent
    return False


def add_paths(store: Store, paths: Iterable[Path],
              progress: Callable[[int, int], None] | None = None,
              jobs: int | None = None) -> AddSummary:
    """Add every document under ``paths`` (see the module docstring).

    Many files are prepared by ``jobs`` processes (default: one per CPU) while this one reads
    the next files and writes the batch before to the database; until those processes have
    started, this one prepares the batches itself. Each batch is one transaction, in the
    order of ``candidate_files``."""
    if store.read_only:
        raise RuntimeError("add_paths needs a store opened for writing")
    paths = [Path(p) for p in paths]
    files = candidate_files(paths)
    roots = [p for p in paths if p.is_dir()]
    summary = AddSummary()
    jobs = min(jobs or os.cpu_count() or 1, len(files) // PARALLEL_FROM + 1)
    with contextlib.ExitStack() as stack:
        workers = _Workers(jobs) if jobs > 1 else None
        if workers:
            stack.callback(workers.close)
        conn = stack.enter_context(store.connect())
        with conn.begin():
            trust = store_trust(conn)
        ahead: deque[tuple[int, list[Future[list[_Doc]]]]] = deque()

        def write_oldest() -> None:
            done, tasks = ahead.popleft()
            _add_batch(conn, [d for task in tasks for d in task.result()], summary)
            if progress:
                progress(done, len(files))

        for start in range(0, len(files), BATCH_FILES):
            batch = [d for d in (_read(p, summary, roots)
                                 for p in files[start:start + BATCH_FILES]) if d]
            batch = _not_stored(conn, batch, summary)
            pool = workers.pool if workers else None
            ahead.append((min(start + BATCH_FILES, len(files)),
                          [_submit(pool, batch[i:i + CHUNK_FILES], trust)
                           for i in range(0, len(batch), CHUNK_FILES)]))
            # with the workers, the next batches are prepared while the oldest is written
            while len(ahead) > (AHEAD if pool else 0):
                write_oldest()
        while ahead:
            write_oldest()
    return summary


class _Workers:
    """``jobs`` worker processes, started in a thread: ``pool`` is None until they run."""

    def __init__(self, jobs: int) -> None:
        self.pool: ProcessPoolExecutor | None = None
        self._started = threading.Event()
        threading.Thread(target=self._start, args=(jobs,), daemon=True,
                         name="ingest-workers").start()

    def _start(self, jobs: int) -> None:
        pool = None
        try:
            pool = ProcessPoolExecutor(jobs, mp_context=_workers(), initializer=_adopt,
                                       initargs=(dict(os.environ),))
            for task in [pool.submit(int) for _ in range(jobs)]:  # each starts a process
                task.result()
            self.pool = pool
        except Exception:  # no workers: this process prepares every batch
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        finally:
            self._started.set()

    def close(self) -> None:
        self._started.wait()
        if self.pool is not None:
            self.pool.shutdown()


def _workers() -> multiprocessing.context.BaseContext:
    """Fresh processes (never a fork of one holding a database connection): a fork server
    loads this module and the schema validators once (``preload``) and forks each worker
    from it in milliseconds."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, "testbed.store.preload"])
    return ctx


def _adopt(environment: dict[str, str]) -> None:
    """A worker runs in this process's environment, not in the one the fork server started
    with (``$BENCH_SCHEMA_ENGINE`` picks the validator: built again if it changed)."""
    if environment != dict(os.environ):
        os.environ.clear()
        os.environ.update(environment)
        fast_validator.cache_clear()


def _submit(pool: ProcessPoolExecutor | None, docs: list[_Doc], trust: str | None
            ) -> Future[list[_Doc]]:
    items = [(d.path, d.data or b"", d.doc_id) for d in docs]
    for d in docs:
        d.data = None  # the worker has its copy
    if pool is not None:
        return pool.submit(prepare_all, items, trust)
    done: Future[list[_Doc]] = Future()
    done.set_result(prepare_all(items, trust))
    return done


def _read(path: Path, summary: AddSummary, roots: list[Path] | None = None) -> _Doc | None:
    """The file's bytes, read as ``validate`` reads them (bench.jsonio): a regular file within
    the size limit, not leading out of the directory it was found in."""
    root = next((r for r in roots or [] if path.is_relative_to(r)), None)
    try:
        data = read_document_bytes(path, root)
    except UnreadableDocument as exc:
        summary.refused.append(Refused(path, [f"$: {exc} (rule: {exc.rule})"]))
        return None
    return _Doc(path, hashlib.sha256(data).hexdigest(), len(data), data)


def _not_stored(conn: sa.Connection, batch: list[_Doc], summary: AddSummary) -> list[_Doc]:
    """The batch without the documents stored already (or twice in it): those are not
    prepared again. (The batch's transaction checks again: another writer may add some.)"""
    if not batch:
        return batch
    with conn.begin():
        stored = _stored(conn, [d.doc_id for d in batch])
    keep = []
    for doc in batch:
        if doc.doc_id in stored:
            summary.present.append(doc.path)
        else:
            stored.add(doc.doc_id)
            keep.append(doc)
    return keep


def _stored(conn: sa.Connection, ids: list[str]) -> set[str]:
    return set(conn.execute(sa.select(t.documents.c.doc_id)
                            .where(t.documents.c.doc_id.in_(ids))).scalars())


def prepare_all(items: list[tuple[Path, bytes, str]], trust: str | None) -> list[_Doc]:
    """``prepare`` each (path, bytes, sha256): the work a worker process does."""
    return [prepare(path, data, doc_id, trust) for path, data, doc_id in items]


def prepare(path: Path, data: bytes, doc_id: str, trust: str | None) -> _Doc:
    """What the store needs of one file's bytes, with no database: validated as the report
    validates them, its rows, its signature checked against ``trust``, the bytes compressed;
    or refused with the problems the report lists."""
    out = _Doc(path, doc_id, len(data))
    report = validate_bytes(data, path)
    if not report.ok:
        out.problems = [str(p) for p in report.problems]
        return out
    doc = report.doc
    out.schema = report.schema or ""
    out.kind = doc.get("kind") or out.schema
    out.run_id = _run_of(out.schema, doc)
    if out.schema in ("result", "audit"):
        out.seal = doc["sha256"]
    if out.schema == "result":
        out.entry = doc["workload"]["id"]
    if out.schema in ("manifest", "audit"):
        out.doc = doc
    ex = extract(out.schema, doc_id, doc)
    out.rows = Extracted(run=ex.run, manifest=ex.manifest, columns=columnar(ex.rows))
    out.signature = signature_row(doc_id, out.schema, doc, trust)
    out.trust = trust
    out.body = compress(data)
    return out


def _add_batch(conn: sa.Connection, batch: list[_Doc], summary: AddSummary) -> None:
    if not batch:
        return
    try:
        with conn.begin():
            outcome = _insert(conn, batch)
    except (sa.exc.IntegrityError, sa.exc.DataError, sa.exc.ProgrammingError):
        # Another writer stored some of these meanwhile (or one holds a value the database
        # cannot take): one transaction per document.
        outcome = _Outcome()
        for doc in batch:
            try:
                with conn.begin():
                    one = _insert(conn, [doc])
            except sa.exc.IntegrityError:
                one = _Outcome(present=[doc.path])
            except (sa.exc.DataError, sa.exc.ProgrammingError) as exc:
                # valid by its schema, but a value the table cannot hold: refused, not a crash
                first = (str(exc.orig or exc).strip().splitlines() or ["?"])[0]
                one = _Outcome(refused=[Refused(doc.path, [
                    f"$: the store cannot hold a value of it: {cut(first, 200)} (rule: store)"])])
            outcome.merge(one)
    outcome.into(summary)


@dataclass
class _Outcome:
    added: list[_Doc] = field(default_factory=list)
    present: list[Path] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    apart: list[str] = field(default_factory=list)

    def merge(self, other: _Outcome) -> None:
        self.added += other.added
        self.present += other.present
        self.refused += other.refused
        self.apart += other.apart

    def into(self, summary: AddSummary) -> None:
        for doc in self.added:
            summary.added[doc.schema] = summary.added.get(doc.schema, 0) + 1
            if doc.rows and doc.rows.run:
                summary.runs.add(doc.rows.run["run_id"])
            if doc.schema == "audit":
                summary.audits.append(doc.doc_id)
            sig = doc.signature
            if sig and sig["status"] == signing.VERIFIED:
                summary.signed.append((doc.path, doc.schema, sig["principal"]))
            elif sig and (doc.schema == "audit" or sig["status"] == signing.UNVERIFIED):
                summary.claims.append((doc.path, doc.schema, sig["reason"]))
        summary.present += self.present
        summary.refused += self.refused
        summary.apart += self.apart


def _insert(conn: sa.Connection, batch: list[_Doc]) -> _Outcome:
    out = _Outcome()
    stored = _stored(conn, [d.doc_id for d in batch])
    fresh: list[_Doc] = []
    for doc in batch:
        if doc.doc_id in stored:
            out.present.append(doc.path)
        elif doc.problems is not None:
            out.refused.append(Refused(doc.path, doc.problems))
        else:
            stored.add(doc.doc_id)
            fresh.append(doc)
    fresh = _drop_known_seals(conn, fresh, out)
    fresh = cross_check(conn, fresh, out)
    trust = store_trust(conn)
    extracted = []
    for doc in fresh:
        if doc.trust != trust:  # the trust file changed since the workers checked
            doc.signature = signature_row(doc.doc_id, doc.schema, doc.doc, trust)
            doc.trust = trust
        if doc.rows:
            extracted.append(Extracted({"signatures": [doc.signature]}, doc.rows.run,
                                       doc.rows.manifest, doc.rows.columns)
                             if doc.signature else doc.rows)
    now = datetime.now(tz=timezone.utc).replace(tzinfo=None)
    insert_rows(conn, t.documents, [{
        "doc_id": d.doc_id, "kind": d.kind, "doc_schema": d.schema, "run_id": d.run_id,
        "name": d.path.name, "source": str(d.path), "size_bytes": d.size, "body": d.body,
        "added_at": now} for d in fresh])
    out.apart += write_derived(conn, extracted)
    out.added += fresh
    return out


def store_trust(conn: sa.Connection) -> str | None:
    """The text of the store's trust file (an OpenSSH allowed_signers file), if it has one."""
    return conn.execute(sa.select(t.store_meta.c.value)
                        .where(t.store_meta.c.key == TRUST_KEY)).scalar()


def signature_row(doc_id: str, schema: str, doc: Any, trust: str | None) -> Row | None:
    """Who signed a verdict or manifest, verified against ``trust`` (None: not signable)."""
    if schema not in signing.NAMESPACES or not isinstance(doc, dict):
        return None
    v = signing.verify_document(doc, schema, trust)
    return {"doc_id": doc_id, "status": v.status, "principal": v.principal,
            "reason": v.reason}


# -- cross-checks -------------------------------------------------------------------------------
def _refuse(out: _Outcome, doc: _Doc, where: str, why: str, rule: str) -> None:
    out.refused.append(Refused(doc.path, [f"{where}: {why} (rule: {rule})"]))


def membership(listed: dict[str, str | None], state: str | None, entry: str, seal: str) -> str:
    """Whether a manifest (``listed``: entry id -> the sha256 it lists) holds a result:
    ``listed`` (by its sha256, under any entry: a cluster's per-node results are entries
    ``<entry>.<node>``), ``pending`` (its entry has no result yet in a manifest written while
    the run went on) or ``not listed``."""
    if seal in listed.values():
        return "listed"
    if state == "running" and entry in listed and listed[entry] is None:
        return "pending"
    return "not listed"


def _compatible(a: dict[str, str | None], b: dict[str, str | None]) -> str | None:
    """Why two manifests of one run cannot both be its manifest (None: they agree: the same
    entries, and no entry with two different results)."""
    if set(a) != set(b):
        return (f"entries {sorted(set(a) ^ set(b))[:5]} are in one and not the other")
    clash = [e for e in a if a[e] and b[e] and a[e] != b[e]]
    if clash:
        return f"entry {clash[0]!r} lists result {a[clash[0]]} in one, {b[clash[0]]} in the other"
    return None


def cross_check(conn: sa.Connection, docs: list[_Doc], out: _Outcome) -> list[_Doc]:
    """The documents that agree with what is stored (and with each other); the rest refused
    with the reason: a second manifest that lists other results, a result its run's manifest
    does not list with its sha256, a verdict that names no stored result."""
    def entries(doc: Any) -> dict[str, str | None]:
        return {e["id"]: e.get("sha256") for e in unique_entries(doc)}

    runs = {d.doc["run_id"] for d in docs if d.schema == "manifest"} | \
        {d.run_id for d in docs if d.schema == "result"}
    known: dict[str, dict[str, dict[str, str | None]]] = {}  # run -> manifest -> entries
    reference: dict[str, tuple[dict[str, str | None], str | None, str]] = {}
    if runs:
        me = t.manifest_entries.c
        for row in conn.execute(sa.select(me.run_id, me.manifest_id, me.entry_id, me.seal)
                                .where(me.run_id.in_(runs))):
            known.setdefault(row.run_id, {}).setdefault(row.manifest_id, {})[row.entry_id] = \
                row.seal
        for row in conn.execute(sa.select(t.runs.c.run_id, t.runs.c.manifest_id,
                                          t.runs.c.state)
                                .where(t.runs.c.run_id.in_(runs),
                                       t.runs.c.manifest_id.is_not(None))):
            reference[row.run_id] = (known.get(row.run_id, {}).get(row.manifest_id, {}),
                                     row.state, row.manifest_id)
    keep: list[_Doc] = []
    for doc in (d for d in docs if d.schema == "manifest"):
        run, mine = doc.doc["run_id"], entries(doc.doc)
        clash = next(((mid, why) for mid, other in known.get(run, {}).items()
                      if (why := _compatible(mine, other))), None)
        if clash:
            _refuse(out, doc, "$.entries", f"run {run} has a stored manifest ({clash[0][:12]}) "
                    f"that lists other results: {clash[1]}; a run has one set of results",
                    "one_manifest")
            continue
        known.setdefault(run, {})[doc.doc_id] = mine
        old = reference.get(run)
        if old is None or (old[1] == "running" and doc.doc.get("state") != "running"):
            reference[run] = (mine, doc.doc.get("state"), doc.doc_id)
        keep.append(doc)
    seals: set[str] = set()
    for doc in (d for d in docs if d.schema == "result"):
        run, entry, seal = doc.run_id, doc.entry, doc.seal
        assert run is not None and entry is not None and seal is not None
        if run in reference:
            listed, state, mid = reference[run]
            if membership(listed, state, entry, seal) == "not listed":
                said = (f"lists {entry!r} with "
                        f"{'no result' if listed[entry] is None else 'sha256 ' + listed[entry]}"
                        if entry in listed else f"has no entry {entry!r} with that sha256")
                _refuse(out, doc, "$.sha256", f"not in its run's manifest: manifest "
                        f"{mid[:12]} of run {run} {said}; this result's sha256 is {seal}",
                        "manifest")
                continue
        seals.add(seal)
        keep.append(doc)
    verdicts = [(d, {v for v in ((d.doc.get("submitted") or {}).get("result_sha256") or {})
                     .values() if v}) for d in docs if d.schema == "audit"]
    asked = list(set().union(*(named for _, named in verdicts if not named & seals)))
    stored = set(conn.execute(sa.select(t.results.c.seal).where(t.results.c.seal.in_(asked)))
                 .scalars()) if asked else set()
    for doc, named in verdicts:
        if named and not named & (seals | stored):
            _refuse(out, doc, "$.submitted.result_sha256", f"names {len(named)} result(s), "
                    "none of them stored here: add the judged run first (a verdict links "
                    "only to results the store holds)", "judged_results")
            continue
        keep.append(doc)
    keep += [d for d in docs if d.schema not in ("manifest", "result", "audit")]
    return keep


def _run_of(schema: str, doc: Any) -> str | None:
    """documents.run_id: the run a document belongs to (a verdict's: the run it judged)."""
    if schema == "audit":
        return (doc.get("submitted") or {}).get("run_id")
    run_id = doc.get("run_id") if isinstance(doc, dict) else None
    return run_id if isinstance(run_id, str) else None


def _drop_known_seals(conn: sa.Connection, docs: list[_Doc], out: _Outcome) -> list[_Doc]:
    """A result or verdict whose own sha256 is stored already is the same document with other
    formatting: not stored twice."""
    keep = []
    for table, schema in ((t.results, "result"), (t.audits, "audit")):
        mine = [d for d in docs if d.schema == schema]
        seals = [d.seal for d in mine]
        known = set(conn.execute(sa.select(table.c.seal).where(table.c.seal.in_(seals)))
                    .scalars()) if seals else set()
        for d in mine:
            if d.seal in known:
                out.present.append(d.path)
            else:
                known.add(d.seal)
                keep.append(d)
    keep += [d for d in docs if d.schema not in ("result", "audit")]
    return keep


Columns = dict[str, list[Any]]  # a table's rows column by column: column -> values


def columnar(rows: dict[str, list[Row]]) -> dict[str, Columns]:
    """Rows by table name as columns (a key a row lacks is null)."""
    return {name: _columns(t.metadata.tables[name], table_rows)
            for name, table_rows in rows.items() if table_rows}


def _columns(table: sa.Table, rows: list[Row]) -> Columns:
    keys = tuple(rows[0])
    if all(tuple(row) == keys for row in rows):  # an extractor's rows: one transpose
        given = dict(zip(keys, map(list, zip(*map(dict.values, rows), strict=True)),
                         strict=True))
        return {c.name: given.get(c.name) or [None] * len(rows) for c in table.columns}
    return {c.name: [row.get(c.name) for row in rows] for c in table.columns}


def insert_rows(conn: sa.Connection, table: sa.Table, rows: list[Row]) -> None:
    """Insert ``rows`` (a missing key is null); see ``insert_columns``."""
    if rows:
        insert_columns(conn, table, columnar({table.name: rows})[table.name])


def insert_columns(conn: sa.Connection, table: sa.Table, columns: Columns) -> None:
    """Insert rows given column by column (every column of ``table``, equally long). On
    DuckDB in one statement from a typed frame (a statement per row costs ~1 ms there); a
    value of another type than its column's goes the general way, SQLAlchemy's executemany,
    which is PostgreSQL's batched insert (psycopg)."""
    names = [c.name for c in table.columns]
    if not columns or not columns[names[0]]:
        return
    frame = _frame(table, columns) if conn.dialect.name == "duckdb" else None
    if frame is not None:
        import duckdb

        raw = conn.connection.driver_connection
        view = f"_adding_{table.name}"
        listed = ", ".join(f'"{name}"' for name in names)
        # DuckDB registers nothing while a result is unfinished (a ``.scalar()`` before)
        conn.exec_driver_sql("SELECT 1").all()
        raw.register(view, frame)  # type: ignore[union-attr]
        try:
            conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({listed}) '
                                 f'SELECT {listed} FROM "{view}"')
        finally:
            with contextlib.suppress(duckdb.Error):  # a failed insert aborted the transaction
                raw.unregister(view)  # type: ignore[union-attr]
        return
    conn.execute(table.insert(), [dict(zip(names, values, strict=True))
                                  for values in zip(*(columns[n] for n in names), strict=True)])


# A column's SQL type, the Python types its values may have, and the frame column type.
_FRAME_TYPES: tuple[tuple[type, frozenset[type], str], ...] = (
    (sa.Boolean, frozenset({bool}), "boolean"),
    (sa.Integer, frozenset({int}), "Int64"),
    (sa.Float, frozenset({float, int}), "Float64"),
    (sa.DateTime, frozenset({datetime}), "datetime64[us]"),
    (sa.LargeBinary, frozenset({bytes}), "object"),
    (sa.String, frozenset({str}), "object"),
)


def _frame(table: sa.Table, columns: Columns) -> Any:
    """The rows as a pandas frame with nullable column types (None: a value that is not of
    its column's type, or that the frame type cannot hold, such as an integer beyond 64
    bits)."""
    import pandas as pd

    typed = {}
    for column in table.columns:
        values = columns[column.name]
        kind = next((k for k in _FRAME_TYPES if isinstance(column.type, k[0])), None)
        if kind is None or not set(map(type, values)) - {type(None)} <= kind[1]:
            return None
        try:
            typed[column.name] = pd.array(values, dtype=kind[2])
        except (TypeError, ValueError, OverflowError):
            return None
    return pd.DataFrame(typed, copy=False)


def write_derived(conn: sa.Connection, extracted: list[Extracted]) -> list[str]:
    """Insert the derived rows of newly stored documents, create or update their runs, and
    check their runs' results against the runs' manifests; returns the results set apart
    (a manifest that arrived after them does not list them)."""
    by_table: dict[str, Columns] = {}
    for ex in extracted:
        for name, columns in [*ex.columns.items(), *columnar(ex.rows).items()]:
            merged = by_table.setdefault(name, {})
            for column, values in columns.items():
                merged.setdefault(column, []).extend(values)
    for table in t.DERIVED:
        if table is not t.runs and table.name in by_table:
            insert_columns(conn, table, by_table[table.name])
    with_run = [ex for ex in extracted if ex.run]
    _merge_runs(conn, with_run)
    return recheck_members(conn, {ex.run["run_id"] for ex in with_run if ex.run})


def recheck_members(conn: sa.Connection, run_ids: set[str]) -> list[str]:
    """Set each result's ``in_manifest`` from its run's manifest (the one ``runs`` names);
    returns the results newly set apart."""
    if not run_ids:
        return []
    ids = list(run_ids)
    winners = {r.run_id: (r.manifest_id, r.state) for r in conn.execute(
        sa.select(t.runs.c.run_id, t.runs.c.manifest_id, t.runs.c.state)
        .where(t.runs.c.run_id.in_(ids)))}
    me = t.manifest_entries.c
    listed: dict[str, dict[str, str | None]] = {}
    mids = [m for m, _ in winners.values() if m]
    if mids:
        for row in conn.execute(sa.select(me.manifest_id, me.entry_id, me.seal)
                                .where(me.manifest_id.in_(mids))):
            listed.setdefault(row.manifest_id, {})[row.entry_id] = row.seal
    r = t.results.c
    changes: dict[str, list[str]] = {}
    for row in conn.execute(sa.select(r.doc_id, r.run_id, r.entry_id, r.seal, r.in_manifest)
                            .where(r.run_id.in_(ids))):
        mid, state = winners.get(row.run_id, (None, None))
        now = "no manifest" if mid is None else \
            membership(listed.get(mid, {}), state, row.entry_id, row.seal)
        if now != row.in_manifest:
            changes.setdefault(now, []).append(row.doc_id)
    for value, doc_ids in changes.items():
        for start in range(0, len(doc_ids), 500):
            conn.execute(t.results.update().where(r.doc_id.in_(doc_ids[start:start + 500]))
                         .values(in_manifest=value))
    return changes.get("not listed", [])


def _merge_runs(conn: sa.Connection, extracted: list[Extracted]) -> None:
    """One row per run: a manifest's facts win over those read from a result; of two
    manifests, a finished or interrupted one wins over one written while the run went on,
    then a signed one (verified) over one that is not."""
    wanted: dict[str, tuple[Row, bool]] = {}
    if not extracted:
        return
    existing = {r.run_id: r._asdict() for r in conn.execute(
        sa.select(t.runs).where(t.runs.c.run_id.in_(
            list({ex.run["run_id"] for ex in extracted if ex.run}))))}
    mids = [m for m in [*(ex.run.get("manifest_id") for ex in extracted if ex.run),
                        *(o["manifest_id"] for o in existing.values())] if m]
    signed = set(conn.execute(sa.select(t.signatures.c.doc_id).where(
        t.signatures.c.doc_id.in_(mids), t.signatures.c.status == signing.VERIFIED))
                 .scalars()) if mids else set()
    for ex in extracted:
        assert ex.run is not None
        rid = ex.run["run_id"]
        if rid not in wanted or _better(ex.run, ex.manifest, *wanted[rid], signed):
            wanted[rid] = (ex.run, ex.manifest)
    new = []
    for rid, (row, from_manifest) in wanted.items():
        old = existing.get(rid)
        if old is None:
            new.append(row)
        elif _better(row, from_manifest, old, old["manifest_id"] is not None, signed):
            conn.execute(t.runs.update().where(t.runs.c.run_id == rid)
                         .values({k: v for k, v in row.items() if k != "run_id"}))
    insert_rows(conn, t.runs, new)


def _better(row: Row, manifest: bool, old: Row, old_manifest: bool,
            signed: set[str] | frozenset[str] = frozenset()) -> bool:
    if manifest != old_manifest:
        return manifest
    if not manifest:
        return False
    if (old.get("state") == "running") != (row.get("state") == "running"):
        return old.get("state") == "running"
    if (row["manifest_id"] in signed) != (old["manifest_id"] in signed):
        return row["manifest_id"] in signed
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
    trust = store_trust(conn)
    query = sa.select(t.documents.c.doc_id, t.documents.c.doc_schema, t.documents.c.body)
    ids = list(conn.execute(sa.select(t.documents.c.doc_id)
                            .order_by(t.documents.c.added_at, t.documents.c.doc_id)).scalars())
    for start in range(0, len(ids), BATCH_FILES):
        chunk = ids[start:start + BATCH_FILES]
        rows = conn.execute(query.where(t.documents.c.doc_id.in_(chunk))).all()
        order = {doc_id: i for i, doc_id in enumerate(chunk)}
        extracted = []
        for doc_id, schema, body in sorted(rows, key=lambda r: order[r[0]]):
            doc = json.loads(verified(doc_id, body))
            ex = extract(schema, doc_id, doc)
            sig = signature_row(doc_id, schema, doc, trust)
            if sig:
                ex.add("signatures", sig)
            extracted.append(ex)
        write_derived(conn, extracted)
        count += len(rows)
    conn.execute(t.store_meta.delete().where(t.store_meta.c.key == "derived_version"))
    conn.execute(t.store_meta.insert().values(key="derived_version",
                                              value=str(t.DERIVED_VERSION)))
    return count


def set_trust(store: Store, path: Path) -> tuple[list[signing.Signer], dict[str, int]]:
    """Make the allowed_signers file at ``path`` the store's trust file and check every stored
    signature against it again (the derived tables are made again: a manifest's signature
    decides which manifest is its run's). Returns its signers and the signatures by status."""
    text, signers = signing.read_trust_file(path)
    with store.begin() as conn:
        conn.execute(t.store_meta.delete().where(t.store_meta.c.key == TRUST_KEY))
        conn.execute(t.store_meta.insert().values(key=TRUST_KEY, value=text))
        rebuild(conn)
        counts = dict(conn.execute(sa.select(t.signatures.c.status, sa.func.count())
                                   .group_by(t.signatures.c.status)).all())
    return signers, counts
