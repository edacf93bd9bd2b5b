"""What each section of the report shows, independent of HTML or Markdown: rows of cells with
their text, marks and notes, and the charts built from an analysis."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.documents import AnyResultDoc, DeviceSpec, Params
from bench.specs import per_device
from testbed.report import charts
from testbed.report.analysis import MARKS, METRIC_WARNINGS, NON_COMPARABLE, WITHHELD, Analysis
from testbed.report.checks import (
    CHECK_TITLES,
    PUBLISHED_KIND,
    TELEMETRY_METRICS,
    CheckOutcome,
)
from testbed.report.fmt import format_ratio, format_score, format_value
from testbed.report.inputs import _short_name as short_name
from testbed.report.metrics import (
    CATALOGUE,
    GROUP_TITLES,
    GROUPS,
    MODE_TITLES,
    direction,
    info,
)
from testbed.report.scores import LLM_TIERS


@dataclass
class Cell:
    text: str
    marks: str = ""
    notes: tuple[str, ...] = ()
    kind: str = "value"  # value, status (ok/oom/...), missing (not run), na (null), score, text

    @property
    def tooltip(self) -> str:
        return "\n".join(self.notes)


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[Cell | str]]
    anchor: str = ""
    caption: str = ""


@dataclass
class Figure:
    anchor: str
    title: str
    svg: str
    caption: str = ""
    name: str = ""  # file stem for the Markdown report's SVG files


# -- metric tables (appendix) ------------------------------------------------------------------
def metric_names(analysis: Analysis) -> list[str]:
    """Metrics with at least one number, catalogue order first, then the others by name."""
    present = set(analysis.table.index.get_level_values("metric")) if len(
        analysis.table) else set()
    known = [m.name for m in CATALOGUE if m.name in present]
    return known + sorted(present - set(known))


def value_cell(analysis: Analysis, device: str, workload: str, metric: str) -> Cell:
    if (device, workload) not in analysis.status.index:
        return Cell("—", kind="missing", notes=("not run on this device",))
    status = analysis.status.loc[(device, workload)]
    if status["status"] != "ok":
        return Cell(status["status"], kind="status",
                    notes=(f"{status['status']}: {status['error'] or ''}".strip(),))
    row = analysis.cell(device, workload, metric)
    if row is None:
        return Cell("", kind="missing")
    notes = tuple(row["notes"])
    if pd.isna(row["value"]):
        return Cell("n/a", row["marks"], (f"not measured: {row['reason']}", *notes), kind="na")
    text = format_value(float(row["value"]), row["unit"])
    extra = ()
    if row["n"] > 1:
        spread = "" if pd.isna(row["std"]) else f", std {format_value(row['std'], row['unit'])}"
        extra = (f"mean of {int(row['n'])} results{spread}",)
    return Cell(text, row["marks"], (*extra, *notes))


def metric_table(analysis: Analysis, metric: str) -> Table | None:
    devices = analysis.device_order()
    rows: list[list[Cell | str]] = []
    for wl in analysis.workload_order():
        cells = [value_cell(analysis, d, wl, metric) for d in devices]
        if any(c.kind in ("value", "na") for c in cells):
            rows.append([wl, *cells])
    if not any(isinstance(c, Cell) and c.kind == "value" for row in rows for c in row):
        return None
    m = info(metric)
    better = {1: "larger is better", -1: "smaller is better"}.get(m.better, "")
    title = m.title if m.title != metric else metric
    return Table(title, ["workload", *[analysis.devices[d].label for d in devices]], rows,
                 anchor=f"metric-{metric}", caption=f"`{metric}`" + (f", {better}" if better
                                                                    else ""))


def unmeasured_table(analysis: Analysis) -> Table | None:
    """Metrics no device measured in any workload, with the reasons the results give."""
    if not len(analysis.table):
        return None
    rows: list[list[Cell | str]] = []
    grouped = analysis.table.groupby(level="metric")
    for metric, frame in grouped:
        if frame["value"].notna().any():
            continue
        reasons: dict[str, list[str]] = {}
        for (device, _wl, _m), row in frame.iterrows():
            why = row["reason"] or "no value"
            label = analysis.devices[device].label
            if label not in reasons.setdefault(why, []):
                reasons[why].append(label)
        text = "; ".join(f"{why} ({', '.join(who)})" for why, who in reasons.items())
        rows.append([Cell(info(str(metric)).title), Cell(str(metric)), text])
    if not rows:
        return None
    return Table("Not measured on any device", ["metric", "name", "why (device)"], rows,
                 anchor="unmeasured")


# -- devices -------------------------------------------------------------------------------------
def _source_of(analysis: Analysis, device: str) -> Cell:
    """The runs a device's results come from, or the publication a published row cites."""
    docs = [r.result.doc for r in analysis.reviews if r.result.device_key == device]
    cited = sorted({d["source"]["title"] for d in docs if d.get("kind") == PUBLISHED_KIND})
    if cited:
        return Cell("published: " + "; ".join(cited), kind="text")
    runs = sorted({d.get("run_id", "?") for d in docs})
    return Cell(f"{len(runs)} run(s)", notes=tuple(runs), kind="text")
