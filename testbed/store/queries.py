"""The questions users ask of the store: which runs and results match, and any read-only SQL.

Filters are the same for ``invoke store list``, ``invoke report --from-store`` and
``invoke site``: text filters match case-insensitively anywhere in the field (a device filter
matches the device name, the run label or the device key), dates are ISO (``2026-01-01`` or a
full time, UTC).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bench.errors import UserError
from bench.metrics import headline_metric
from testbed.report.inputs import Device, label_devices
from testbed.store import tables as t
from testbed.store.store import Store

AUDIT_STATES = ("pass", "fail", "inconclusive", "cannot_rerun", "none", "any")
QUERY_TIMEOUT_S = 120


@dataclass(frozen=True)
class Filters:
    device: tuple[str, ...] = ()
    workload: tuple[str, ...] = ()
    suite: str | None = None
    vendor: str | None = None
    run: str | None = None
    image: str | None = None
    driver: str | None = None
    torch: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    audit: str | None = None  # pass, fail, inconclusive, cannot_rerun (latest verdict), none, any

    @property
    def on_results(self) -> bool:
        return bool(self.device or self.workload or self.image or self.driver or self.torch
                    or self.audit)


def parse_time(text: str | None, option: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UserError(f"{option} {text!r} is not a date.",
                        "Give an ISO date such as 2026-01-31 or 2026-01-31T12:00.") from exc
    if value.tzinfo is not None:
        from datetime import timezone

        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def make_filters(device: Sequence[str] | None = None, workload: Sequence[str] | None = None,
                 suite: str | None = None, vendor: str | None = None, run: str | None = None,
                 image: str | None = None, driver: str | None = None,
                 torch: str | None = None, since: str | None = None,
                 until: str | None = None, audit: str | None = None) -> Filters:
    """Filters from command-line text, refusing what cannot match anything."""
    if audit is not None and audit not in AUDIT_STATES:
        raise UserError(f"--audit {audit!r} is not one of {', '.join(AUDIT_STATES)}.",
                        "pass/fail: the latest verdict; none: never audited; any: audited.")
    return Filters(tuple(device or ()), tuple(workload or ()), suite, vendor, run, image,
                   driver, torch, parse_time(since, "--since"), parse_time(until, "--until"),
                   audit)


def _like(col: sa.ColumnElement[Any], text: str) -> sa.ColumnElement[bool]:
    return sa.func.lower(col).contains(text.lower(), autoescape=True)


def latest_audit() -> sa.TableClause:
    """The latest verdict of each result, of those signed by a key of the trust file."""
    return sa.table("result_latest_audit", sa.column("result_id"), sa.column("audit_id"),
                    sa.column("verdict"), sa.column("audited_at"), sa.column("audited_by"))


def counted() -> sa.ColumnElement[bool]:
    """A result counts unless its run's manifest lists another in its place (set apart)."""
    return sa.func.coalesce(t.results.c.in_manifest, "") != "not listed"


def submitted_by() -> sa.ScalarSelect[Any]:
    """Who signed the manifest of a result's run (a verified signature), per result row."""
    s = t.signatures.c
    return (sa.select(s.principal)
            .select_from(t.runs.join(t.signatures, s.doc_id == t.runs.c.manifest_id))
            .where(t.runs.c.run_id == t.results.c.run_id, s.status == "verified",
                   t.results.c.in_manifest == "listed")
            .scalar_subquery())


def result_conditions(f: Filters) -> list[sa.ColumnElement[bool]]:
    r = t.results.c
    conds: list[sa.ColumnElement[bool]] = [counted()]
    if f.device:
        conds.append(sa.or_(*(sa.or_(_like(r.device_name, d), _like(r.label, d),
                                     _like(r.device_key, d)) for d in f.device)))
    if f.workload:
        conds.append(sa.or_(r.entry_id.in_(f.workload), r.workload.in_(f.workload),
                            (r.entry_id + " (" + r.config + ")").in_(f.workload)))
    if f.image:
        conds.append(sa.or_(_like(r.image_tag, f.image), _like(r.image_digest, f.image)))
    if f.driver:
        conds.append(_like(r.driver_version, f.driver))
    if f.torch:
        conds.append(_like(r.torch_version, f.torch))
    if f.suite:
        conds.append(r.suite == f.suite)
    if f.vendor:
        conds.append(r.vendor == f.vendor)
    if f.run:
        conds.append(_like(r.run_id, f.run))
    if f.since:
        conds.append(r.started_at >= f.since)
    if f.until:
        conds.append(r.started_at <= f.until)
    if f.audit:
        la = latest_audit()
        audited = sa.select(la.c.result_id)
        if f.audit in ("pass", "fail", "inconclusive"):
            audited = audited.where(la.c.verdict == f.audit)
        conds.append(r.doc_id.not_in(audited) if f.audit == "none" else r.doc_id.in_(audited))
    return conds


