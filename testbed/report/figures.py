"""What one device can show on its own: each workload's figures next to the device's peak,
its cold start apart from its steady state, and what every telemetry figure covers.

A composite score compares devices (min-max over them), so a report of one device leads with
these instead (``render_html``); with several devices they sit beside the scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.specs import per_device
from testbed.report import charts
from testbed.report.analysis import NON_COMPARABLE, Analysis
from testbed.report.fmt import format_value
from testbed.report.metrics import GROUP_TITLES, MODE_TITLES
from testbed.report.views import Cell, Figure, Table, Views, placement_text, value_cell


@dataclass(frozen=True)
class PeakShare:
    """A workload's achieved FLOP/s as % of the device's peak, and where it comes from."""

    pct: float | None
    basis: str
    estimate: bool = False


def _value(row: pd.Series | None) -> float | None:
    if row is None or pd.isna(row["value"]) or "X" in row["marks"]:
        return None
    return float(row["value"])


def peak_share(analysis: Analysis, device: str, workload: str) -> PeakShare:
    """% of peak: the result's model FLOPs utilisation (``mfu_pct``) or a micro-benchmark's
    ``pct_of_peak``, else its achieved ``flop_per_s`` over the spec sheet's peak at the
    precision used (an estimated sheet says so)."""
    spec = per_device(analysis.devices[device].spec)
    estimate = bool(spec and spec.get("estimate"))
    for name, what in (("mfu_pct", "model FLOPs utilisation"),
                       ("pct_of_peak", "achieved FLOP/s of the headline point / peak")):
        value = _value(analysis.cell(device, workload, name))
        if value is not None:
            return PeakShare(value, f"{what} (`{name}`)", estimate)
    flops = _value(analysis.cell(device, workload, "flop_per_s"))
    if flops is None:
        return PeakShare(None, "no FLOP count for this workload")
    results = analysis.results_for(device, workload)
    precision = results[0].doc["workload"].get("precision_used") if results else None
    peak = ((spec or {}).get("peak_flops") or {}).get(precision)
    if not peak:
        return PeakShare(None, f"no {precision} peak for this device" + (
            "" if spec else " (no spec sheet)"))
    return PeakShare(flops / peak * 100, f"flop_per_s / the {precision} peak", estimate)


def _cold_ratio(analysis: Analysis, device: str, workload: str) -> float | None:
    first = _value(analysis.cell(device, workload, "cold_first_iter_s"))
    steady = _value(analysis.cell(device, workload, "latency_p50_s"))
    return first / steady if first is not None and steady else None


def _joined(cells: list[Cell], sep: str = " · ") -> Cell:
    """Several values in one cell (p50 · p95 · p99): their texts, marks and notes."""
    shown = [c for c in cells if c.kind in ("value", "na")]
    if not shown:
        return Cell("—", kind="na")
    marks = "".join(dict.fromkeys("".join(c.marks for c in shown)))
    notes = tuple(dict.fromkeys(n for c in shown for n in c.notes))
    kind = "value" if any(c.kind == "value" for c in shown) else "na"
    return Cell(sep.join(c.text for c in shown), marks, notes, kind=kind)


def _peak_cell(analysis: Analysis, device: str, workload: str) -> Cell:
    share = peak_share(analysis, device, workload)
    if share.pct is None:
        return Cell("—", notes=(share.basis,), kind="na")
    return Cell(format_value(share.pct, "%") + (" (est.)" if share.estimate else ""),
                notes=(share.basis + ("; the peak is estimated from the host"
                                      if share.estimate else ""),))


def _cold_cell(analysis: Analysis, device: str, workload: str) -> Cell:
    load = value_cell(analysis, device, workload, "cold_load_s")
    first = value_cell(analysis, device, workload, "cold_first_iter_s")
    if first.kind == "value":
        ratio = _cold_ratio(analysis, device, workload)
        first = Cell(first.text + (f" ({ratio:.2g}×)" if ratio is not None else ""),
                     first.marks, first.notes)
    return _joined([load, first], " · ")


# (header, cell maker): the columns of the figures table, in reading order.
COLUMNS: tuple[tuple[str, Any], ...] = (
    ("throughput", lambda a, d, w: value_cell(a, d, w, "throughput_items_per_s")),
    ("latency p50 · p95 · p99", lambda a, d, w: _joined(
        [value_cell(a, d, w, f"latency_p{p}_s") for p in (50, 95, 99)])),
    ("cold: load · first iteration (× p50)", _cold_cell),
    ("achieved FLOP/s", lambda a, d, w: value_cell(a, d, w, "flop_per_s")),
    ("% of peak", _peak_cell),
    ("device utilisation", lambda a, d, w: value_cell(a, d, w, "device_util_pct")),
    ("device memory, peak", lambda a, d, w: value_cell(a, d, w, "device_mem_used_bytes_peak")),
    ("power", lambda a, d, w: value_cell(a, d, w, "power_w_mean")),
    ("energy per item", lambda a, d, w: value_cell(a, d, w, "energy_per_item_j")),
)


def figures_table(analysis: Analysis, device: str, index: int = 0) -> Table:
    """One row per workload: its steady-state figures, its cold start, % of peak; a column
    no workload has a value for is left out (power on a host without RAPL)."""
    label = analysis.devices[device].label
    rows: list[list[Cell | str]] = []
    for wl in analysis.workload_order():
        if (device, wl) not in analysis.status.index:
            continue
        status = analysis.status.loc[(device, wl)]
        marks = "".join(c for c in status["marks"] if c in NON_COMPARABLE)
        cells = [make(analysis, device, wl) for _title, make in COLUMNS]
        cells = [c if c.kind != "missing" else Cell("—", kind="na") for c in cells]
        where = sorted({w for r in analysis.results_for(device, wl)
                        if (w := placement_text(r.doc))})
        name = f"{wl} ({'; '.join(where)})" if where else wl
        rows.append([name, Cell(status["status"], marks, tuple(
            [f"{status['status']}: {status['error']}"] if status["error"] else []),
            kind="status"), *cells])
    keep = [i for i in range(len(COLUMNS))
            if any(isinstance(r[2 + i], Cell) and r[2 + i].kind == "value" for r in rows)]
    rows = [[r[0], r[1], *(r[2 + i] for i in keep)] for r in rows]
    header = ["workload", "status", *(COLUMNS[i][0] for i in keep)]
    return Table(f"Figures per workload on {label}", header, rows, anchor=f"figures-{index}",
                 caption="Steady state: the timed windows after warm-up (latency per batch, "
                         "nearest-rank percentiles). Cold: each repeat's fresh process before "
                         "warm-up: load (model built and moved to the device) and first "
                         "iteration (compilation and lazy initialisation included; × its "
                         "steady p50). % of peak: achieved FLOP/s over the device's peak at "
                         "the precision used (est.: a peak estimated from the host). Hover a "
                         "value for its basis.")


def _sections(analysis: Analysis, value: Any) -> list[charts.BarSection]:
    """Bar sections (mode x group) of the workloads for which ``value(device, wl)`` is a
    (bar value, tooltip, marks) for some device."""
    devices = analysis.device_order()
    out = []
    for mode in MODE_TITLES:
        for group in GROUP_TITLES:
            wls = [w for w in analysis.workload_order()
                   if analysis.workloads[w].mode == mode and analysis.workloads[w].group == group
                   and any(value(d, w)[0] is not None for d in devices)]
            if not wls:
                continue
            section = charts.BarSection(f"{MODE_TITLES[mode]} · {GROUP_TITLES[group]}", wls)
            for wl in wls:
                bars = []
                for d in devices:
                    v, tip, marks = value(d, wl)
                    bars.append(charts.Bar(v, tip, note="—" if v is None else "",
                                           hatched=any(c in marks for c in NON_COMPARABLE),
                                           marks=marks))
                section.bars[wl] = bars
            out.append(section)
    return out


def _status_marks(analysis: Analysis, device: str, workload: str) -> str:
    if (device, workload) not in analysis.status.index:
        return ""
    return str(analysis.status.loc[(device, workload), "marks"])


def peak_figure(analysis: Analysis) -> Figure | None:
    """% of each device's own peak per workload (absolute, not normalised to the others)."""
    def value(d: str, wl: str) -> tuple[float | None, str, str]:
        share = peak_share(analysis, d, wl)
        label = analysis.devices[d].label
        if share.pct is None:
            return None, f"{label} · {wl}: {share.basis}", ""
        tip = (f"{label} · {wl}: {share.pct:.3g} % of peak ({share.basis}"
               + ("; the peak is an estimate from the host" if share.estimate else "") + ")")
        return min(max(share.pct, 0.0), 100.0) / 100, tip, _status_marks(analysis, d, wl)

    sections = _sections(analysis, value)
    if not sections:
        return None
    labels = [analysis.devices[d].label for d in analysis.device_order()]
    svg = charts.bar_chart(sections, labels, "Achieved FLOP/s as % of the device's peak",
                           y_label="% of peak")
    estimated = [analysis.devices[d].label for d in analysis.device_order()
                 if (analysis.devices[d].spec or {}).get("estimate")]
    caption = ("Each workload's achieved FLOP/s over its device's peak at the precision used "
               "(model FLOPs utilisation for models; the headline point for sweeps). Hover a "
               "bar for its basis; hatched: not comparable.")
    if estimated:
        caption += (f" The peak of {', '.join(estimated)} is an estimate from the host (cores "
                    "× vector FMA width from the CPU flags × clock), not a vendor figure.")
    return Figure("peak-share", "% of the device's peak", svg, caption, name="peak-share")