def spec_cell(spec: DeviceSpec | None) -> Cell:
    """How the devices table names a device's reference figures; an estimate says so, with
    how it was made on hover."""
    if not spec:
        return Cell("none", kind="na")
    if spec.get("estimate"):
        fp32 = (spec.get("peak_flops") or {}).get("fp32")
        return Cell("estimated from the host" + (f": fp32 {format_value(fp32, 'FLOP/s', 3)}"
                                                 if fp32 else ""),
                    notes=(spec["estimate"].get("method", ""), spec.get("notes", "")),
                    kind="text")
    return Cell(f"{spec['name']} ({spec['id']})", kind="text")


def device_table(analysis: Analysis) -> Table:
    """One row per device, narrow enough for a 1400 px page: the hardware and the software
    each in one wrapping column."""
    rows: list[list[Cell | str]] = []
    for k in analysis.device_order():
        d = analysis.devices[k]
        f = d.facts
        results = [r for r in analysis.reviews if r.result.device_key == k]
        threads = [f"{f['threads']} thread" + ("" if f["threads"] == "1" else "s")
                   + (f" (CPUs {f['cpus']})" if f.get("cpus") else "")] if "threads" in f else []
        hardware = " · ".join([short_name(f["name"]),
                               *([f"×{f['count']}"] if "count" in f else []), *threads])
        software = " · ".join(x for x in (
            f.get("image", "native") if "source" not in f else "",
            f"torch {f['torch']}" if f.get("torch") not in (None, "?") else "",
            f"driver {f['driver']}" if "driver" in f else "") if x)
        rows.append([Cell(d.label), f"{f['vendor']}: {hardware}", software or "—",
                     spec_cell(d.spec), str(len(results)), _source_of(analysis, k)])
    return Table("Devices compared", ["device", "hardware", "software", "spec sheet",
                                      "results", "from"], rows, anchor="devices")


# -- checks --------------------------------------------------------------------------------------
def _bases(outcomes: list[CheckOutcome]) -> str:
    """Every basis that fired (a failing result's), then the others' up to three."""
    fired = list(dict.fromkeys(o.basis for o in outcomes if o.findings and o.basis))
    passed = [b for b in dict.fromkeys(o.basis for o in outcomes if o.applied and o.basis)
              if b not in fired]
    shown = [*(f"failed on: {b}" for b in fired), *passed[:3]]
    if len(passed) > 3:
        shown.append(f"and {len(passed) - 3} more")
    # results a check could not judge for want of a fact they lack (a published row's
    # batch size): how many, and why
    lacking: dict[str, int] = {}
    for o in outcomes:
        if o.not_applicable and not o.applied:
            lacking[o.not_applicable] = lacking.get(o.not_applicable, 0) + 1
    if lacking:
        shown.append("not applicable to " + "; ".join(
            f"{n} result{'s' if n > 1 else ''}: {why}" for why, n in lacking.items()))
    return "; ".join(shown) or (outcomes[0].basis if outcomes else "")


def check_summary(analysis: Analysis) -> Table:
    rows: list[list[Cell | str]] = []
    factor = analysis.check_settings.outlier_factor
    for check, title in CHECK_TITLES.items():
        if check == "identical_columns":
            applied = 1 if len(analysis.table) else 0
            failed = len(analysis.copies)
            basis = ("pairs of metrics with different units, over >= 3 shared cells: the whole "
                     "report, each mode, each mode and workload group, each source")
        elif check == "outliers":
            applied = len(analysis.workloads) if len(analysis.devices) > 1 else 0
            failed = len(analysis.outliers)
            basis = (f"speed metrics over each device's peak, against the other devices' "
                     f"median: more than {factor:g}x is a warning (!), not a failure")
        else:
            outcomes = [o for r in analysis.reviews for o in r.outcomes if o.check == check]
            applied = sum(o.applied for o in outcomes)
            failed = sum(1 for o in outcomes if o.findings)
            basis = _bases(outcomes)
        mark = ("W" if check == "outliers" else "X") if failed else ""
        verdict = Cell(("warned" if check == "outliers" else "failed") if failed else
                       ("passed" if applied else "not applicable"), mark, kind="status")
        rows.append([title, check, str(applied), str(failed), verdict, basis])
    return Table("Plausibility checks", ["check", "id", "results checked", "results failing",
                                         "verdict", "basis"], rows, anchor="checks")


def findings_table(analysis: Analysis) -> Table:
    rows: list[list[Cell | str]] = []
    for rev in analysis.reviews:
        for f in rev.findings:
            if "*" in f.metrics:
                metrics = "all metrics"
            elif f.metrics == TELEMETRY_METRICS:
                metrics = "telemetry metrics"
            else:
                metrics = ", ".join(f.metrics)
            if f.point is not None:
                metrics += f" of grid point {f.point}"
            rows.append([Cell(f.check, "X"), analysis.devices[rev.result.device_key].label,
                         rev.workload, metrics, f.message, rev.result.path.name])
    for copy in analysis.copies:
        cells = sorted({(analysis.devices[d].label, w) for d, w in copy.cells})
        rows.append([Cell("identical_columns", "X"), ", ".join(sorted({c[0] for c in cells})),
                     ", ".join(sorted({c[1] for c in cells})), ", ".join(copy.metrics),
                     copy.message, ""])
    for o in analysis.outliers:
        files = sorted({r.path.name for r in analysis.results_for(o.device, o.workload)})
        rows.append([Cell("outliers", "W"), analysis.devices[o.device].label, o.workload,
                     o.metric, o.message, ", ".join(files)])
    return Table("Failed checks", ["check", "device", "workload", "metrics marked", "why",
                                   "file"], rows, anchor="findings")