@dataclass
class ResultRow:
    doc_id: str
    run_id: str
    entry_id: str
    config: str
    status: str
    started_at: datetime
    device_key: str
    device: str  # the label shown
    headline: float | None
    unit: str | None
    audit: str | None  # latest verdict
    audit_id: str | None
    disturbed: bool | None = None  # the result's own verdict on its measurement
    audited_by: str | None = None
    submitted_by: str | None = None


@dataclass
class RunRow:
    run_id: str
    started_at: datetime | None
    suite: str | None
    vendor: str | None
    state: str | None
    devices: list[str] = field(default_factory=list)
    results: int = 0
    ok: int = 0
    audit: str | None = None
    audited_at: datetime | None = None
    audited_by: str | None = None
    submitted_by: str | None = None  # the principal of its signed manifest (verified)


def devices_of(facts_by_key: dict[str, str]) -> dict[str, Device]:
    """Labelled devices (the report's labels) from stored ``device_facts``."""
    return label_devices(Device(k, json.loads(v)) for k, v in facts_by_key.items())


def list_results(store: Store, f: Filters, limit: int | None = None) -> list[ResultRow]:
    r = t.results.c
    la = latest_audit()
    head = t.metrics.alias("head")
    query = (sa.select(r.doc_id, r.run_id, r.entry_id, r.config, r.status, r.started_at,
                       r.device_key, r.device_facts, head.c.value, head.c.unit, la.c.verdict,
                       la.c.audit_id, r.disturbed, la.c.audited_by,
                       submitted_by().label("submitted_by"))
             .select_from(t.results
                          .outerjoin(head, sa.and_(head.c.doc_id == r.doc_id,
                                                   head.c.metric == headline_metric()))
                          .outerjoin(la, la.c.result_id == r.doc_id))
             .where(*result_conditions(f))
             .order_by(r.started_at.desc(), r.run_id, r.entry_id))
    if limit:
        query = query.limit(limit)
    with store.begin() as conn:
        rows = conn.execute(query).all()
    devices = devices_of({row.device_key: row.device_facts for row in rows})
    return [ResultRow(row.doc_id, row.run_id, row.entry_id, row.config, row.status,
                      row.started_at, row.device_key, devices[row.device_key].label,
                      row.value, row.unit, row.verdict, row.audit_id, row.disturbed,
                      row.audited_by, row.submitted_by) for row in rows]


def list_runs(store: Store, f: Filters, limit: int | None = None) -> list[RunRow]:
    r = t.results.c
    run_conds = []
    if f.suite:
        run_conds.append(t.runs.c.suite == f.suite)
    if f.vendor:
        run_conds.append(t.runs.c.vendor == f.vendor)
    if f.run:
        run_conds.append(_like(t.runs.c.run_id, f.run))
    if f.since:
        run_conds.append(t.runs.c.started_at >= f.since)
    if f.until:
        run_conds.append(t.runs.c.started_at <= f.until)
    if f.on_results:
        run_conds.append(t.runs.c.run_id.in_(
            sa.select(r.run_id).where(*result_conditions(f))))
    query = sa.select(t.runs).where(*run_conds).order_by(t.runs.c.started_at.desc().nulls_last(),
                                                         t.runs.c.run_id)
    if limit:
        query = query.limit(limit)
    chosen = sa.select(query.subquery().c.run_id)
    a = t.audits.c
    sig = t.signatures.c
    with store.begin() as conn:
        runs = {row.run_id: RunRow(row.run_id, row.started_at, row.suite, row.vendor, row.state)
                for row in conn.execute(query)}
        members = conn.execute(sa.select(r.run_id, r.status, r.device_key, r.device_facts)
                               .where(r.run_id.in_(chosen), counted())).all()
        verdicts = conn.execute(sa.select(a.run_id, a.verdict, a.ended_at, sig.principal)
                                .join(t.signatures, sig.doc_id == a.doc_id)
                                .where(a.run_id.in_(chosen), sig.status == "verified")
                                .order_by(a.ended_at)).all()
        signers = conn.execute(sa.select(t.runs.c.run_id, sig.principal)
                               .join(t.signatures, sig.doc_id == t.runs.c.manifest_id)
                               .where(t.runs.c.run_id.in_(chosen),
                                      sig.status == "verified")).all()
    for run_id, principal in signers:
        runs[run_id].submitted_by = principal
    devices = devices_of({m.device_key: m.device_facts for m in members})
    for m in members:
        run = runs[m.run_id]
        run.results += 1
        run.ok += m.status == "ok"
        label = devices[m.device_key].label
        if label not in run.devices:
            run.devices.append(label)
    for v in verdicts:  # in time order: the last one stays
        runs[v.run_id].audit, runs[v.run_id].audited_at = v.verdict, v.ended_at
        runs[v.run_id].audited_by = v.principal
    if f.audit:
        keep = {"pass": lambda x: x.audit == "pass", "fail": lambda x: x.audit == "fail",
                "inconclusive": lambda x: x.audit == "inconclusive",
                "none": lambda x: x.audit is None, "any": lambda x: x.audit is not None}
        return [x for x in runs.values() if keep[f.audit](x)]
    return list(runs.values())


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool


