"""From validated result documents to the numbers a report shows.

1. Every result is checked for plausibility (``checks``) and marked where it is not
   comparable (precision fallback, overridden parameters, host-bound, CPU fallback, a
   measurement its run found disturbed).
2. One long table (pandas) holds every scalar metric of every result with its marks; it is
   aggregated per (device, workload, metric) over runs: the mean, the number of results and
   their spread. Aggregated tables are checked once more, across metrics (a table that is a
   copy of another, over the whole report and within each mode and workload group) and
   across devices (a value far beyond what the spec sheets predict against the others: a
   warning, kept out of the others' scales).
3. Composite scores per workload over the devices compared, and baseline-relative scores
   against a baseline result set when one is named.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.documents import AnyMetrics, AnyResultDoc
from bench.errors import UserError
from bench.metrics import catalogue
from testbed.report import checks
from testbed.report.claims import find_claims
from testbed.report.inputs import Device, Result, ResultSet
from testbed.report.metrics import (
    GROUP_TITLES,
    GROUPS,
    MODE_TITLES,
    MODES,
    ScoreSettings,
    direction,
    info,
)
from testbed.report.scores import (
    LLM_TIERS,
    LOAD_METRIC,
    CompositeResult,
    TierScore,
    composite_scores,
    llm_tier_scores,
    relative_score,
    weighted_geomean,
    weighted_mean,
)

MARKS: dict[str, str] = {
    "X": "failed a plausibility check (left out of scores)",
    "F": "the model's outputs differ from the CPU reference (model function failed): no "
         "performance score for it on this device",
    "P": "precision fell back from the one requested",
    "O": "a workload parameter, run rule or compile choice was overridden (--set)",
    "H": "host-bound: device utilisation stayed low",
    "D": "disturbed while it measured: other processes, CPU steal, clock throttling, other "
         "processes on the device or a repeat spread beyond the run's quiet thresholds (the "
         "figures are not representative; re-run on a quiet machine)",
    "C": "some operators fell back to the CPU",
    "W": "far beyond what the spec sheets predict against the other devices (kept out of "
         "the others' score scales and chart scales)",
}
NON_COMPARABLE = "POHDC"
# Marks a score cell carries when one of the metrics it used carries them.
METRIC_WARNINGS = "W"
WITHHELD = "XF"  # values left out of every score
# Workload groups that measure function, not performance: never scored.
UNSCORED_GROUPS = ("function",)


@dataclass(frozen=True)
class Workload:
    key: str
    id: str
    config: str
    name: str
    mode: str
    group: str
    item_unit: str

    @property
    def order(self) -> tuple[int, int, str]:
        return (MODES.index(self.mode) if self.mode in MODES else 9,
                GROUPS.index(self.group) if self.group in GROUPS else 9, self.key)


@dataclass
class Review:
    """One result after the checks: outcomes, failed findings and result-wide marks."""

    result: Result
    workload: str
    outcomes: list[checks.CheckOutcome]
    marks: dict[str, str]  # code -> why (result-wide: P, O, H, D, C)

    @property
    def findings(self) -> list[checks.Finding]:
        return [f for o in self.outcomes for f in o.findings]


@dataclass
class BaselineScores:
    device: Device
    # (workload, test device) -> metric -> ratio
    ratios: dict[tuple[str, str], dict[str, float | None]] = field(default_factory=dict)
    # geometric mean of the ratios (the summary), and their arithmetic mean beside it
    summary: dict[tuple[str, str], float | None] = field(default_factory=dict)
    arithmetic: dict[tuple[str, str], float | None] = field(default_factory=dict)
    tiers: dict[tuple[str, str], list[TierScore]] = field(default_factory=dict)


@dataclass(frozen=True)
class Outlier:
    """A value far beyond what the spec sheets predict against the other devices."""

    device: str
    workload: str
    metric: str
    times: float  # its peak-normalised value over the others' median
    message: str


@dataclass
class Analysis:
    inputs: ResultSet
    settings: ScoreSettings
    workloads: dict[str, Workload]
    reviews: list[Review]
    cells: pd.DataFrame  # long: one row per (result, metric)
    table: pd.DataFrame  # aggregated: one row per (device, workload, metric)
    status: pd.DataFrame  # one row per (device, workload)
    copies: list[checks.ColumnCopy]
    composites: dict[str, CompositeResult]
    baseline_inputs: ResultSet | None = None
    baseline: BaselineScores | None = None
    outliers: list[Outlier] = field(default_factory=list)
    claims: list[Any] = field(default_factory=list)  # testbed.report.claims.Claim
    check_settings: checks.CheckSettings = field(default_factory=checks.CheckSettings)

    @property
    def devices(self) -> dict[str, Device]:
        return self.inputs.devices

    def device_order(self) -> list[str]:
        return sorted(self.devices, key=lambda k: self.devices[k].label)

    def workload_order(self) -> list[str]:
        return [w.key for w in sorted(self.workloads.values(), key=lambda w: w.order)]

    def cell(self, device: str, workload: str, metric: str) -> pd.Series | None:
        try:
            return self.table.loc[(device, workload, metric)]
        except KeyError:
            return None

    def results_for(self, device: str, workload: str) -> list[Result]:
        return [r.result for r in self.reviews
                if r.result.device_key == device and r.workload == workload]


# -- marks -----------------------------------------------------------------------------------
def result_marks(doc: AnyResultDoc) -> dict[str, str]:
    """Why a result is not comparable with others (empty when it is)."""
    wl = doc["workload"]
    marks: dict[str, str] = {}
    if wl.get("precision_used") != wl.get("precision_requested"):
        reason = wl.get("precision_reason") or "no reason given"
        marks["P"] = (f"precision {wl.get('precision_used')} instead of "
                      f"{wl.get('precision_requested')}: {reason}")
    if wl.get("overrides"):
        marks["O"] = "overridden: " + ", ".join(f"{k}={v}" for k, v in wl["overrides"].items())
    # a published row's fact the table does not print, assumed by the user (invoke import
    # --assume): shown beside every figure of the row
    assumed = [a for a in doc.get("assumptions") or [] if isinstance(a, dict)]
    if assumed:
        text = "assumed, not printed: " + "; ".join(
            f"{a.get('fact')}={a.get('value')} ({a.get('given')})" for a in assumed)
        marks["O"] = f"{marks['O']}; {text}" if "O" in marks else text
    host_bound = (doc.get("metrics") or {}).get("host_bound") or {}
    if host_bound.get("value") is True:
        marks["H"] = ("device utilisation below "
                      f"{host_bound.get('threshold_util_pct', '?')} %: the host limits the "
                      "measurement")
    disturbed = doc.get("disturbed")
    if isinstance(disturbed, dict) and disturbed.get("value") is True:
        said = "; ".join(str(r.get("message")) for r in disturbed.get("reasons") or []
                         if isinstance(r, dict))
        marks["D"] = f"disturbed: {said or 'no reason recorded'}"
    fallback = (wl.get("info") or {}).get("cpu_fallback")
    points_fallback = [p for p in doc.get("points") or [] if p.get("cpu_fallback")]
    if fallback or points_fallback:
        what = fallback if isinstance(fallback, str) else (
            ", ".join(map(str, fallback)) if isinstance(fallback, list) else
            f"{len(points_fallback)} grid point(s)")
        marks["C"] = f"CPU fallback: {what}"
    return marks


def function_failures(reviews: list[Review]) -> dict[tuple[str, str, str, str], str]:
    """(device, workload name, mode, precision) -> why, for every failed model-function
    check: a benchmark entry's own (``function`` of its result) and those of the
    model-function workload. A perf result of that device, workload, mode and precision
    gets the F mark wherever it came from."""
    out: dict[tuple[str, str, str, str], str] = {}
    for rev in reviews:
        rec = rev.result.doc.get("function")
        if not isinstance(rec, dict):
            continue
        checks = [rec] if rec.get("kind") == "model" else (
            rec.get("checks") or [] if rec.get("kind") == "models" else [])
        for c in checks:
            if c.get("status") == "fail":
                key = (rev.result.device_key, c.get("workload"), c.get("mode"),
                       c.get("precision"))
                out[key] = (f"model function failed ({rev.workload}): "
                            f"{c.get('reason', 'outputs differ from the CPU reference')}")
    return out


def mark_function_failures(reviews: list[Review]) -> None:
    failures = function_failures(reviews)
    if not failures:
        return
    for rev in reviews:
        wl = rev.result.workload
        key = (rev.result.device_key, wl.get("name"), wl.get("mode"), wl.get("precision_used"))
        if key in failures and wl.get("group") not in UNSCORED_GROUPS:
            rev.marks["F"] = failures[key]


def workload_keys(results: Iterable[Result]) -> dict[tuple[str, str], Workload]:
    """Workloads by (entry id, config); the config shows only where an id has several."""
    results = list(results)
    configs: dict[str, set[str]] = {}
    for r in results:
        configs.setdefault(r.workload["id"], set()).add(r.workload["config"])
    out = {}
    for r in results:
        wl = r.workload
        key = wl["id"] if len(configs[wl["id"]]) == 1 else f"{wl['id']} ({wl['config']})"
        out[(wl["id"], wl["config"])] = Workload(key, wl["id"], wl["config"], wl["name"],
                                                 wl["mode"], wl["group"], wl["item_unit"])
    return out


def _metric_value(entry: Any) -> float | None:
    value = entry.get("value") if isinstance(entry, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def review(result: Result, workload: str, device: Device,
           settings: checks.CheckSettings) -> Review:
    return Review(result, workload, checks.run_checks(result.doc, device.spec, settings),
                  result_marks(result.doc))


def long_table(reviews: list[Review]) -> pd.DataFrame:
    """One row per (result, metric) with the value (NaN when null), unit, marks and notes."""
    rows = []
    for rev in reviews:
        doc = rev.result.doc
        findings = [f for f in rev.findings if f.point is None]
        for name, entry in (doc.get("metrics") or {}).items():
            if not isinstance(entry, dict) or isinstance(entry.get("value"), bool):
                continue
            value = _metric_value(entry)
            notes = {code: text for code, text in rev.marks.items()}
            failed = [f for f in findings if f.marks(name)]
            if failed:
                notes["X"] = "; ".join(f"{f.check}: {f.message}" for f in failed)
            rows.append({
                "device": rev.result.device_key, "workload": rev.workload, "metric": name,
                "value": value if value is not None else math.nan,
                "unit": str(entry.get("unit", "")),
                "reason": entry.get("reason") if value is None else None,
                "marks": "".join(c for c in MARKS if c in notes),
                "notes": tuple(f"{c}: {notes[c]}" for c in MARKS if c in notes),
                "path": str(rev.result.path), "run_id": doc.get("run_id"),
            })
    columns = ["device", "workload", "metric", "value", "unit", "reason", "marks", "notes",
               "path", "run_id"]
    return pd.DataFrame(rows, columns=columns)


def _union_marks(values: Iterable[str]) -> str:
    seen = set("".join(values))
    return "".join(c for c in MARKS if c in seen)


def _union_notes(values: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for notes in values for n in notes))


def aggregate(cells: pd.DataFrame) -> pd.DataFrame:
    """Per (device, workload, metric): mean over results, count, spread, marks and notes."""
    if cells.empty:
        index = pd.MultiIndex.from_tuples([], names=["device", "workload", "metric"])
        return pd.DataFrame(columns=["value", "n", "std", "unit", "reason", "marks", "notes",
                                     "paths"], index=index)
    grouped = cells.groupby(["device", "workload", "metric"], sort=True)
    table = grouped.agg(
        value=("value", "mean"),
        n=("value", "count"),
        std=("value", "std"),
        unit=("unit", lambda u: " / ".join(dict.fromkeys(u))),
        reason=("reason", lambda r: next((x for x in r if x), None)),
        marks=("marks", _union_marks),
        notes=("notes", _union_notes),
        paths=("path", lambda p: tuple(dict.fromkeys(p))),
    )
    return table


def status_table(reviews: list[Review]) -> pd.DataFrame:
    rows = [{"device": r.result.device_key, "workload": r.workload, "status": r.result.status,
             "error": (r.result.doc.get("error") or {}).get("message"),
             "marks": "".join(c for c in MARKS if c in r.marks)} for r in reviews]
    frame = pd.DataFrame(rows, columns=["device", "workload", "status", "error", "marks"])
    if frame.empty:
        return frame.set_index(["device", "workload"])

    def pick(group: pd.DataFrame) -> pd.Series:
        ok = group[group["status"] == "ok"]
        first = ok.iloc[0] if len(ok) else group.iloc[0]
        failed = group[group["status"] != "ok"]
        return pd.Series({
            "status": "ok" if len(ok) else first["status"],
            "error": None if len(ok) else first["error"],
            "results": len(group), "failed": len(failed),
            "marks": _union_marks(group["marks"]),
        })

    return frame.groupby(["device", "workload"]).apply(pick)


def apply_column_copies(table: pd.DataFrame, copies: list[checks.ColumnCopy],
                        reviews: list[Review]) -> pd.DataFrame:
    """Mark both metrics of each copied pair, and what the results computed from them."""
    table = table.copy()
    entries: dict[tuple[str, str], AnyMetrics] = {}
    for rev in reviews:
        entries.setdefault((rev.result.device_key, rev.workload), {}).update(
            rev.result.doc.get("metrics") or {})
    for copy in copies:
        cells = [(d, w, m) for d, w in copy.cells
                 for m in checks.derived_closure(copy.metrics, entries.get((d, w), {}))]
        mark_cells(table, cells, "X", f"X: identical_columns: {copy.message}")
    return table


# Metrics whose value scales with a device's speed, so its spec sheet's peak predicts them
# (the catalogue's depends_on: device_speed).
OUTLIER_METRICS = tuple(name for name, spec in catalogue().names.items()
                        if "device_speed" in spec.depends_on)


def find_outliers(analysis: Analysis) -> list[Outlier]:
    """Per workload and speed metric, the devices far beyond what their peaks predict
    against the others (``checks.spec_outliers``); ✗ values take no part."""
    factor = analysis.check_settings.outlier_factor
    found = []
    for wl in analysis.workload_order():
        peaks: dict[str, float] = {}
        for d in analysis.device_order():
            docs = [r.doc for r in analysis.results_for(d, wl) if r.status == "ok"]
            if docs:
                peak, _ = checks.peak_for(analysis.devices[d].spec,
                                          checks.precision_of(docs[0], None))
                if peak:
                    peaks[d] = peak * checks.devices_of(docs[0])
        if len(peaks) < 2:
            continue
        for metric in OUTLIER_METRICS:
            values = {d: v for d in peaks
                      if (v := usable(analysis.cell(d, wl, metric))[0]) is not None}
            better = direction(metric) or 1
            for d, times in checks.spec_outliers(values, peaks, factor, better).items():
                label = analysis.devices[d].label
                found.append(Outlier(d, wl, metric, times, (
                    f"{metric} of {label} is {times:.3g}x what the spec sheets' peaks predict "
                    f"from the other devices' values (more than {factor:g}x): kept out of the "
                    "others' score and chart scales")))
    return found


def slices(workloads: dict[str, Workload], devices: dict[str, Device],
           cells: Iterable[tuple[str, str]]) -> dict[str, set[tuple[str, str]]]:
    """The (device, workload) cells of each mode, mode and workload group, and, where the
    report holds more than one source, of each source (a publication, or the measurements)
    by itself and by mode and group."""
    out: dict[str, set[tuple[str, str]]] = {}
    sources = {d.key: d.facts.get("source", "the measurements") for d in devices.values()}
    several = len(set(sources.values())) > 1
    for device, workload in cells:
        w = workloads[workload]
        mode = MODE_TITLES.get(w.mode, w.mode)
        group = f"{mode} · {GROUP_TITLES.get(w.group, w.group)}"
        names = [mode, group]
        if several:
            source = sources[device]
            names += [source, f"{source}, {mode}", f"{source}, {group}"]
        for name in names:
            out.setdefault(name, set()).add((device, workload))
    return out


def mark_cells(table: pd.DataFrame, cells: Iterable[tuple[str, str, str]], code: str,
               note: str) -> None:
    """Add mark ``code`` with ``note`` to aggregated cells (device, workload, metric)."""
    for key in cells:
        if key in table.index:
            table.at[key, "marks"] = _union_marks([table.at[key, "marks"], code])
            table.at[key, "notes"] = _union_notes([table.at[key, "notes"], (note,)])


def column_table(table: pd.DataFrame) -> dict[str, dict[tuple[str, str], tuple[float, str]]]:
    out: dict[str, dict[tuple[str, str], tuple[float, str]]] = {}
    for (device, workload, metric), row in table.iterrows():
        if not pd.isna(row["value"]):
            out.setdefault(metric, {})[(device, workload)] = (float(row["value"]), row["unit"])
    return out


# -- scores ------------------------------------------------------------------------------------
def usable(row: pd.Series | None) -> tuple[float | None, str]:
    """A cell's value for scoring, or None with why not."""
    if row is None:
        return None, "not measured"
    for code, default in (("F", "model function failed"), ("X", "failed a plausibility check")):
        if code in row["marks"]:
            return None, next((n[3:] for n in row["notes"] if n.startswith(f"{code}:")),
                              default)
    if pd.isna(row["value"]):
        return None, row["reason"] or "no value"
    return float(row["value"]), ""