# -- scores --------------------------------------------------------------------------------------
def status_marks(analysis: Analysis, device: str, workload: str,
                 metrics: Iterable[str] = ()) -> str:
    """The non-comparable marks (P, O, H, D, C) of a device's results for a workload, and the
    warnings (W) of the ``metrics`` a score used."""
    if (device, workload) not in analysis.status.index:
        return ""
    marks = analysis.status.loc[(device, workload), "marks"]
    warned = "".join(str(row["marks"]) for m in metrics
                     if (row := analysis.cell(device, workload, m)) is not None)
    return "".join(c for c in MARKS if (c in marks and c in NON_COMPARABLE)
                   or (c in warned and c in METRIC_WARNINGS))


def status_marks_all(analysis: Analysis, device: str, workload: str) -> str:
    if (device, workload) not in analysis.status.index:
        return ""
    return str(analysis.status.loc[(device, workload), "marks"])


def composite_table(analysis: Analysis) -> Table:
    devices = analysis.device_order()
    rows: list[list[Cell | str]] = []
    per_device: dict[str, list[float]] = {d: [] for d in devices}
    complete = 0
    for wl, comp in analysis.composites.items():
        cells: list[Cell | str] = [wl]
        for d in devices:
            if d in comp.scores:
                score = comp.scores[d]
                marks = status_marks(analysis, d, wl, comp.used)
                notes = tuple(f"{p.metric} = {format_value(p.value, '')}: x~ = {p.scaled:+.3f}, "
                              f"k = {p.weight:.3f}, adds {p.contribution:.4f}"
                              for p in score.parts)
                cells.append(Cell(format_score(score.score), marks, notes, kind="score"))
            elif "F" in status_marks_all(analysis, d, wl):
                cells.append(Cell("withheld", "F", ("model function failed: no score",),
                                  kind="status"))
            else:
                cells.append(value_cell(analysis, d, wl, "throughput_items_per_s")
                             if (d, wl) in analysis.status.index else Cell("—", kind="missing"))
        rows.append(cells)
        if all(d in comp.scores for d in devices):
            complete += 1
            for d in devices:
                per_device[d].append(comp.scores[d].score)
    rows += withheld_rows(analysis, devices)
    if complete:
        rows.append([Cell(f"mean over the {complete} workload(s) every device ran", kind="score"),
                     *[Cell(format_score(sum(v) / len(v)), kind="score") for v in
                       per_device.values()]])
    return Table("Composite scores", ["workload", *[analysis.devices[d].label for d in devices]],
                 rows, anchor="composite", caption=f"{analysis.settings.title}.")


def withheld_rows(analysis: Analysis, devices: list[str]) -> list[list[Cell | str]]:
    """Workloads no device could be scored for because each device's model failed its
    function check (mark F): listed so the withheld score is visible."""
    rows: list[list[Cell | str]] = []
    for wl in analysis.workload_order():
        if wl in analysis.composites or analysis.workloads[wl].group == "function":
            continue
        marks = {d: status_marks_all(analysis, d, wl) for d in devices}
        if not any("F" in m for m in marks.values()):
            continue
        rows.append([wl, *[Cell("withheld", "F", ("model function failed: no score",),
                                kind="status") if "F" in marks.get(d, "") else
                           Cell("—", kind="missing") for d in devices]])
    return rows


def composite_basis(analysis: Analysis) -> tuple[Table, Table | None]:
    """The metrics each workload's composite used, and those left out (grouped by reason)."""
    rows: list[list[Cell | str]] = []
    left_out: dict[str, tuple[list[str], list[str]]] = {}
    for wl, comp in analysis.composites.items():
        used = ", ".join(f"{m} ({'+' if direction(m) > 0 else '−'})" for m in comp.used)
        rows.append([wl, used or "none"])
        for m, (d, why) in comp.dropped.items():
            key = f"no usable value for {analysis.devices[d].label}: {why}"
            metrics, workloads = left_out.setdefault(key, ([], []))
            if m not in metrics:
                metrics.append(m)
            if wl not in workloads:
                workloads.append(wl)
    used_table = Table("Metrics in each composite score (+ larger is better, − smaller)",
                       ["workload", "metrics used"], rows, anchor="composite-basis")
    if not left_out:
        return used_table, None
    dropped = Table("Left out of the composite scores",
                    ["metrics", "workloads", "why"],
                    [[", ".join(ms), ", ".join(ws), why]
                     for why, (ms, ws) in left_out.items()], anchor="composite-dropped",
                    caption="A metric is scored only where every compared device has a "
                            "usable value for it.")
    return used_table, dropped


