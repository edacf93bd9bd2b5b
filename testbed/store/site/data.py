"""What the leaderboard shows, worked out with the report's own analysis.

Per workload, the stored results of every matching device are loaded (hash-verified), run
through ``testbed.report.analysis.analyse`` (the same plausibility checks, marks, composite
and baseline-relative scores as ``invoke report``), and reduced to one row per device
configuration; then the documents are dropped before the next workload, so memory stays that
of one workload. Device labels and workload keys are worked out once over the whole store, so
a device has the same name on every page.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from bench.documents import ResultDoc
from bench.errors import UserError
from bench.metrics import headline_metric
from bench.specs import find_spec
from bench.validate import FileReport
from testbed.report.analysis import Analysis, Workload, analyse, usable, workload_keys
from testbed.report.inputs import Device, Result, ResultSet, collect, label_devices
from testbed.report.views import Cell, status_marks, value_cell
from testbed.store import tables as t
from testbed.store.queries import Filters, latest_audit, result_conditions, submitted_by
from testbed.store.rows import VERSION_FACTS
from testbed.store.store import Store, verified

# The figure a leaderboard ranks by: the catalogue's headline (bench/metrics.yaml), the
# throughput in the workload's own unit (for operator sweeps the headline point's FLOP/s or B/s).
HEADLINE = headline_metric()
LOAD_CHUNK = 200


@dataclass
class StoredResult:
    """A stored result as the site lists it (no document body)."""

    doc_id: str
    run_id: str
    workload: str  # the workload key
    device_key: str
    hardware_key: str
    started_at: datetime
    status: str
    versions: dict[str, str]  # driver, torch, image facts
    audit: str | None
    audit_id: str | None
    audited_by: str | None = None  # the principal whose signed verdict it is
    submitted_by: str | None = None  # the principal who signed its run's manifest
    value: float | None = None  # the headline, when measured
    unit: str = ""
    marks: str = ""
    notes: tuple[str, ...] = ()


@dataclass
class Row:
    """One device configuration on a workload's leaderboard."""

    device: Device
    status: str
    headline: Cell
    value: float | None  # usable for ranking (None: not measured or failed a check)
    why_unranked: str
    marks: str  # non-comparable marks (P, O, H, D, C) of its results
    composite: float | None
    composite_parts: tuple[str, ...]
    baseline: float | None
    results: list[StoredResult]
    rank: int | None = None

    @property
    def audit(self) -> str:
        """pass: every result passed its latest audit; fail: one failed; inconclusive: one
        was inconclusive (docs/audit.md); partly; none."""
        verdicts = [r.audit for r in self.results]
        if any(v not in (None, "pass") for v in verdicts):
            return "fail" if "fail" in verdicts else \
                "inconclusive" if "inconclusive" in verdicts else "other"
        if verdicts and all(v == "pass" for v in verdicts):
            return "pass"
        return "partly" if any(verdicts) else "none"


@dataclass
class Board:
    workload: Workload
    rows: list[Row]
    composite_metrics: list[str]
    baseline: Device | None
    findings: list[tuple[str, str, str]]  # (device label, check, what failed) as the report
    # what was measured: configuration, precision, batch size, parameters (as the results say)
    facts: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class SiteData:
    devices: dict[str, Device]
    workloads: dict[str, Workload]
    boards: dict[str, Board] = field(default_factory=dict)
    results: dict[str, StoredResult] = field(default_factory=dict)
    hardware: dict[str, list[str]] = field(default_factory=dict)  # hardware key -> devices
    baseline: Device | None = None


def _stub(row: Any) -> Result:
    """Enough of a result for ``workload_keys`` (which reads only the workload fields)."""
    return Result(Path(row.doc_id), {"workload": {
        "id": row.entry_id, "config": row.config, "name": row.workload, "mode": row.mode,
        "group": row.workload_group, "item_unit": row.item_unit}}, row.device_key)