HEADLINE_METRIC = "throughput_items_per_s"


def _implausible_headline(row: pd.Series | None) -> bool:
    return row is not None and "X" in row["marks"]


def composites(analysis: Analysis) -> dict[str, CompositeResult]:
    out = {}
    for key in analysis.workload_order():
        wl = analysis.workloads[key]
        if wl.group in UNSCORED_GROUPS:
            continue
        # A device whose model computes wrong results is not scored for it (mark F), nor one
        # whose throughput no device could reach (X on the headline): left in, that figure
        # would take the throughput out of every other device's composite (a metric is
        # scored only where every device has it).
        devices = [d for d in analysis.device_order()
                   if (d, key) in analysis.status.index
                   and analysis.status.loc[(d, key), "status"] == "ok"
                   and "F" not in analysis.status.loc[(d, key), "marks"]
                   and not _implausible_headline(analysis.cell(d, key, HEADLINE_METRIC))]
        if not devices:
            continue
        weights = {m: k for m, k in analysis.settings.weights_for(wl.mode, wl.group).items()
                   if any(analysis.cell(d, key, m) is not None for d in devices)}
        table: dict[str, dict[str, float | None]] = {}
        reasons: dict[tuple[str, str], str] = {}
        for metric in weights:
            for d in devices:
                value, why = usable(analysis.cell(d, key, metric))
                table.setdefault(metric, {})[d] = value
                if why:
                    reasons[(metric, d)] = why
        directions = {m: direction(m) for m in weights}
        outliers = {(o.metric, o.device) for o in analysis.outliers if o.workload == key}
        out[key] = composite_scores(table, directions, weights, devices, analysis.settings.a,
                                    reasons, outliers)
    return out