def baseline_table(analysis: Analysis) -> Table | None:
    bl = analysis.baseline
    if bl is None:
        return None
    devices = analysis.device_order()
    rows: list[list[Cell | str]] = []
    per_device: dict[str, list[float]] = {d: [] for d in devices}
    for wl in analysis.workload_order():
        if not any((wl, d) in bl.summary for d in devices):
            continue
        cells: list[Cell | str] = [wl]
        for d in devices:
            if (wl, d) not in bl.summary:
                cells.append(Cell("—", kind="missing"))
                continue
            ratios = bl.ratios.get((wl, d), {})
            notes = (f"geometric mean of the ratios; arithmetic mean "
                     f"{format_ratio(bl.arithmetic.get((wl, d)))}",
                     *(f"{m}: {format_ratio(r)}" for m, r in ratios.items()))
            summary = bl.summary[(wl, d)]
            if summary is not None:
                per_device[d].append(summary)
            cells.append(Cell(format_ratio(summary), status_marks(analysis, d, wl, ratios),
                              notes, kind="score"))
        rows.append(cells)
    if rows and all(len(v) == len(rows) for v in per_device.values()):
        rows.append([Cell(f"geometric mean over the {len(rows)} workload(s)", kind="score"),
                     *[Cell(format_ratio(math.prod(v) ** (1 / len(v))), kind="score")
                       for v in per_device.values()]])
    return Table(f"Relative to the baseline ({bl.device.label})",
                 ["workload", *[analysis.devices[d].label for d in devices]], rows,
                 anchor="baseline", caption="Per workload the geometric mean of the metric "
                 "ratios (1.0 = the baseline, more is better), as SPEC CPU summarises: one "
                 "ratio of 89 cannot outweigh the others. Hover for the arithmetic mean and "
                 "each ratio.")


def baseline_detail(analysis: Analysis) -> Table | None:
    bl = analysis.baseline
    if bl is None:
        return None
    devices = analysis.device_order()
    rows: list[list[Cell | str]] = []
    for wl in analysis.workload_order():
        weights = analysis.settings.weights_for(analysis.workloads[wl].mode,
                                                   analysis.workloads[wl].group)
        order = [c.name for c in CATALOGUE]
        metrics = sorted({m for d in devices for m in bl.ratios.get((wl, d), {})
                          if m in weights}, key=lambda m: order.index(m) if m in order else 999)
        for m in metrics:
            rows.append([wl, m, *[Cell(format_ratio(bl.ratios.get((wl, d), {}).get(m)))
                                  if (wl, d) in bl.ratios else Cell("—", kind="missing")
                                  for d in devices]])
    if not rows:
        return None
    return Table("Baseline ratios of the scored metrics", ["workload", "metric",
                                                *[analysis.devices[d].label for d in devices]],
                 rows, anchor="baseline-metrics")


def tier_table(analysis: Analysis) -> Table | None:
    bl = analysis.baseline
    if bl is None or not bl.tiers:
        return None
    devices = analysis.device_order()
    titles = dict(LLM_TIERS)
    rows: list[list[Cell | str]] = []
    for wl in analysis.workload_order():
        if not any((wl, d) in bl.tiers for d in devices):
            continue
        for i, (metric, _t) in enumerate(LLM_TIERS):
            cells: list[Cell | str] = [wl, titles[metric]]
            for d in devices:
                tiers = bl.tiers.get((wl, d))
                if not tiers:
                    cells.append(Cell("—", kind="missing"))
                    continue
                t = tiers[i]
                detail = (f"throughput {format_ratio(t.throughput_ratio)}, load "
                          f"{format_ratio(t.load_ratio)}")
                cells.append(Cell(format_ratio(t.score), status_marks(analysis, d, wl),
                                  (detail, *((t.note,) if t.note else ())), kind="score"))
            rows.append(cells)
    return Table("LLM tiers against the baseline (0.9 × throughput + 0.1 × load time)",
                 ["workload", "tier", *[analysis.devices[d].label for d in devices]], rows,
                 anchor="tiers")


def claims_table(analysis: Analysis) -> Table | None:
    """Published figures next to the measured ones of the same device model and workload."""
    if not analysis.claims:
        return None
    rows: list[list[Cell | str]] = []
    for c in analysis.claims:
        claimed = analysis.cell(c.published, c.workload, c.metric)
        measured = analysis.cell(c.measured, c.workload, c.metric)
        rows.append([
            Cell(c.source, kind="text"), Cell(f"{c.workload} · {c.metric}", kind="text"),
            Cell(format_value(c.claimed, c.unit), claimed["marks"], tuple(claimed["notes"])),
            Cell(analysis.devices[c.measured].label, kind="text"),
            Cell(format_value(c.value, c.unit), measured["marks"], tuple(measured["notes"])),
            Cell(format_ratio(c.ratio), kind="score"), c.band,
            Cell(c.verdict, notes=(c.why,), kind="status")])
    return Table("Published claims against measurements",
                 ["claimed by", "workload · metric", "claimed", "measured on", "measured",
                  "measured / claimed", "band", "verdict"], rows, anchor="claims",
                 caption="Each published figure next to the measurement of the same device "
                         "model (spec sheet), workload, config, precision, batch size and "
                         "streams, under the band the audit holds the metric to (its "
                         "class in bench/metrics.yaml, sized by "
                         "testbed/audit/tolerances.yaml). holds: within the band; "
                         "exceeded: measured better than claimed; falls short: worse. Hover "
                         "a verdict for the deviation.")