def cold_figure(analysis: Analysis) -> Figure | None:
    """The first iteration of each repeat against the steady state, as a factor."""
    ratios: dict[tuple[str, str], float] = {}
    for d in analysis.device_order():
        for wl in analysis.workload_order():
            ratio = _cold_ratio(analysis, d, wl)
            if ratio is not None:
                ratios[(d, wl)] = ratio
    if not ratios:
        return None
    top = max(ratios.values())
    vmax = charts.nice_step(top, 4) * 4 if top > 0 else 1.0

    def value(d: str, wl: str) -> tuple[float | None, str, str]:
        label = analysis.devices[d].label
        ratio = ratios.get((d, wl))
        if ratio is None:
            return None, f"{label} · {wl}: no cold start or steady latency", ""
        first = analysis.cell(d, wl, "cold_first_iter_s")
        load = analysis.cell(d, wl, "cold_load_s")
        tip = (f"{label} · {wl}: first iteration {format_value(float(first['value']), 's')} = "
               f"{ratio:.3g} × the steady p50"
               + (f"; load {format_value(float(load['value']), 's')}" if load is not None
                  and not pd.isna(load["value"]) else ""))
        return ratio, tip, _status_marks(analysis, d, wl)

    sections = _sections(analysis, value)
    labels = [analysis.devices[d].label for d in analysis.device_order()]
    svg = charts.bar_chart(sections, labels, "Cold start: first iteration ÷ steady-state p50",
                           y_label="× steady p50", vmax=vmax, percent_axis=False)
    return Figure("cold-start", "Cold start against the steady state", svg,
                  "Each repeat runs in a fresh process: its first iteration (before warm-up, "
                  "compilation and lazy initialisation included) divided by the steady-state "
                  "median latency per batch. 1 × means no cold-start cost. The load time "
                  "(model built and moved to the device) is in the table above and in the "
                  "tooltips.", name="cold-start")