def baseline_scores(analysis: Analysis, base: Analysis) -> BaselineScores:
    if len(base.devices) != 1:
        names = "; ".join(d.label for d in base.devices.values()) or "none"
        raise UserError(f"The baseline results come from {len(base.devices)} devices ({names}).",
                        "Name the result set of exactly one device as --baseline (e.g. one "
                        "run directory).")
    (base_key, base_device), = base.devices.items()
    out = BaselineScores(base_device)
    for key in analysis.workload_order():
        wl = analysis.workloads[key]
        if wl.group in UNSCORED_GROUPS:
            continue
        if key not in base.workloads or (base_key, key) not in base.status.index or \
                base.status.loc[(base_key, key), "status"] != "ok":
            continue
        weights = analysis.settings.weights_for(wl.mode, wl.group)
        for d in analysis.device_order():
            if (d, key) not in analysis.status.index or \
                    analysis.status.loc[(d, key), "status"] != "ok" or \
                    "F" in analysis.status.loc[(d, key), "marks"]:
                continue
            ratios: dict[str, float | None] = {}
            names = sorted({m for (dd, w, m) in analysis.table.index if dd == d and w == key})
            for metric in names:
                if direction(metric) == 0 or not info(metric).ratio_scale:
                    continue
                mine, _ = usable(analysis.cell(d, key, metric))
                theirs, _ = usable(base.cell(base_key, key, metric))
                if theirs is None:
                    continue
                ratios[metric] = relative_score(mine, theirs, direction(metric))
            out.ratios[(key, d)] = ratios
            if wl.group == "llm" and any(m in ratios for m, _ in LLM_TIERS):
                test = {m: usable(analysis.cell(d, key, m))[0]
                        for m in [LOAD_METRIC, *(t for t, _ in LLM_TIERS)]}
                bl = {m: usable(base.cell(base_key, key, m))[0]
                      for m in [LOAD_METRIC, *(t for t, _ in LLM_TIERS)]}
                tiers = llm_tier_scores(test, bl)
                out.tiers[(key, d)] = tiers
                scored = {t.tier: t.score for t in tiers if t.score is not None}
                even = dict.fromkeys(scored, 1.0)
                out.summary[(key, d)] = weighted_geomean(scored, even)
                out.arithmetic[(key, d)] = weighted_mean(scored, even)
            else:
                scored = {m: r for m, r in ratios.items() if m in weights}
                out.summary[(key, d)] = weighted_geomean(scored, weights)
                out.arithmetic[(key, d)] = weighted_mean(scored, weights)
    return out


