"""What changed between runs: regressions and improvements in every series of the store.

A *series* is one device (a configuration without its driver, torch and image versions: the
leaderboard's line of history), one workload (entry id and config) and one metric, its results
in the order they started. Labs measure the same devices every quarter while vendors ship new
drivers, torch builds and images; this finds where a series stepped, by how much, and what the
provenance says changed there (docs/store.md, "What changed").

1. **Candidates** come from Apache Otava (``otava.analysis.compute_change_points``): E-Divisive
   with means over sliding windows, then its merge step, which keeps a point only while a
   Student t-test between the segments either side gives a p-value under ``max_pvalue`` (the
   false-positive rate, one setting for every metric). It runs on the logarithm of each run's
   figure, so a step is a ratio whatever the unit.
2. **Confirmation** by the audit's own statistics (``testbed.audit.interval.ratio_interval``,
   the pooled-variance Student t interval of the log ratio): over the runs either side of the
   candidate (back to the previous change and on to the next, at most ``window`` runs each
   side), the interval of after / before must lie wholly above or below 1, or the runs either
   side do not differ. Each run's figure is the mean of its repeats; where a side holds one
   run, that run's repeats are its spread. The last run before and the first run after are
   compared on their repeats too, and that interval is shown (``neighbours``).
3. **Attribution** from the provenance only: the fields that differ between the last run
   before and the first run after (driver, firmware, torch, SDK, image, bench version, host,
   kernel, run settings). One field is that field's change, several are listed together, none
   is "unexplained: the machine or its load", with both runs' ``disturbed`` records.

Kept out of the series by default (``include_all`` keeps them in, marked): results whose
``disturbed`` record is true (a document without one is unknown, and stays in), results where
a plausibility check of the report (``testbed.report.checks.run_checks``) marks the metric or
one computed from it (an impossible FLOP/s condemns the GEMM rate it was computed from), and
results whose latest audit failed. The counts are part of the answer.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TextIO

import sqlalchemy as sa

from bench.documents import DeviceSpec, ResultDoc
from bench.errors import UserError
from bench.metrics import headline_metric
from bench.specs import find_spec
from testbed.audit.interval import Interval, ratio_interval
from testbed.report.checks import DERIVED_FROM, run_checks
from testbed.report.inputs import Device, label_devices
from testbed.report.metrics import direction, info
from testbed.store import tables as t
from testbed.store.queries import Filters, latest_audit, result_conditions
from testbed.store.rows import VERSION_FACTS
from testbed.store.store import Store, verified

DEFAULT_METRIC = headline_metric()  # the catalogue's headline (bench/metrics.yaml)
LOAD_CHUNK = 200
MIN_RUNS = 4  # fewer runs in a series: nothing to split
MIN_SIDE = 2  # runs a level needs: one run off the level is an outlier, not a change
# What the provenance can show changed, in the order a cause is written.
FIELDS = ("driver", "firmware", "torch", "sdk", "image", "bench", "host", "kernel",
          "settings")
UNEXPLAINED = "unexplained: the machine or its load"
EXCLUSIONS = {"disturbed": "disturbed", "check": "failing a plausibility check",
              "audit": "with a failed audit"}


@dataclass(frozen=True)
class ChangeSettings:
    """How sure a change must be. ``max_pvalue``: Otava's threshold for the t-test between
    the segments. Otava tests the split its E-Divisive chose, the best of up to ``window``
    places, so the nominal rate understates how often noise passes: at 0.001 the load test's
    75 series gave 13 false alarms, at 0.0001 one (docs/store.md).
    ``level``: the confidence of the interval that confirms a change; ``window``: Otava's
    window and the most runs taken either side of a change."""

    max_pvalue: float = 1e-4
    level: float = 0.95
    window: int = 50

    def __post_init__(self) -> None:
        if not 0 < self.max_pvalue < 1:
            raise UserError(f"--pvalue {self.max_pvalue} is not a probability.",
                            "Give a value between 0 and 1, e.g. 0.0001.")
        if not 0.5 <= self.level < 1:
            raise UserError(f"A confidence level of {self.level} is not usable.",
                            "Give a level between 0.5 and 1, e.g. 0.95.")
        if self.window < MIN_RUNS:
            raise UserError(f"A window of {self.window} runs is too short.",
                            f"Give at least {MIN_RUNS}.")


@dataclass(frozen=True)
class Disturbed:
    """A result's ``disturbed`` record: whether the machine was busy, and why."""

    value: bool
    reasons: tuple[str, ...] = ()

    def describe(self) -> str:
        if not self.value:
            return "not disturbed"
        return "disturbed: " + ("; ".join(self.reasons) or "no reason given")