def scopes_table(analysis: Analysis) -> Table | None:
    """What each telemetry figure covers, per device, as the results say (the cpu's device
    figures are its benchmark's own share; host_* are the whole host)."""
    rows: list[list[Cell | str]] = []
    for d in analysis.device_order():
        seen: dict[str, str] = {}
        for rev in analysis.reviews:
            if rev.result.device_key != d:
                continue
            for name, entry in (rev.result.doc.get("metrics") or {}).items():
                scope = entry.get("scope") if isinstance(entry, dict) else None
                if isinstance(scope, str) and name not in seen:
                    seen[name] = scope
            framework = ((rev.result.doc.get("metrics") or {}).get("framework_mem_peak_bytes")
                         or {}).get("note")
            if isinstance(framework, str):
                seen.setdefault("framework_mem_peak_bytes", framework)
        grouped: dict[str, list[str]] = {}
        for name, scope in seen.items():
            grouped.setdefault(scope, []).append(name)
        for scope, names in grouped.items():
            rows.append([Cell(analysis.devices[d].label), ", ".join(names), scope])
    if not rows:
        return None
    return Table("What the telemetry figures cover", ["device", "metrics", "scope"], rows,
                 anchor="scopes",
                 caption="As each result records it. On the cpu reference the device figures "
                         "are the benchmark's own (its process tree's share of the CPUs it may "
                         "use, its resident memory); host_* figures are the whole host, other "
                         "processes included.")



def add_device_views(views: Views, analysis: Analysis) -> Views:
    """The one-device sections of ``views``: figures per workload for every device, % of
    peak, cold start and the telemetry scopes."""
    views.figures = [figures_table(analysis, d, i)
                     for i, d in enumerate(analysis.device_order())]
    views.peak = peak_figure(analysis)
    views.cold = cold_figure(analysis)
    views.scopes = scopes_table(analysis)
    # One device and no baseline: nothing to score against, the figures lead.
    views.single_device = len(analysis.devices) == 1 and analysis.baseline is None
    return views