def invalid_table(analysis: Analysis) -> Table:
    rows: list[list[Cell | str]] = [[str(f.path), Cell("; ".join(f.problems), "X")]
                                    for f in analysis.inputs.invalid]
    if analysis.baseline_inputs is not None:
        rows += [[f"{f.path} (baseline)", Cell("; ".join(f.problems), "X")]
                 for f in analysis.baseline_inputs.invalid]
    return Table("Invalid files (left out)", ["file", "why"], rows, anchor="invalid")


def incomplete_table(analysis: Analysis) -> Table | None:
    """Runs whose manifest does not say ``finished``: their results are kept, the run is
    marked."""
    runs = [(r, "") for r in analysis.inputs.incomplete]
    if analysis.baseline_inputs is not None:
        runs += [(r, " (baseline)") for r in analysis.baseline_inputs.incomplete]
    if not runs:
        return None
    rows: list[list[Cell | str]] = [
        [f"{r.path}{tag}", r.run_id, Cell(r.state, kind="status"), r.why()] for r, tag in runs]
    return Table("Incomplete runs", ["run directory", "run id", "state", "what it means"],
                 rows, anchor="incomplete")


def placement_text(doc: AnyResultDoc) -> str | None:
    """Where a multi-rank result ran, in words ("2 nodes × 2 ranks"); None for one process
    on one device (the report's "device" is a device configuration, not a rank count)."""
    placement = doc.get("placement") or {}
    nodes = [n for n in placement.get("nodes") or [] if isinstance(n, dict)]
    world = placement.get("world_size")
    per_node = {len(n.get("ranks") or []) for n in nodes}
    if len(nodes) > 1:
        if len(per_node) == 1:
            n = per_node.pop()
            return f"{len(nodes)} nodes × {n} rank{'s' if n != 1 else ''}"
        return f"{world} ranks on {len(nodes)} nodes"
    if isinstance(world, int) and world > 1:
        return f"{world} ranks on 1 node"
    return None


def disturbed_table(analysis: Analysis) -> Table | None:
    """The results their run found disturbed (the D mark), each with its reasons; the caption
    also says how many results cannot say (documents from before the record)."""
    rows: list[list[Cell | str]] = []
    unknown = 0
    for rev in analysis.reviews:
        record = rev.result.doc.get("disturbed")
        if not isinstance(record, dict) or record.get("value") is None:
            unknown += 1
            continue
        if record.get("value") is not True:
            continue
        reasons = [r for r in record.get("reasons") or [] if isinstance(r, dict)]
        rows.append([analysis.devices[rev.result.device_key].label, rev.workload,
                     str(rev.result.doc.get("run_id")),
                     Cell("; ".join(str(r.get("message")) for r in reasons)
                          or "no reason recorded", "D", kind="text")])
    if not rows and not unknown:
        return None
    caption = (f"{len(rows)} of {len(analysis.reviews)} result(s), marked D: while they "
               "measured, their run saw other processes, CPU steal, clock throttling, other "
               "processes on the device or a repeat spread beyond its quiet thresholds, so "
               "their figures are not representative of the device. Re-run them on a quiet "
               "machine.") if rows else ""
    if unknown:
        caption += (" " if caption else "") + (
            f"{unknown} result(s) do not say whether they were disturbed (written before "
            "runs recorded it, or nothing could be measured): unknown, not quiet.")
    return Table("Disturbed measurements", ["device", "workload", "run", "why"], rows,
                 anchor="disturbed", caption=caption)


def points_tables(analysis: Analysis, limit_metrics: int = 6) -> list[Table]:
    """Grid points (LLM grid, operator sweeps) of each result, one table per result."""
    out = []
    for rev in analysis.reviews:
        points = rev.result.doc.get("points") or []
        if not points:
            continue
        params = list(dict.fromkeys(k for p in points for k in p.get("params", {})))
        preferred = ["flop_per_s", "arithmetic_intensity", "pct_of_peak",
                     "throughput_items_per_s", "ttft_s", "power_w_mean"]
        names = list(dict.fromkeys(k for p in points for k in p.get("metrics", {})))
        shown = [m for m in preferred if m in names][:limit_metrics] or names[:limit_metrics]
        rows: list[list[Cell | str]] = []
        for i, p in enumerate(points):
            marks = "X" if any(f.point == i for f in rev.findings) else ""
            notes = tuple(f"{f.check}: {f.message}" for f in rev.findings if f.point == i)
            err = (p.get("error") or {}).get("message", "")
            row: list[Cell | str] = [str(p.get("params", {}).get(k, "")) for k in params]
            row.append(Cell(p.get("status", "?"), marks, (*notes, *((err,) if err else ())),
                            kind="status"))
            for m in shown:
                entry = p.get("metrics", {}).get(m)
                value = entry.get("value") if isinstance(entry, dict) else None
                row.append(format_value(value, entry.get("unit", "")) if isinstance(
                    value, int | float) and not isinstance(value, bool) else "")
            rows.append(row)
        label = analysis.devices[rev.result.device_key].label
        out.append(Table(f"{rev.workload} on {label}: {len(points)} grid points",
                         [*params, "status", *shown], rows,
                         anchor=f"points-{len(out)}"))
    return out


