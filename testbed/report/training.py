"""The report's training section: TGS, MFU and the checkpoint figures of every training
workload in one table, and the loss of every step per device as line charts.

A training result (``llm-pretrain``, ``llm-finetune``) keeps the loss and gradient norm of
its first steps in ``repeats[].series`` (docs/training.md); the chart draws the first
successful repeat of each device's first result, so two devices' curves can be compared step
by step (the data and the initial weights are the same on every device for a given seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.documents import ResultDoc
from bench.llm.train_formulas import loss_difference_variance
from testbed.report import charts
from testbed.report.analysis import Analysis
from testbed.report.views import Cell, Figure, Table, value_cell

LOSS_LEAD = ("Loss (nat per predicted token) of every step from step 1, warm-up included, "
             "from each device's first result: the data and the initial weights are the same "
             "on every device for a seed, so the curves compare step by step. Hover a point "
             "for its value.")
# The metric that marks a result as a training result with a loss curve.
MARKER_METRIC = "tgs_tokens_per_s"
TABLE_METRICS = (
    ("tgs_tokens_per_s", "TGS"),
    ("mfu_pct", "MFU"),
    ("iteration_time_mean_s", "iteration"),
    ("loss_final", "final loss"),
    ("checkpoint_save_s", "ckpt save"),
    ("checkpoint_save_blocking_s", "blocking"),
    ("checkpoint_load_s", "ckpt load"),
    ("peak_mem_bytes", "peak mem/rank"),
)


def training_workloads(analysis: Analysis) -> list[str]:
    return [wl for wl in analysis.workload_order()
            if any(analysis.cell(d, wl, MARKER_METRIC) is not None
                   for d in analysis.device_order())]


def _layout(analysis: Analysis, device: str, workload: str) -> str:
    """World size and sharding strategy of the device's first result (e.g. "2 x fsdp")."""
    results = analysis.results_for(device, workload)
    if not results:
        return "—"
    info = (results[0].doc.get("workload") or {}).get("info") or {}
    world, strategy = info.get("world_size"), info.get("strategy")
    if world is None:
        return "?"
    return f"{world} × {strategy}" if strategy and strategy != "none" else f"{world}"


def training_table(analysis: Analysis) -> Table | None:
    """One row per (training workload, device): the template's training figures."""
    workloads = training_workloads(analysis)
    if not workloads:
        return None
    rows: list[list[Cell | str]] = []
    for wl in workloads:
        for d in analysis.device_order():
            if (d, wl) not in analysis.status.index:
                continue
            rows.append([wl, analysis.devices[d].label, _layout(analysis, d, wl),
                         *[value_cell(analysis, d, wl, m) for m, _ in TABLE_METRICS]])
    return Table("Training: TGS, MFU, loss and checkpoints",
                 ["workload", "device", "ranks", *[title for _, title in TABLE_METRICS]],
                 rows, anchor="training-table",
                 caption="TGS: tokens per device per second = tokens per sample × global batch "
                         "/ (mean iteration time × devices). MFU = model FLOPs per token (6N + "
                         "attention) × TGS / the spec sheet's peak of one device at the "
                         "precision used (n/a without a sheet). Checkpoint: save and load of "
                         "model and optimiser with torch.distributed.checkpoint; blocking: the "
                         "part of the save training waits for. Peak memory: the highest rank.")


# -- loss curves ---------------------------------------------------------------------------------
@dataclass
class Curve:
    label: str
    colour: str
    values: list[float | None]  # loss of step 1, 2, ...
    note: str = ""


def _numbers(values: list[Any]) -> list[float | None]:
    return [float(v) if isinstance(v, int | float) and not isinstance(v, bool)
            and math.isfinite(v) else None for v in values]


def loss_series(doc: ResultDoc, name: str = "loss") -> list[float | None] | None:
    """The per-step series of the first repeat that has one (None if no repeat has)."""
    for rep in doc.get("repeats") or []:
        values = (rep.get("series") or {}).get(name)
        if values:
            return _numbers(values)
    return None