def gather(store: Store, f: Filters, baseline: str | None = None,
           keep: Callable[[str, bytes], None] | None = None) -> SiteData:
    """Everything the site shows; ``keep`` gets each result document's bytes as they are read
    (the site writes its copies then, so every document is read once)."""
    r = t.results.c
    la = latest_audit()
    query = (sa.select(r.doc_id, r.run_id, r.entry_id, r.config, r.workload, r.mode,
                       r.workload_group, r.item_unit, r.device_key, r.hardware_key,
                       r.device_facts, r.started_at, r.status, la.c.verdict, la.c.audit_id,
                       la.c.audited_by, submitted_by().label("submitted_by"))
             .select_from(t.results.outerjoin(la, la.c.result_id == r.doc_id))
             .where(*result_conditions(f)).order_by(r.started_at, r.doc_id))
    with store.begin() as conn:
        rows = conn.execute(query).all()
    if not rows:
        raise UserError(f"No result in the store {store.location.shown} matches.",
                        "Add runs (`invoke store add results/`) or loosen the filters.")
    facts = {row.device_key: json.loads(row.device_facts) for row in rows}
    devices = label_devices(Device(k, v, spec=find_spec(v.get("name"), v.get("vendor")))
                            for k, v in facts.items())
    keys = workload_keys(_stub(row) for row in rows)
    data = SiteData(devices, {w.key: w for w in keys.values()})
    for row in rows:
        key = keys[(row.entry_id, row.config)].key
        data.results[row.doc_id] = StoredResult(
            row.doc_id, row.run_id, key, row.device_key, row.hardware_key, row.started_at,
            row.status, {k: v for k, v in facts[row.device_key].items() if k in VERSION_FACTS},
            row.verdict, row.audit_id, row.audited_by, row.submitted_by)
        members = data.hardware.setdefault(row.hardware_key, [])
        if row.device_key not in members:
            members.append(row.device_key)
    data.baseline = _baseline_device(store, f, baseline, devices) if baseline else None
    for key in sorted(data.workloads, key=lambda k: data.workloads[k].order):
        wl = data.workloads[key]
        inputs = _result_set(workload_documents(store, f, wl.id, wl.config, keep), devices)
        base = None
        if data.baseline is not None:
            mine = [x for x in inputs.results if x.device_key == data.baseline.key]
            if mine:
                base = ResultSet(results=mine, devices={data.baseline.key: data.baseline})
        analysis = analyse(inputs, baseline=base, keys=keys)
        data.boards[key] = board(analysis, key, data)
    return data


def _baseline_device(store: Store, f: Filters, text: str, devices: dict[str, Device]
                     ) -> Device:
    exact = [d for d in devices.values() if d.label.lower() == text.lower() or d.key == text]
    if len(exact) == 1:
        return exact[0]
    r = t.results.c
    with store.begin() as conn:
        keys = set(conn.execute(sa.select(r.device_key).distinct().where(
            *result_conditions(replace(f, device=(text,))))).scalars())
    keys |= {k for k, d in devices.items() if text.lower() in d.label.lower()}
    if len(keys) != 1:
        names = "; ".join(sorted(devices[k].label for k in keys if k in devices))
        raise UserError(f"--baseline {text!r} matches {len(keys)} devices"
                        + (f" ({names})" if names else "") + ".",
                        "Name exactly one device configuration (its label as the site shows "
                        "it, or part of its device key).")
    return devices[keys.pop()]


def _stream(store: Store, query: sa.Select[Any]) -> Iterator[tuple[str, bytes]]:
    """(doc_id, original bytes) of each row of ``query``, verified against the address; one
    query, read in parts (fetching by lists of ids costs a scan per list)."""
    with store.begin() as conn:
        for part in conn.execute(query).partitions(LOAD_CHUNK):
            for doc_id, body in part:
                yield doc_id, verified(doc_id, body)


def workload_documents(store: Store, f: Filters, entry_id: str, config: str,
                       keep: Callable[[str, bytes], None] | None = None
                       ) -> Iterator[tuple[str, bytes]]:
    r, d = t.results.c, t.documents.c
    query = (sa.select(d.doc_id, d.body)
             .select_from(t.documents.join(t.results, r.doc_id == d.doc_id))
             .where(*result_conditions(f), r.entry_id == entry_id, r.config == config))
    for doc_id, data in _stream(store, query):
        if keep:
            keep(doc_id, data)
        yield doc_id, data


def audit_documents(store: Store, f: Filters) -> Iterator[tuple[str, bytes]]:
    """The latest verdict of each result matching ``f``."""
    r, d = t.results.c, t.documents.c
    la = latest_audit()
    judged = sa.select(la.c.audit_id).join(t.results, r.doc_id == la.c.result_id).where(
        *result_conditions(f))
    return _stream(store, sa.select(d.doc_id, d.body).where(d.doc_id.in_(judged)))