# -- charts --------------------------------------------------------------------------------------
def radar_figure(analysis: Analysis) -> Figure | None:
    workloads = list(analysis.composites)
    if not workloads:
        return None
    devices = analysis.device_order()
    labels = [analysis.devices[d].label for d in devices]
    if len(workloads) >= 3:
        series = []
        for d, label in zip(devices, labels, strict=True):
            values, notes = [], []
            for wl in workloads:
                comp = analysis.composites[wl].scores.get(d)
                values.append(comp.score if comp else None)
                status = analysis.status.loc[(d, wl), "status"] if (d, wl) in \
                    analysis.status.index else "not run"
                notes.append(f"{label} · {wl}: " + (format_score(comp.score) if comp
                                                     else f"no score ({status})"))
            series.append(charts.RadarSeries(label, values, notes))
        svg = charts.radar_chart(workloads, series, "Composite score per workload and device")
    else:
        section = charts.BarSection("composite score", workloads)
        for wl in workloads:
            bars = []
            for d, label in zip(devices, labels, strict=True):
                comp = analysis.composites[wl].scores.get(d)
                score = comp.score if comp else None
                bars.append(charts.Bar(score, f"{label} · {wl}: {format_score(score)}",
                                       note="" if comp else "—"))
            section.bars[wl] = bars
        svg = charts.bar_chart([section], labels, "Composite score per workload and device",
                               y_label="composite score", percent_axis=False)
    caption = (f"{analysis.settings.title} (a = {analysis.settings.a:g}, weights normalised "
               "to 1): 0.5 = level with the others on every metric, towards 1 = best on every "
               "metric. Hover a point for the score.")
    if len(devices) < 2:
        caption += (" With one device every score is 0.5: the min-max map compares devices, "
                    "so report two or more runs (e.g. `-r results/<a> -r results/<b>`).")
    return Figure("radar", "Composite scores", svg, caption, name="composite-radar")


def _bars(analysis: Analysis, workload: str, metric: str, labels: list[str],
          devices: list[str]) -> list[charts.Bar]:
    """One workload's bars of a metric, divided by its largest plausible value.

    Values marked ✗ (failed a check) or ! (far beyond the spec sheets' prediction) do not
    set the scale; one above it is drawn clipped with a break mark and its value printed,
    so a 1.68 MW reading never flattens the group, and is never drawn as a full bar.
    """
    cells = [value_cell(analysis, d, workload, metric) for d in devices]
    raw = [analysis.cell(d, workload, metric) for d in devices]
    values = [None if r is None or pd.isna(r["value"]) else float(r["value"]) for r in raw]
    good = [v for v, c in zip(values, cells, strict=True)
            if v is not None and not any(k in c.marks for k in WITHHELD + "W")]
    top = max(good, default=0.0)
    bars = []
    for label, v, c in zip(labels, values, cells, strict=True):
        tip = f"{label} · {workload}: {c.text}" + (f"\n{c.tooltip}" if c.notes else "")
        if v is None:
            bars.append(charts.Bar(None, tip, note=c.text if c.kind in ("status", "missing")
                                   and c.text else "n/a"))
            continue
        hatched = any(k in c.marks for k in NON_COMPARABLE)
        failed = any(k in c.marks for k in WITHHELD)
        if top <= 0 or v > top:  # off the plausible scale: a broken bar
            bars.append(charts.Bar(1.0, tip, hatched=hatched, failed=failed,
                                   marks=c.marks, clipped=True, label=c.text))
            continue
        bars.append(charts.Bar(v / top, tip, hatched=hatched, failed=failed, marks=c.marks))
    return bars


def tier_figure(analysis: Analysis) -> Figure | None:
    """The LLM protocol's maximum throughput per TTFT tier, one section per LLM workload."""
    devices = analysis.device_order()
    labels = [analysis.devices[d].label for d in devices]
    sections = []
    for wl in analysis.workload_order():
        if not any(analysis.cell(d, wl, m) is not None for d in devices for m, _ in LLM_TIERS):
            continue
        titles = [t.replace("TTFT ", "") for _, t in LLM_TIERS]
        section = charts.BarSection(f"{wl}: TTFT tier", titles)
        for (metric, _t), title in zip(LLM_TIERS, titles, strict=True):
            section.bars[title] = _bars(analysis, wl, metric, labels, devices)
        sections.append(section)
    if not sections or not any(b.value is not None for s in sections for bars in
                               s.bars.values() for b in bars):
        return None
    svg = charts.bar_chart(sections, labels, "LLM maximum throughput per TTFT tier")
    return Figure("bars-llm-tiers", "LLM: maximum throughput per TTFT tier", svg,
                  "`tier_max_tokens_per_s_*`: the highest token throughput among the grid "
                  "points whose time to first token falls in the tier, divided by the largest "
                  "per tier (larger is better). n/a: no grid point in that tier.",
                  name="bars-llm-tiers")