def line_chart(curves: list[Curve], title: str, y_label: str) -> str:
    """Lines over steps 1..n, one per device, with a legend and hover titles per point."""
    left, right, top, bottom, width, height = 58.0, 16.0, 40.0, 40.0, 560.0, 280.0
    svg = charts.Svg(width, height, title, "lines")
    values = [v for c in curves for v in c.values if v is not None]
    steps = max(len(c.values) for c in curves)
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or max(abs(high) * 0.05, 0.01)
    low, high = low - pad, high + pad
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_of(step: float) -> float:
        return left + plot_w * (step - 1) / max(steps - 1, 1)

    def y_of(v: float) -> float:
        return top + plot_h - plot_h * (v - low) / (high - low)

    charts.legend(svg, left, 16, [c.label for c in curves], [c.colour for c in curves],
                  width - left - right)
    for t in charts.linear_ticks(low, high, 5):
        if low <= t <= high:
            svg.line(left, y_of(t), width - right, y_of(t))
            svg.text(left - 6, y_of(t) + 4, f"{t:g}", anchor="end", size=10, fill=charts.MUTED)
    for s in charts.linear_ticks(1, steps, 10):
        if 1 <= s <= steps and float(s).is_integer():
            svg.text(x_of(s), top + plot_h + 16, f"{int(s)}", anchor="middle", size=10,
                     fill=charts.MUTED)
    svg.line(left, top + plot_h, width - right, top + plot_h, stroke=charts.AXIS)
    svg.line(left, top, left, top + plot_h, stroke=charts.AXIS)
    svg.text(width - right, top + plot_h + 32, "step", anchor="end", size=11,
             fill=charts.MUTED)
    svg.text(14, top + plot_h / 2, y_label, anchor="middle", size=11, fill=charts.MUTED,
             rotate=-90)
    for c in curves:
        run: list[str] = []
        runs = [run]
        for i, v in enumerate(c.values):
            if v is None:
                run = []
                runs.append(run)
                continue
            run.append(f"{x_of(i + 1):.1f},{y_of(v):.1f}")
        for r in runs:
            if len(r) > 1:
                svg.add(f"<polyline class='trace' points='{' '.join(r)}' fill='none' "
                        f"stroke='{c.colour}' stroke-width='1.8' stroke-linejoin='round'>"
                        f"<title>{charts.esc(c.label)}</title></polyline>")
        for i, v in enumerate(c.values):
            if v is not None:
                svg.add(f"<circle cx='{x_of(i + 1):.1f}' cy='{y_of(v):.1f}' r='2.2' "
                        f"fill='{c.colour}'><title>{charts.esc(c.label)} · step {i + 1}: "
                        f"{v:.5g}</title></circle>")
    return svg.render()


def variance_text(values: list[float | None], baseline: list[float]) -> str:
    ours = [v for v in values if v is not None]
    var = loss_difference_variance(ours, baseline)
    return "n/a" if var is None else f"{var:.3g}"


def _last(values: list[float | None]) -> float:
    return next(v for v in reversed(values) if v is not None)


def loss_figures(analysis: Analysis) -> list[Figure]:
    """One chart per training workload: the loss of every kept step, one line per device."""
    figures = []
    devices = analysis.device_order()
    for wl in training_workloads(analysis):
        curves: list[Curve] = []
        missing: list[str] = []
        for k, d in enumerate(devices):
            results = sorted(analysis.results_for(d, wl),
                             key=lambda r: r.doc.get("started_at", ""))
            label = analysis.devices[d].label
            series = next((s for s in (loss_series(r.doc) for r in results) if s), None)
            if not series or not any(v is not None for v in series):
                if results:
                    missing.append(label)
                continue
            curves.append(Curve(f"{label} ({_layout(analysis, d, wl)})", charts.colour(k),
                                series))
        if not curves:
            continue
        final = "; ".join(f"{c.label}: {_last(c.values):.4g}" for c in curves)
        caption = f"Last kept step: {final}."
        if len(curves) > 1:
            first = [v for v in curves[0].values if v is not None]
            diffs = [f"{c.label}: {variance_text(c.values, first)}" for c in curves[1:]]
            caption += (f" Variance of the step-by-step difference from {curves[0].label} "
                        f"(the template's stability figure): {'; '.join(diffs)}.")
        if missing:
            caption += f" No loss series from {', '.join(missing)}."
        svg = line_chart(curves, f"Loss per step: {wl}", "loss (nat)")
        figures.append(Figure(f"loss-{wl}", f"Loss per step: {wl}", svg, caption,
                              name=f"loss-{wl}"))
    return figures