def disturbed_of(doc: ResultDoc) -> Disturbed | None:
    """The document's ``disturbed`` record; None where it has none (written before the record
    existed: unknown) or one this code cannot read."""
    record = doc.get("disturbed")
    if isinstance(record, bool):
        return Disturbed(record)
    if not isinstance(record, dict) or not isinstance(record.get("value"), bool):
        return None
    reasons = []
    for reason in record.get("reasons") or []:
        if isinstance(reason, dict):
            text = reason.get("message") or reason.get("code")
            reasons.append(str(text) if text else json.dumps(reason, sort_keys=True))
        elif isinstance(reason, str):
            reasons.append(reason)
    return Disturbed(record["value"], tuple(reasons))


def _short(value: Any, length: int = 12) -> str:
    return str(value)[:length]


def _flat(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested settings as dotted keys with JSON values, to say which one differs."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: json.dumps(value, sort_keys=True)}


def provenance_of(doc: ResultDoc) -> dict[str, str]:
    """What a result was made with, field by field, as text (absent: not recorded)."""
    prov = doc.get("provenance") or {}
    dev = prov.get("device") or {}
    out: dict[str, str] = {}
    if dev.get("driver_version"):
        out["driver"] = str(dev["driver_version"])
    firmware = [f"{k} {v}" for k, v in sorted(dev.items())
                if ("firmware" in k or "vbios" in k) and v]
    if firmware:
        out["firmware"] = ", ".join(firmware)
    if (prov.get("torch") or {}).get("version"):
        out["torch"] = str(prov["torch"]["version"])
    if dev.get("sdk_version"):
        out["sdk"] = str(dev["sdk_version"])
    image = prov.get("image") or {}
    if image.get("native", True) is True and not image.get("digest"):
        out["image"] = "native"
    else:
        digest = str(image.get("digest") or "")
        out["image"] = str(image.get("tag") or "untagged") + (
            f"@{digest.removeprefix('sha256:')[:12]}" if digest else "")
    source = prov.get("source_sha256") or (prov.get("git") or {}).get("commit")
    if prov.get("bench_version"):
        out["bench"] = str(prov["bench_version"]) + (f" (source {_short(source)})"
                                                     if source else "")
    host = prov.get("host") or {}
    if host.get("hostname"):
        out["host"] = str(host["hostname"])
    if host.get("kernel") or host.get("os"):
        out["kernel"] = " ".join(str(host[k]) for k in ("os", "kernel") if host.get(k))
    wl = doc.get("workload") or {}
    settings = {"params": wl.get("params") or {}, "overrides": wl.get("overrides") or {},
                "precision": wl.get("precision_used"), "rules": doc.get("rules") or {}}
    out["settings"] = json.dumps(settings, sort_keys=True)
    return out


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: str | None
    after: str | None

    def describe(self) -> str:
        if self.field == "settings":
            return "run settings " + settings_diff(self.before, self.after)
        return f"{self.field} {self.before or 'none'} -> {self.after or 'none'}"


def settings_diff(before: str | None, after: str | None, most: int = 3) -> str:
    """The run settings that differ, ``key old -> new`` (at most ``most``)."""
    a = _flat(json.loads(before)) if before else {}
    b = _flat(json.loads(after)) if after else {}
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    parts = [f"{k} {a.get(k, 'unset')} -> {b.get(k, 'unset')}" for k in keys[:most]]
    more = f" and {len(keys) - most} more" if len(keys) > most else ""
    return "(" + "; ".join(parts) + more + ")"


def changed_fields(before: dict[str, str], after: dict[str, str]) -> list[FieldChange]:
    return [FieldChange(f, before.get(f), after.get(f)) for f in FIELDS
            if before.get(f) != after.get(f)]


@dataclass
class RunPoint:
    """One result's figure in a series."""

    doc_id: str
    run_id: str
    started_at: datetime
    device_key: str
    value: float
    repeats: tuple[float, ...]
    provenance: dict[str, str]
    disturbed: Disturbed | None  # None: the document has no record (unknown)
    audit: str | None  # latest verdict
    audit_id: str | None
    excluded: tuple[str, ...] = ()  # keys of EXCLUSIONS
    checks: tuple[str, ...] = ()  # the failed checks' messages


@dataclass(frozen=True)
class SeriesKey:
    hardware_key: str
    entry_id: str
    config: str
    metric: str


@dataclass
class Change:
    """A confirmed step in a series between ``before`` (the last run before) and ``after``
    (the first run after)."""

    key: SeriesKey
    before: RunPoint
    after: RunPoint
    interval: Interval  # after / before over the runs either side
    neighbours: Interval | str  # the two runs alone, from their repeats (or why none)
    pvalue: float  # Otava's t-test between the segments
    runs_before: int
    runs_after: int
    fields: list[FieldChange]

    @property
    def ratio(self) -> float:
        return self.interval.estimate

    @property
    def percent(self) -> float:
        return (self.ratio - 1) * 100

    @property
    def kind(self) -> str:
        """regression, improvement, or change (a metric with no better direction)."""
        better = direction(self.key.metric)
        if not better:
            return "change"
        return "improvement" if (self.ratio > 1) == (better > 0) else "regression"

    @property
    def explained(self) -> bool:
        return bool(self.fields)

    @property
    def cause(self) -> str:
        return "; ".join(f.describe() for f in self.fields) if self.fields else UNEXPLAINED

    def since(self) -> str:
        """Short: what it came with (``driver 550.54.15``), for a badge."""
        if not self.fields:
            return f"{self.after.started_at:%Y-%m-%d} (unexplained)"
        first = self.fields[0]
        text = ("run settings changed" if first.field == "settings"
                else f"{first.field} {first.after or 'none'}")
        return text + (f" (+{len(self.fields) - 1} more)" if len(self.fields) > 1 else "")

    def to_dict(self) -> dict[str, Any]:
        nb = self.neighbours
        return {
            "hardware_key": self.key.hardware_key, "entry_id": self.key.entry_id,
            "config": self.key.config, "metric": self.key.metric, "kind": self.kind,
            "ratio": self.ratio, "low": self.interval.low, "high": self.interval.high,
            "level": self.interval.level, "pvalue": self.pvalue,
            "runs_before": self.runs_before, "runs_after": self.runs_after,
            "before": {"run_id": self.before.run_id, "doc_id": self.before.doc_id,
                       "started_at": self.before.started_at.isoformat(),
                       "value": self.before.value,
                       "disturbed": _disturbed_dict(self.before.disturbed)},
            "after": {"run_id": self.after.run_id, "doc_id": self.after.doc_id,
                      "started_at": self.after.started_at.isoformat(),
                      "value": self.after.value,
                      "disturbed": _disturbed_dict(self.after.disturbed)},
            "fields": [{"field": f.field, "before": f.before, "after": f.after}
                       for f in self.fields],
            "cause": self.cause,
            "neighbours": nb.as_dict() if isinstance(nb, Interval) else {"none": nb},
        }


def _disturbed_dict(d: Disturbed | None) -> dict[str, Any] | None:
    return None if d is None else {"value": d.value, "reasons": list(d.reasons)}


@dataclass
class Series:
    key: SeriesKey
    label: str  # the device, as the site names it
    workload: str  # entry id, with the config where it is not the small one
    unit: str
    points: list[RunPoint]  # every result, in start order (kept and kept out)
    changes: list[Change] = field(default_factory=list)

    @property
    def kept(self) -> list[RunPoint]:
        return [p for p in self.points if not p.excluded]


@dataclass
class ChangeReport:
    series: list[Series]
    settings: ChangeSettings
    include_all: bool
    since: datetime | None
    excluded: dict[str, int]  # EXCLUSIONS key -> results kept out (or, with include_all, in)
    metrics: tuple[str, ...]

    @property
    def changes(self) -> list[Change]:
        """Every change (since ``since``), newest first."""
        found = [c for s in self.series for c in s.changes
                 if self.since is None or c.after.started_at >= self.since]
        return sorted(found, key=lambda c: c.after.started_at, reverse=True)

    def series_of(self, key: SeriesKey) -> Series:
        return next(s for s in self.series if s.key == key)

    def kept_out(self) -> str:
        """``kept out: 3 disturbed, ...`` (or what --include-all let in)."""
        parts = [f"{n} {EXCLUSIONS[k]}" for k, n in self.excluded.items() if n]
        if not parts:
            return "no result kept out (none disturbed, none failing a check or an audit)"
        if self.include_all:
            return "included although " + ", ".join(parts) + " (--include-all)"
        return "kept out: " + ", ".join(parts) + " (--include-all to see them)"


# -- reading the store --------------------------------------------------------------------------
def _rows(store: Store, f: Filters, metrics: Sequence[str]) -> list[Any]:
    r, m = t.results.c, t.metrics.c
    la = latest_audit()
    query = (sa.select(r.doc_id, r.run_id, r.entry_id, r.config, r.started_at, r.device_key,
                       r.hardware_key, r.device_facts, r.vendor, r.device_name, m.metric,
                       m.value, m.unit, la.c.verdict, la.c.audit_id)
             .select_from(t.results.join(t.metrics, m.doc_id == r.doc_id)
                          .outerjoin(la, la.c.result_id == r.doc_id))
             .where(*result_conditions(f), r.status == "ok", m.metric.in_(list(metrics)),
                    m.value.is_not(None))
             .order_by(r.started_at, r.run_id, r.doc_id))
    with store.begin() as conn:
        return list(conn.execute(query).all())


def _documents(store: Store, f: Filters, metrics: Sequence[str]
               ) -> Iterator[tuple[str, ResultDoc]]:
    """Each matching result document that measured one of ``metrics``, verified against its
    address; one query, read in parts."""
    r, d, m = t.results.c, t.documents.c, t.metrics.c
    measured = sa.select(m.doc_id).where(m.metric.in_(list(metrics)), m.value.is_not(None))
    query = (sa.select(d.doc_id, d.body)
             .select_from(t.documents.join(t.results, r.doc_id == d.doc_id))
             .where(*result_conditions(f), r.status == "ok", r.doc_id.in_(measured)))
    with store.begin() as conn:
        for part in conn.execute(query).partitions(LOAD_CHUNK):
            for doc_id, body in part:
                yield doc_id, json.loads(verified(doc_id, body))


def _repeats(entry: Any) -> tuple[float, ...]:
    values = entry.get("per_repeat") if isinstance(entry, dict) else None
    return tuple(float(v) for v in values or []
                 if isinstance(v, int | float) and not isinstance(v, bool)
                 and math.isfinite(v) and v > 0)


@dataclass
class _DocFacts:
    repeats: dict[str, tuple[float, ...]]
    provenance: dict[str, str]
    disturbed: Disturbed | None
    findings: dict[str, tuple[str, ...]]  # metric -> messages of the checks that mark it


def computed_from(metric: str) -> set[str]:
    """The metric and every metric computed from it (FLOP/s from a throughput): a check that
    fails on one of those fails on the figure it was computed from too."""
    out, todo = {metric}, [metric]
    while todo:
        source = todo.pop()
        for derived, sources in DERIVED_FROM.items():
            if source in sources and derived not in out:
                out.add(derived)
                todo.append(derived)
    return out


def _facts(doc: ResultDoc, metrics: Sequence[str], spec: DeviceSpec | None
           ) -> _DocFacts:
    entries = doc.get("metrics") or {}
    findings: dict[str, list[str]] = {}
    for outcome in run_checks(doc, spec):
        for finding in outcome.findings:
            if finding.point is not None:
                continue
            for metric in metrics:
                if any(finding.marks(m) for m in computed_from(metric)):
                    findings.setdefault(metric, []).append(finding.message)
    return _DocFacts({m: _repeats(entries.get(m)) for m in metrics}, provenance_of(doc),
                     disturbed_of(doc), {k: tuple(v) for k, v in findings.items()})


def hardware_labels(facts_by_hardware: dict[str, dict[str, str]]) -> dict[str, str]:
    """A name per hardware, as the report names devices (the site's names)."""
    devices = [Device(k, {n: v for n, v in facts.items() if n not in VERSION_FACTS})
               for k, facts in facts_by_hardware.items()]
    return {k: d.label for k, d in label_devices(devices).items()}


def load_series(store: Store, f: Filters, metrics: Sequence[str] = (DEFAULT_METRIC,),
                include_all: bool = False) -> tuple[list[Series], dict[str, int]]:
    """Every series matching ``f`` with its points (kept out ones marked), and how many
    results were kept out for each reason."""
    for metric in metrics:
        if not info(metric).ratio_scale:
            raise UserError(f"--metric {metric} has no ratio scale (a percentage or a "
                            "temperature): a change in it is not a ratio.",
                            "Pick a rate, a time, a size or an energy, e.g. "
                            f"{DEFAULT_METRIC}, latency_mean_s, items_per_j.")
    rows = _rows(store, f, metrics)
    if not rows:
        raise UserError(f"No measured {' or '.join(metrics)} in the store "
                        f"{store.location.shown} matches these filters.",
                        "Loosen them; `invoke store list results` shows what is stored.")
    wanted = {row.doc_id for row in rows}
    specs: dict[tuple[str, str], DeviceSpec | None] = {}
    vendor = {row.doc_id: (row.device_name, row.vendor) for row in rows}
    facts: dict[str, _DocFacts] = {}
    for doc_id, doc in _documents(store, f, metrics):
        if doc_id not in wanted:
            continue
        name = vendor[doc_id]
        if name not in specs:
            specs[name] = find_spec(*name)
        facts[doc_id] = _facts(doc, metrics, specs[name])
    labels = hardware_labels({row.hardware_key: json.loads(row.device_facts) for row in rows})
    configs: dict[str, set[str]] = {}
    for row in rows:
        configs.setdefault(row.entry_id, set()).add(row.config)
    series: dict[SeriesKey, Series] = {}
    excluded: dict[str, set[str]] = {k: set() for k in EXCLUSIONS}
    for row in rows:
        if row.doc_id not in facts or not (row.value > 0):
            continue  # a figure that is not positive has no ratio
        fx = facts[row.doc_id]
        why = []
        if fx.disturbed is not None and fx.disturbed.value:
            why.append("disturbed")
        if fx.findings.get(row.metric):
            why.append("check")
        if row.verdict == "fail":
            why.append("audit")
        for reason in why:
            excluded[reason].add(row.doc_id)
        key = SeriesKey(row.hardware_key, row.entry_id, row.config, row.metric)
        if key not in series:
            shown = row.entry_id if len(configs[row.entry_id]) == 1 else \
                f"{row.entry_id} ({row.config})"
            series[key] = Series(key, labels[row.hardware_key], shown, row.unit or "", [])
        series[key].points.append(RunPoint(
            row.doc_id, row.run_id, row.started_at, row.device_key, float(row.value),
            fx.repeats.get(row.metric) or (float(row.value),), fx.provenance, fx.disturbed,
            row.verdict, row.audit_id, () if include_all else tuple(why),
            fx.findings.get(row.metric, ())))
    ordered = sorted(series.values(), key=lambda s: (s.label, s.workload, s.key.metric))
    return ordered, {k: len(v) for k, v in excluded.items()}


# -- finding the changes -------------------------------------------------------------------------
def _candidates(logs: list[float], settings: ChangeSettings) -> list[tuple[int, float]]:
    """Otava's change points: (index of the first point after, p-value)."""
    from otava.analysis import compute_change_points

    # A Python list, not an array: Otava's detector slices its window only from a sequence
    # (an ndarray is taken whole, so every window would see the entire series).
    points, _ = compute_change_points(list(logs), window_len=settings.window,
                                      max_pvalue=settings.max_pvalue)
    return sorted((cp.index, float(cp.stats.pvalue)) for cp in points
                  if 0 < cp.index < len(logs))


def _side(points: Sequence[RunPoint]) -> tuple[float, list[float]]:
    """A side's figure and the samples of its spread: the geometric mean of its runs'
    figures (the interval is on the log scale, and one wild figure moves a geometric mean
    least) and those figures; a lone run's figure and its repeats."""
    figure = math.exp(math.fsum(math.log(p.value) for p in points) / len(points))
    if len(points) > 1:
        return figure, [p.value for p in points]
    return figure, list(points[0].repeats)


def segment_interval(before: Sequence[RunPoint], after: Sequence[RunPoint], level: float
                     ) -> Interval | str:
    """after / before with its interval (the audit's pooled-variance t on the log ratio)."""
    b, b_samples = _side(before)
    a, a_samples = _side(after)
    return ratio_interval(b, b_samples, a, a_samples, level)


def neighbour_interval(before: RunPoint, after: RunPoint, level: float) -> Interval | str:
    """The last run before against the first run after, from their repeats alone."""
    return ratio_interval(before.value, before.repeats, after.value, after.repeats, level)


def _levels(candidates: list[tuple[int, float]], n: int) -> list[tuple[int, float]]:
    """Drop the candidates around a level of fewer than MIN_SIDE runs: one run off its
    neighbours (an impossible figure no check caught, a bad day) is two candidate points
    for E-Divisive, a step out and a step back, and no change. A step at the newest run
    waits for a second run."""
    candidates = list(candidates)
    while True:
        bounds = [0, *(i for i, _ in candidates), n]
        short = next((k for k in range(len(bounds) - 1)
                      if bounds[k + 1] - bounds[k] < MIN_SIDE), None)
        if short is None:
            return candidates
        # the level bounds[short]:bounds[short + 1] is bounded by candidates short - 1 and short
        for k in sorted({k for k in (short - 1, short) if 0 <= k < len(candidates)},
                        reverse=True):
            del candidates[k]


def detect(series: Series, settings: ChangeSettings) -> list[Change]:
    """The confirmed changes of one series (its kept points)."""
    points = series.kept
    if len(points) < MIN_RUNS:
        return []
    candidates = _levels(_candidates([math.log(p.value) for p in points], settings),
                         len(points))
    w = settings.window
    while True:
        changes: list[Change] = []
        rejected = None
        bounds = [0, *(i for i, _ in candidates), len(points)]
        for k, (i, pvalue) in enumerate(candidates):
            before = points[max(bounds[k], i - w):i]
            after = points[i:min(bounds[k + 2], i + w)]
            interval = segment_interval(before, after, settings.level)
            if isinstance(interval, str) or interval.low <= 1 <= interval.high:
                rejected = k
                break
            changes.append(Change(
                series.key, before[-1], after[0], interval,
                neighbour_interval(before[-1], after[0], settings.level), pvalue,
                len(before), len(after),
                changed_fields(before[-1].provenance, after[0].provenance)))
        if rejected is None:
            return changes
        del candidates[rejected]  # its neighbours' segments now meet: judge them again


def find_changes(store: Store, f: Filters, metrics: Sequence[str] = (DEFAULT_METRIC,),
                 include_all: bool = False, settings: ChangeSettings | None = None
                 ) -> ChangeReport:
    """The changes of every series matching ``f``. ``f.since`` limits the changes reported,
    not the history: the runs before it are what a change since then is measured against."""
    settings = settings or ChangeSettings()
    series, excluded = load_series(store, replace(f, since=None), metrics, include_all)
    for s in series:
        s.changes = detect(s, settings)
    return ChangeReport(series, settings, include_all, f.since, excluded, tuple(metrics))


def latest_changes(report: ChangeReport) -> dict[tuple[str, str, str], tuple[Change, set[str]]]:
    """Per (hardware, entry id, config) of the headline metric: the latest change and the
    device configurations measured since it (the rows a leaderboard badge belongs on)."""
    out = {}
    for s in report.series:
        if s.key.metric != DEFAULT_METRIC or not s.changes:
            continue
        last = s.changes[-1]
        since = {p.device_key for p in s.kept if p.started_at >= last.after.started_at}
        out[(s.key.hardware_key, s.key.entry_id, s.key.config)] = (last, since)
    return out


# -- what `invoke changes` prints ----------------------------------------------------------------
def percent_text(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


def interval_text(change: Change) -> str:
    return (f"{(change.interval.low - 1) * 100:+.1f} .. "
            f"{(change.interval.high - 1) * 100:+.1f} %")


def disturbed_text(point: RunPoint) -> str:
    return (f"run {point.run_id}: "
            + (point.disturbed.describe() if point.disturbed else "no disturbed record"))


def summary_line(report: ChangeReport, where: str) -> str:
    results = len({p.doc_id for s in report.series for p in s.points})
    since = f" since {report.since:%Y-%m-%d %H:%M}" if report.since else ""
    return (f"changes: {len(report.changes)} change(s){since} in {len(report.series)} "
            f"series ({results} result(s)) in {where}; Otava p < "
            f"{report.settings.max_pvalue:g}, confirmed by the "
            f"{report.settings.level * 100:.0f} % interval of the runs either side")


def print_changes(report: ChangeReport, where: str, fmt: str = "table",
                  out: TextIO | None = None) -> None:
    from testbed.store.cli import table_text

    out = out or sys.stdout
    if fmt == "json":
        json.dump({"store": where, "since": report.since.isoformat() if report.since else None,
                   "max_pvalue": report.settings.max_pvalue, "level": report.settings.level,
                   "window": report.settings.window, "include_all": report.include_all,
                   "metrics": list(report.metrics), "series": len(report.series),
                   "excluded": report.excluded,
                   "changes": [c.to_dict() | {"device": report.series_of(c.key).label}
                               for c in report.changes]}, out, indent=1)
        out.write("\n")
        return
    if fmt != "table":
        raise UserError(f"--format {fmt!r} is not table or json.", "Pick one of them.")
    print(summary_line(report, where), file=out)
    print(report.kept_out(), file=out)
    changes = report.changes
    if not changes:
        print("No change: every series is one level within its noise.", file=out)
        return
    rows = [[c.after.started_at, report.series_of(c.key).label,
             report.series_of(c.key).workload, c.key.metric, c.kind,
             percent_text(c.ratio), interval_text(c), c.cause] for c in changes]
    print(table_text(["after (UTC)", "device", "workload", "metric", "kind", "change",
                      f"{report.settings.level * 100:.0f} % interval", "cause"], rows), file=out)
    for c in changes:
        if not c.explained:
            print(f"  {c.after.started_at:%Y-%m-%d} {report.series_of(c.key).workload} on "
                  f"{report.series_of(c.key).label}: nothing in the provenance changed; "
                  f"{disturbed_text(c.before)}; {disturbed_text(c.after)}", file=out)


# -- the section of `invoke report --from-store` -----------------------------------------------
def report_section(report: ChangeReport | None, why_none: str = "") -> Any:
    """The report's "What changed" section: the changes in its range, newest first."""
    from testbed.report.views import Table
    from testbed.scorecard.render import Block, ScorecardSection

    sec = ScorecardSection("changes", "What changed: regressions and improvements in range")
    if report is None:
        sec.blocks.append(Block(text=why_none))
        return sec
    since = f" since {report.since:%Y-%m-%d}" if report.since else ""
    sec.blocks.append(Block(
        headline=f"{len(report.changes)} change(s){since} in {len(report.series)} series",
        text=(f"Each series is one device (without its versions), workload and metric of the "
              f"store, in the order its results ran; a change is a step Apache Otava finds "
              f"(p < {report.settings.max_pvalue:g}) and the {report.settings.level * 100:.0f} % "
              "interval of the runs either side confirms, attributed to what the provenance "
              "shows changed between the last run before and the first run after. "
              + report.kept_out().capitalize() + ". `invoke changes` lists the same.")))
    if report.changes:
        rows: list[list[Any]] = [
            [f"{c.after.started_at:%Y-%m-%d %H:%M}", report.series_of(c.key).label,
             report.series_of(c.key).workload, c.key.metric, c.kind, percent_text(c.ratio),
             interval_text(c), c.cause,
             f"{c.before.run_id} -> {c.after.run_id}"
             + ("" if c.explained else f" ({disturbed_text(c.before)}; "
                                       f"{disturbed_text(c.after)})")]
            for c in report.changes]
        sec.blocks.append(Block(table=Table(
            "Changes", ["after (UTC)", "device", "workload", "metric", "kind", "change",
                        f"{report.settings.level * 100:.0f} % interval", "cause",
                        "runs either side"],
            rows, anchor="changes-table")))
    return sec