def metric_figures(analysis: Analysis) -> list[Figure]:
    devices = analysis.device_order()
    labels = [analysis.devices[d].label for d in devices]
    figures = []
    tiers = {m for m, _ in LLM_TIERS}
    for m in CATALOGUE:
        if m.name in tiers:
            if m.name == LLM_TIERS[0][0] and (fig := tier_figure(analysis)):
                figures.append(fig)
            continue
        if not m.chart:
            continue
        sections: list[charts.BarSection] = []
        any_value = False
        for mode in ("train", "infer"):
            for group in (g for g in GROUPS if g != "function"):
                wls = [w for w in analysis.workload_order()
                       if analysis.workloads[w].mode == mode and analysis.workloads[w].group ==
                       group and any(analysis.cell(d, w, m.name) is not None for d in devices)]
                if not wls:
                    continue
                section = charts.BarSection(f"{MODE_TITLES[mode]} · {GROUP_TITLES[group]}", wls)
                for wl in wls:
                    section.bars[wl] = _bars(analysis, wl, m.name, labels, devices)
                    any_value = any_value or any(b.value is not None for b in section.bars[wl])
                sections.append(section)
        if not any_value:
            continue
        better = "larger is better" if m.better > 0 else "smaller is better"
        svg = charts.bar_chart(sections, labels, f"{m.title}, relative to the largest value")
        figures.append(Figure(f"bars-{m.name}", m.title, svg,
                              f"`{m.name}`, each workload's values divided by its largest "
                              f"plausible value ({better}). Hatched: not comparable; red "
                              "outline ✗: failed a plausibility check; a bar broken at the "
                              "top (value printed inside) lies off the scale: ✗ or ! (far "
                              "beyond what the spec sheets predict). Hover for values.",
                              name=f"bars-{m.name}"))
    return figures


TIMELINE_FIELDS = (("util_pct", "utilisation", "%", (0.0, 100.0)),
                   ("host_util_pct", "host CPU, whole host", "%", (0.0, 100.0)),
                   ("power_w", "power", "W", None),
                   ("temp_c", "temperature", "°C", None))
# Panels shown only where some result has the series (the cpu reference's host figures).
OPTIONAL_TIMELINE_FIELDS = ("host_util_pct",)


def _numbers(values: list[Any]) -> list[float | None]:
    return [float(v) if isinstance(v, int | float) and not isinstance(v, bool)
            and math.isfinite(v) else None for v in values]


def timeline_figures(analysis: Analysis) -> list[Figure]:
    devices = analysis.device_order()
    figures = []
    for wl in analysis.workload_order():
        panels = []
        shown: list[str] = []
        gaps: list[str] = []
        for field_name, title, unit, fixed in TIMELINE_FIELDS:
            traces, reasons = [], []
            for k, d in enumerate(devices):
                results = sorted(analysis.results_for(d, wl),
                                 key=lambda r: r.doc.get("started_at", ""))
                if not results:
                    continue
                doc = results[0].doc
                tel = doc.get("telemetry") or {}
                label = analysis.devices[d].label
                if len(results) > 1:
                    shown.append(f"{label}: first of {len(results)} results")
                series = (tel.get("devices") or [{}])[0].get("series", {}) if tel.get(
                    "devices") else {}
                values = _numbers(series.get(field_name) or [])
                t_s = [float(t) for t in tel.get("t_s") or []]
                if not any(v is not None for v in values) or len(values) != len(t_s):
                    why = (tel.get("unavailable") or {}).get(field_name, "no samples")
                    reasons.append(f"{label}: {why}")
                    continue
                windows = [(r["window"]["start_s"], r["window"]["end_s"])
                           for r in doc.get("repeats") or [] if r.get("window")]
                traces.append(charts.Trace(label, charts.colour(k), t_s, values, windows))
            if not traces and field_name in OPTIONAL_TIMELINE_FIELDS:
                continue
            missing = "" if traces else "; ".join(reasons)
            panels.append(charts.Panel(title, unit, traces, missing, fixed))
            if reasons:
                who = "any device" if not traces else "some devices"
                why = "; ".join(dict.fromkeys(r.split(": ", 1)[1] for r in reasons))
                gaps.append(f"{title} not reported by {who} ({why})")
        if not any(p.traces for p in panels):
            continue
        svg = charts.timeline_chart(panels, f"Telemetry during {wl}")
        caption = " ".join([
            "Seconds from the start of each result's telemetry; shaded: the repeats' timed "
            "windows.", *(f"{g}." for g in gaps),
            *(["Utilisation is the device's own; on a cpu device the benchmark's process "
               "tree's share of the CPUs it may use (null between repeats), while host CPU is "
               "the whole host, other processes included."]
              if any(p.title.startswith("host CPU") for p in panels) else []),
            *(f"Shown: {'; '.join(dict.fromkeys(shown))}." for _ in shown[:1])])
        figures.append(Figure(f"timeline-{wl}", f"Telemetry: {wl}", svg, caption.strip(),
                              name=f"timeline-{wl}"))
    return figures


def _precision_of(doc: AnyResultDoc, params: Params) -> str:
    return str(params.get("precision") or params.get("dtype") or
               doc["workload"].get("precision_used"))