def read_only_query(store: Store, sql: str, limit: int = 10_000,
                    timeout_s: float = QUERY_TIMEOUT_S) -> QueryResult:
    """Run one SQL statement that cannot change the store, for at most ``timeout_s``.

    DuckDB: the file is opened read-only with external access off (no COPY TO, no ATTACH); the
    statement runs in a thread this one watches, so the time limit and Ctrl-C interrupt it.
    PostgreSQL: only under a role that can read the store and nothing else (``roles.powers``:
    a superuser's READ ONLY transaction still runs COPY ... TO PROGRAM), in a READ ONLY
    transaction that is rolled back, one statement (a prepared statement cannot hold two),
    with a statement timeout (Ctrl-C cancels it on the server: psycopg does)."""
    if not store.read_only:
        raise RuntimeError("read_only_query needs a store opened read-only")
    sql = sql.strip().rstrip(";").strip()
    if not sql:
        raise UserError("The query is empty.", 'Give one SQL statement, e.g. "SELECT count(*) '
                                               'FROM results".')
    if not timeout_s > 0:
        raise UserError(f"--timeout {timeout_s!r} is not a time.", "Give seconds, e.g. 120.")
    from testbed.store.db import connection

    with connection(store.engine, store.location, begin=False) as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        if conn.dialect.name == "postgresql":
            from testbed.store.roles import refuse_powerful

            raw.rollback()
            raw.autocommit = False
            try:
                cur = raw.cursor()
                cur.execute("SET TRANSACTION READ ONLY")
                refuse_powerful(cur, store.location.shown)
                cur.execute(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
                cur.execute(sql, prepare=True)
                columns = [d[0] for d in cur.description or []]
                rows = [tuple(row) for row in cur.fetchmany(limit + 1)] if columns else []
            except UserError:
                raw.rollback()
                raise
            except Exception as exc:  # the database's own message is the useful part
                raw.rollback()
                raise _failed(exc, timeout_s) from exc
            raw.rollback()
        else:
            columns, rows = _duckdb_query(raw, sql, limit, timeout_s)
    return QueryResult(columns, rows[:limit], len(rows) > limit)


def _failed(exc: BaseException, timeout_s: float) -> UserError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".!")
    if "statement timeout" in first or "Interrupted" in first:
        return UserError(f"The query ran longer than {timeout_s:g} s and was stopped.",
                         "Narrow it (WHERE, LIMIT), or allow more time with --timeout S.")
    return UserError(f"The query failed: {first}.",
                     "`invoke store list tables` lists the tables and columns; the store is "
                     "read-only here.")


def _duckdb_query(raw: Any, sql: str, limit: int, timeout_s: float
                  ) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` here while a watcher thread waits for the time limit or a Ctrl-C and then
    calls DuckDB's ``interrupt()`` (DuckDB's own check for Ctrl-C misses a recursive query).
    Ctrl-C reaches the watcher through the interpreter's wakeup fd: Python's own handler runs
    only once DuckDB returns."""
    import select
    import signal
    import socket
    import threading
    import time

    cur = raw.cursor()
    stop = threading.Event()
    why: list[str] = []
    rd, wr = socket.socketpair()
    rd.setblocking(False)
    wr.setblocking(False)
    try:
        previous = signal.set_wakeup_fd(wr.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread: the time limit still holds
        previous = None

    def interrupt_until_stopped() -> None:
        # An interrupt() that comes before DuckDB has started executing the statement (still
        # parsing or binding, on a loaded machine) is cleared when execution starts: repeat
        # it until the statement has returned.
        while not stop.is_set():
            cur.interrupt()
            stop.wait(0.2)

    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                why.append("time")
                interrupt_until_stopped()
                return
            if select.select([rd], [], [], min(left, 0.2))[0]:
                with contextlib.suppress(BlockingIOError):
                    if signal.SIGINT in rd.recv(64):
                        why.append("ctrl-c")
                        interrupt_until_stopped()
                        return

    watcher = threading.Thread(target=watch, name="store-query-watch", daemon=True)
    watcher.start()
    try:
        cur.execute(sql)
        columns = [d[0] for d in cur.description or []]
        rows = [tuple(row) for row in cur.fetchmany(limit + 1)] if columns else []
    except Exception as exc:
        if "ctrl-c" in why:
            raise KeyboardInterrupt from exc
        if "time" in why:
            raise UserError(f"The query ran longer than {timeout_s:g} s and was stopped.",
                            "Narrow it (WHERE, LIMIT), or allow more time with --timeout S."
                            ) from exc
        raise _failed(exc, timeout_s) from exc
    finally:
        stop.set()
        watcher.join()
        if previous is not None:
            signal.set_wakeup_fd(previous)
        rd.close()
        wr.close()
    return columns, rows