def doc_path(doc_id: str) -> Path:
    """Where the site keeps a result document (relative to the site root)."""
    return Path("documents", f"{doc_id}.json")


def _result_set(documents: Iterable[tuple[str, bytes]], devices: dict[str, Device]
                ) -> ResultSet:
    """Stored documents were validated when added and their bytes are verified as they are
    read, so they go into the report's ``collect`` as valid reports without a second schema
    pass."""
    rs = collect(FileReport(doc_path(doc_id), "result", [], json.loads(data))
                 for doc_id, data in documents)
    rs.devices = {k: devices[k] for k in rs.devices}
    return rs


def _values(values: Iterable[Any]) -> str:
    """One value, or every distinct one ("varies: ...") where the results differ."""
    seen = list(dict.fromkeys(json.dumps(v, sort_keys=True) if not isinstance(v, str) else v
                              for v in values if v is not None))
    if not seen:
        return "—"
    return seen[0] if len(seen) == 1 else "varies: " + ", ".join(seen)


BATCH_PARAMS = ("batch_size", "batch", "batch_sizes")


def workload_facts(docs: list[ResultDoc]) -> list[tuple[str, str]]:
    """What the board's results measured, as they record it: the named configuration, the
    precision used (and requested where it differs), the batch size and every parameter."""
    wls = [d.get("workload") or {} for d in docs]
    params = [w.get("params") or {} for w in wls]
    facts = [("configuration", _values(w.get("config") for w in wls)),
             ("precision", _values(w.get("precision_used") for w in wls))]
    requested = _values(w.get("precision_requested") for w in wls)
    if requested != facts[1][1]:
        facts.append(("precision requested", requested))
    batch = next((k for k in BATCH_PARAMS if any(k in p for p in params)), None)
    if batch is not None:
        facts.append(("batch size", _values(p.get(batch) for p in params)))
    names = sorted({k for p in params for k in p})
    facts.append(("parameters", "; ".join(f"{k} = {_values(p.get(k) for p in params)}"
                                          for k in names) or "none"))
    return facts


def board(analysis: Analysis, key: str, data: SiteData) -> Board:
    wl = analysis.workloads[key]
    compared = [d for d in analysis.device_order() if (d, key) in analysis.status.index]
    # A composite score is min-max over the devices compared: with one device it says
    # nothing (0.5), so it is left out, as the report leaves it out.
    comp = analysis.composites.get(key) if len(compared) > 1 else None
    cells = analysis.cells
    head = cells[(cells["metric"] == HEADLINE)] if len(cells) else cells
    for _, cell in head.iterrows():
        res = data.results[Path(cell["path"]).stem]
        res.value = None if pd.isna(cell["value"]) else float(cell["value"])
        res.unit, res.marks, res.notes = cell["unit"], cell["marks"], tuple(cell["notes"])
    rows = []
    for d in analysis.device_order():
        if (d, key) not in analysis.status.index:
            continue
        status = analysis.status.loc[(d, key), "status"]
        value, why = usable(analysis.cell(d, key, HEADLINE)) if status == "ok" else (None,
                                                                                     status)
        score = comp.scores.get(d) if comp else None
        bl = analysis.baseline.summary.get((key, d)) if analysis.baseline else None
        members = [data.results[Path(r.path).stem] for r in analysis.results_for(d, key)]
        rows.append(Row(analysis.devices[d], status, value_cell(analysis, d, key, HEADLINE),
                        value, why, status_marks(analysis, d, key),
                        score.score if score else None,
                        tuple(f"{p.metric}: x~ {p.scaled:+.3f}, k {p.weight:.3f}"
                              for p in score.parts) if score else (),
                        bl, sorted(members, key=lambda m: m.started_at, reverse=True)))
    ranked = sorted((r for r in rows if r.value is not None), key=lambda r: -r.value)
    for i, row in enumerate(ranked, 1):
        row.rank = i
    rest = sorted((r for r in rows if r.value is None),
                  key=lambda r: (r.status != "ok", r.device.label))
    findings = [(analysis.devices[rv.result.device_key].label, f.check, f.message)
                for rv in analysis.reviews for f in rv.findings]
    findings += [("several", "identical_columns", c.message) for c in analysis.copies]
    docs = [rv.result.doc for rv in analysis.reviews if rv.workload == key]
    return Board(wl, ranked + rest, list(comp.used) if comp else [],
                 analysis.baseline.device if analysis.baseline else None, findings,
                 workload_facts(docs))