def roofline_figure(analysis: Analysis) -> Figure | None:
    devices = analysis.device_order()
    index = {d: k for k, d in enumerate(devices)}
    points: list[charts.RoofPoint] = []
    roofs: dict[tuple[str, str], charts.Roof] = {}
    skipped = 0
    no_roof: set[str] = set()
    compute_only: set[str] = set()
    for rev in analysis.reviews:
        doc = rev.result.doc
        d = rev.result.device_key
        dev = analysis.devices[d]
        candidates = [(None, {}, doc.get("metrics") or {}, doc["status"])]
        candidates += [(i, p.get("params", {}), p.get("metrics", {}), p.get("status"))
                       for i, p in enumerate(doc.get("points") or [])]
        for i, params, metrics, status in candidates:
            ai = (metrics.get("arithmetic_intensity") or {}).get("value")
            flops = (metrics.get("flop_per_s") or {}).get("value")
            if not isinstance(ai, int | float) or not isinstance(flops, int | float):
                continue
            if status != "ok" or ai <= 0 or flops <= 0:
                skipped += 1
                continue
            failed = any(f.point == i and (f.marks("flop_per_s") or f.marks(
                "arithmetic_intensity")) for f in rev.findings)
            precision = _precision_of(doc, params)
            pct = (metrics.get("pct_of_peak") or {}).get("value")
            what = ", ".join(f"{k}={v}" for k, v in params.items()) or rev.workload
            tip = (f"{dev.label} · {rev.workload} · {what}: {format_value(flops, 'FLOP/s')} at "
                   f"{ai:.3g} FLOP/B" + (f" ({pct:.3g} % of peak)" if isinstance(
                       pct, int | float) else "") + (" — failed a check" if failed else ""))
            points.append(charts.RoofPoint(index[d], float(ai), float(flops), tip, failed))
            spec = per_device(dev.spec) or {}  # pct_of_peak is per framework device too
            peak = (spec.get("peak_flops") or {}).get(precision)
            bw = spec.get("memory_bandwidth_bytes_per_s")
            if peak:
                roofs[(d, precision)] = charts.Roof(
                    index[d], f"{dev.label} {precision} peak {format_value(peak, 'FLOP/s', 3)}"
                    + (" (estimate)" if spec.get("estimate") else ""), float(peak),
                    float(bw) if bw else None)
                if not bw:
                    compute_only.add(dev.label)
            else:
                no_roof.add(dev.label)
    if not points:
        return None
    labels = [analysis.devices[d].label for d in devices]
    svg = charts.roofline_chart(points, list(roofs.values()), labels,
                                "Roofline of the operator sweeps")
    caption = (f"{len(points)} points (achieved FLOP/s at the point's arithmetic intensity); "
               "dashed: each device's roof min(peak, bandwidth × intensity) from its spec "
               "sheet.")
    if no_roof:
        caption += f" No roof for {', '.join(sorted(no_roof))}: no spec sheet with a peak."
    if compute_only:
        caption += (f" {', '.join(sorted(compute_only))}: the compute roof only (no memory "
                    "bandwidth figure)" + (", its peak estimated from the host's CPU flags, "
                    "cores and clock" if any((analysis.devices[d].spec or {}).get("estimate")
                                             for d in devices) else "") + ".")
    if skipped:
        caption += f" {skipped} point(s) that did not run (oom, unsupported, ...) are not drawn."
    return Figure("roofline", "Roofline", svg, caption, name="roofline")


@dataclass
class Views:
    devices: Table
    invalid: Table
    checks: Table
    findings: Table
    composite: Table
    composite_basis: Table
    composite_dropped: Table | None
    baseline: Table | None
    baseline_detail: Table | None
    tiers: Table | None
    claims: Table | None
    radar: Figure | None
    bars: list[Figure]
    timelines: list[Figure]
    roofline: Figure | None
    appendix: list[Table]
    unmeasured: Table | None
    points: list[Table]
    marks: dict[str, str] = field(default_factory=lambda: dict(MARKS))
    incomplete: Table | None = None
    disturbed: Table | None = None
    # What one device can show on its own (testbed.report.figures fills them).
    figures: list[Table] = field(default_factory=list)
    peak: Figure | None = None
    cold: Figure | None = None
    scopes: Table | None = None
    single_device: bool = False
    # testbed.report.function_views.FunctionViews, set by build.write_report
    function: Any = None
    inference: Any = None  # testbed.report.scenarios.InferenceViews
    # the training section (testbed.report.training), filled in by build.py
    training: Table | None = None
    loss_curves: list[Figure] = field(default_factory=list)
    # the scorecard section (testbed.scorecard.render.ScorecardSection), with --scorecard
    scorecard: Any = None
    # more sections of the same shape (anchor, title, blocks) a caller adds: the changes in
    # the range of a report from the store (testbed.store.changes)
    sections: list[Any] = field(default_factory=list)


def build_views(analysis: Analysis) -> Views:
    appendix = [t for t in (metric_table(analysis, m) for m in metric_names(analysis)) if t]
    basis, dropped = composite_basis(analysis)
    return Views(
        devices=device_table(analysis), invalid=invalid_table(analysis),
        checks=check_summary(analysis), findings=findings_table(analysis),
        composite=composite_table(analysis), composite_basis=basis, composite_dropped=dropped,
        baseline=baseline_table(analysis), baseline_detail=baseline_detail(analysis),
        tiers=tier_table(analysis), claims=claims_table(analysis),
        radar=radar_figure(analysis),
        bars=metric_figures(analysis), timelines=timeline_figures(analysis),
        roofline=roofline_figure(analysis), appendix=appendix,
        unmeasured=unmeasured_table(analysis), points=points_tables(analysis),
        incomplete=incomplete_table(analysis), disturbed=disturbed_table(analysis),
        inference=_inference(analysis))


def _inference(analysis: Analysis) -> Any:
    from testbed.report import scenarios

    views = scenarios.build(analysis)
    return None if views.empty else views