def analyse(inputs: ResultSet, settings: ScoreSettings | None = None,
            check_settings: checks.CheckSettings | None = None,
            baseline: ResultSet | None = None,
            keys: dict[tuple[str, str], Workload] | None = None) -> Analysis:
    """Check, aggregate and score ``inputs`` (and score them against ``baseline``)."""
    settings = settings or ScoreSettings()
    check_settings = check_settings or checks.CheckSettings()
    if keys is None:
        keys = workload_keys([*inputs.results, *(baseline.results if baseline else [])])
    workloads = {keys[(r.workload["id"], r.workload["config"])].key:
                 keys[(r.workload["id"], r.workload["config"])] for r in inputs.results}
    reviews = [review(r, keys[(r.workload["id"], r.workload["config"])].key,
                      inputs.devices[r.device_key], check_settings) for r in inputs.results]
    mark_function_failures(reviews)
    cells = long_table(reviews)
    table = aggregate(cells)
    copies = checks.column_copies(
        column_table(table), slices(workloads, inputs.devices,
                                    {(d, w) for d, w, _m in table.index}))
    table = apply_column_copies(table, copies, reviews)
    analysis = Analysis(inputs, settings, workloads, reviews, cells, table,
                        status_table(reviews), copies, {}, check_settings=check_settings)
    analysis.outliers = find_outliers(analysis)
    for o in analysis.outliers:
        mark_cells(analysis.table, [(o.device, o.workload, o.metric)], "W",
                   f"W: outliers: {o.message}")
    analysis.composites = composites(analysis)
    analysis.claims = find_claims(analysis)
    if baseline is not None:
        base = analyse(baseline, settings, check_settings, keys=keys)
        analysis.baseline_inputs = baseline
        analysis.baseline = baseline_scores(analysis, base)
    return analysis
