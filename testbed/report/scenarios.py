"""The report's inference sections: MLPerf scenarios (a table and a latency-vs-QPS chart from
the Server search), the concurrent-streams sweep with its knee, and the speed-up of each
device over a cpu run of the same configuration.

Kept apart from ``views`` so that the general report does not grow a branch per feature; the
views call ``build`` and render what it returns.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.documents import JsonObject, ResultDoc
from testbed.report import charts
from testbed.report.analysis import Analysis
from testbed.report.fmt import format_value
from testbed.report.inputs import Result
from testbed.report.metrics import direction
from testbed.report.views import Cell, Figure, Table

SCENARIO_TITLES = {"single_stream": "SingleStream", "multi_stream": "MultiStream",
                   "server": "Server", "offline": "Offline"}
# A stream count is past the knee when one more step of the sweep adds less than this share
# of throughput.
KNEE_MIN_GAIN = 0.10


@dataclass
class InferenceViews:
    scenarios: Table | None = None
    latency_qps: Figure | None = None
    streams: Table | None = None
    streams_chart: Figure | None = None
    speedup: Table | None = None
    figures: list[Figure] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any((self.scenarios, self.streams, self.speedup))


# -- pure arithmetic ---------------------------------------------------------------------------
def knee(points: Sequence[tuple[int, float]], min_gain: float = KNEE_MIN_GAIN
         ) -> tuple[int | None, str]:
    """The stream count after which throughput stops paying: the first N whose next point
    (more streams) raises throughput by less than ``min_gain``; with why. None if the sweep
    has fewer than two points or throughput still rose at every step (no knee yet)."""
    pts = sorted(points)
    if len(pts) < 2:
        return None, "a sweep needs at least two stream counts"
    for (n, thr), (m, nxt) in itertools.pairwise(pts):
        gain = nxt / thr - 1 if thr > 0 else math.inf
        if gain < min_gain:
            return n, (f"{m} streams add {gain:+.0%} throughput over {n} "
                       f"(less than {min_gain:.0%})")
    return None, (f"no knee up to {pts[-1][0]} streams: throughput rose by {min_gain:.0%} "
                  "or more at every step")


def speedup(device: float | None, cpu: float | None, larger_is_better: bool) -> float | None:
    """How many times better than the cpu a figure is (a latency: cpu / device)."""
    if not device or not cpu or device <= 0 or cpu <= 0:
        return None
    return device / cpu if larger_is_better else cpu / device


# -- helpers ---------------------------------------------------------------------------------------
def _value(doc: ResultDoc, metric: str) -> float | None:
    entry = (doc.get("metrics") or {}).get(metric) or {}
    v = entry.get("value")
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _ok(analysis: Analysis) -> list[tuple[str, str, Result]]:
    """(device key, workload key, result) of every ok result."""
    return [(r.result.device_key, r.workload, r.result) for r in analysis.reviews
            if r.result.status == "ok"]


def config_key(doc: ResultDoc) -> str:
    """What must be identical for two results to compare (a speed-up, a sweep)."""
    w = doc["workload"]
    return json.dumps({"workload": w["name"], "mode": w["mode"], "config": w["config"],
                       "params": w["params"], "precision": w["precision_requested"],
                       "scenario": (doc.get("scenario") or {}).get("rules")},
                      sort_keys=True, default=str)


# -- scenarios -------------------------------------------------------------------------------------
def scenario_table(analysis: Analysis) -> Table | None:
    rows: list[list[Cell | str]] = []
    for device, workload, result in _ok(analysis):
        sc = result.doc.get("scenario")
        if not sc:
            continue
        doc = result.doc
        rules = sc.get("rules") or {}
        headline = sc.get("headline_metric", "")
        entry = (doc.get("metrics") or {}).get(headline) or {}
        value = entry.get("value")
        text = format_value(value, entry.get("unit", "")) if isinstance(value, int | float) \
            else "n/a"
        notes = (entry.get("reason"),) if value is None and entry.get("reason") else ()
        pct = entry.get("percentile")
        what = headline.replace("_", " ") + (f" (p{pct:g})" if isinstance(pct, int | float)
                                              else "")
        if sc["name"] == "server":
            bound = " · ".join(
                f"{k} {format_value(rules.get(k + '_s'), 's')}" for k in ("ttft_latency",
                                                                          "tpot_latency")
                if rules.get(k + "_s")) or f"{format_value(rules.get('target_latency_s'), 's')}"
            bound += f" at p{rules.get('target_latency_percentile'):g}"
        else:
            bound = "—"
        scaled = sc.get("scaled") or []
        scaled_text = ", ".join(f"{s['setting']} {s['used']} (MLPerf {s['mlperf']})"
                                for s in scaled)
        verdict = sc.get("verdict", "?")
        rows.append([workload, SCENARIO_TITLES.get(sc["name"], sc["name"]),
                     Cell(analysis.devices[device].label),
                     Cell(text, notes=(what, *notes)),
                     Cell(verdict, "" if verdict == "VALID" else "X",
                          (f"repeats VALID: {sc.get('repeats_valid')}",), kind="status"),
                     bound, Cell(str(len(scaled)), notes=(scaled_text,) if scaled else ())])
    if not rows:
        return None
    return Table("MLPerf scenarios (LoadGen)", ["workload", "scenario", "device",
                                                "result", "LoadGen", "bound", "scaled"],
                 rows, anchor="scenarios",
                 caption="Each scenario's own figure as LoadGen measured it: SingleStream "
                         "and MultiStream a latency percentile, Server the highest target QPS "
                         "LoadGen found VALID under the bound, Offline samples per second. "
                         "`scaled`: MLPerf settings the suite changed (hover for them).")


def search_series(analysis: Analysis) -> list[tuple[str, list[JsonObject], float | None]]:
    """(label, server search steps, latency bound) per Server result."""
    out = []
    for device, workload, result in _ok(analysis):
        sc = result.doc.get("scenario") or {}
        if sc.get("name") != "server":
            continue
        steps = [s for r in result.doc.get("repeats") or [] if r.get("status") == "ok"
                 for s in ((r.get("scenario") or {}).get("search") or {}).get("steps", [])]
        if steps:
            rules = sc.get("rules") or {}
            bound = rules.get("ttft_latency_s") or rules.get("target_latency_s")
            out.append((f"{analysis.devices[device].label} · {workload}", steps, bound))
    return out


@dataclass
class XYPoint:
    x: float
    y: float
    filled: bool
    tooltip: str


def xy_chart(series: Sequence[tuple[str, list[XYPoint], float | None]], title: str,
             x_label: str, y_label: str) -> str:
    """Lines of points (x, y) per series on log-log axes; hollow points are invalid runs;
    a dashed line per series at its bound (y)."""
    left, top, plot_w, plot_h = 74.0, 20.0, 600.0, 300.0
    xs = [p.x for _, pts, _ in series for p in pts if p.x > 0]
    ys = [p.y for _, pts, _ in series for p in pts if p.y > 0] + \
        [b for _, _, b in series if b]
    x_lo, x_hi = 10 ** math.floor(math.log10(min(xs))), 10 ** math.ceil(math.log10(max(xs)))
    y_lo, y_hi = 10 ** math.floor(math.log10(min(ys))), 10 ** math.ceil(math.log10(max(ys)))
    if x_hi <= x_lo:
        x_hi = x_lo * 10
    if y_hi <= y_lo:
        y_hi = y_lo * 10
    legend_h = 20 * len(series)
    legend_w = 60 + 7.0 * max((len(label) for label, _, _ in series), default=10)
    svg = charts.Svg(left + plot_w + legend_w, max(top + plot_h + 56, legend_h + 40), title,
                     "latency-qps")

    def xf(v: float) -> float:
        return left + plot_w * (math.log10(v) - math.log10(x_lo)) / (
            math.log10(x_hi) - math.log10(x_lo))

    def yf(v: float) -> float:
        return top + plot_h - plot_h * (math.log10(v) - math.log10(y_lo)) / (
            math.log10(y_hi) - math.log10(y_lo))

    for exp in range(round(math.log10(x_lo)), round(math.log10(x_hi)) + 1):
        t = 10.0 ** exp
        svg.line(xf(t), top, xf(t), top + plot_h)
        svg.text(xf(t), top + plot_h + 16, f"{t:g}", anchor="middle", size=10,
                 fill=charts.MUTED)
    for exp in range(round(math.log10(y_lo)), round(math.log10(y_hi)) + 1):
        t = 10.0 ** exp
        svg.line(left, yf(t), left + plot_w, yf(t))
        svg.text(left - 6, yf(t) + 4, format_value(t, "s", 3), anchor="end", size=10,
                 fill=charts.MUTED)
    svg.add(f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='none' "
            f"stroke='{charts.AXIS}'/>")
    svg.text(left + plot_w / 2, top + plot_h + 36, x_label, anchor="middle", size=11,
             fill=charts.MUTED)
    svg.text(16, top + plot_h / 2, y_label, anchor="middle", size=11, fill=charts.MUTED,
             rotate=-90)
    for k, (label, pts, bound) in enumerate(series):
        col = charts.colour(k)
        if bound:
            svg.add(f"<line class='bound' x1='{left:.1f}' y1='{yf(bound):.1f}' "
                    f"x2='{left + plot_w:.1f}' y2='{yf(bound):.1f}' stroke='{col}' "
                    f"stroke-width='1.5' stroke-dasharray='6 3'><title>{charts.esc(label)}: "
                    f"bound {format_value(bound, 's')}</title></line>")
        ordered = sorted((p for p in pts if p.x > 0 and p.y > 0), key=lambda p: p.x)
        if len(ordered) > 1:
            poly = " ".join(f"{xf(p.x):.1f},{yf(p.y):.1f}" for p in ordered)
            svg.add(f"<polyline points='{poly}' fill='none' stroke='{col}' stroke-width='1.6' "
                    "stroke-opacity='0.7'/>")
        for p in ordered:
            fill = col if p.filled else "#ffffff"
            svg.add(f"<circle class='xy-point' cx='{xf(p.x):.1f}' cy='{yf(p.y):.1f}' r='4.5' "
                    f"fill='{fill}' stroke='{col}' stroke-width='1.8'><title>"
                    f"{charts.esc(p.tooltip)}</title></circle>")
        ly = top + 12 + 20 * k
        svg.add(f"<circle cx='{left + plot_w + 26}' cy='{ly - 4}' r='5' fill='{col}'/>")
        svg.text(left + plot_w + 38, ly, label, size=12)
    return svg.render()


def latency_qps_figure(analysis: Analysis) -> Figure | None:
    data = search_series(analysis)
    if not data:
        return None
    series = []
    for label, steps, bound in data:
        pts = []
        for s in steps:
            y = s.get("ttft_s") or s.get("latency_s")
            if not isinstance(y, int | float) or not s.get("target_qps"):
                continue
            verdict = "VALID" if s.get("valid") else "INVALID"
            pts.append(XYPoint(float(s["target_qps"]), float(y), bool(s.get("valid")),
                               f"{label}: {s['target_qps']:.4g} QPS, p"
                               f"{s.get('latency_percentile', '?')} {format_value(y, 's')} — "
                               f"{verdict}" + (f" ({s['why']})" if s.get("why") else "")))
        series.append((label, pts, bound))
    svg = xy_chart(series, "Server: latency against target QPS", "target QPS (queries/s)",
                   "latency at the bound's percentile (TTFT for LLMs)")
    return Figure("latency-qps", "Latency against QPS (Server search)", svg,
                  "Every step of each Server search: one LoadGen run at a target QPS. Filled: "
                  "VALID, hollow: INVALID; dashed: the latency bound. The result is the "
                  "highest filled point.", name="latency-qps")


# -- streams ---------------------------------------------------------------------------------------
def stream_groups(analysis: Analysis) -> dict[tuple[str, str], list[tuple[int, Result]]]:
    """Results of one device and one configuration that differ only in ``streams``."""
    groups: dict[tuple[str, str], list[tuple[int, Result]]] = {}
    for device, _workload, result in _ok(analysis):
        doc = result.doc
        params = doc["workload"].get("params") or {}
        if "streams" not in params or doc.get("scenario"):
            continue
        base = dict(doc)
        base["workload"] = {**doc["workload"],
                            "params": {k: v for k, v in params.items() if k != "streams"}}
        groups.setdefault((device, config_key(base)), []).append((int(params["streams"]),
                                                                  result))
    return {k: sorted(v, key=lambda x: x[0]) for k, v in groups.items()
            if len({n for n, _ in v}) > 1}


def streams_views(analysis: Analysis) -> tuple[Table | None, Figure | None]:
    groups = stream_groups(analysis)
    if not groups:
        return None, None
    rows: list[list[Cell | str]] = []
    series = []
    for (device, _key), members in groups.items():
        label = analysis.devices[device].label
        name = members[0][1].doc["workload"]["name"]
        unit = ((members[0][1].doc.get("metrics") or {}).get("throughput_items_per_s")
                or {}).get("unit", "items/s")
        pts = [(n, _value(r.doc, "throughput_items_per_s") or 0.0) for n, r in members]
        best, why = knee(pts)
        xy = []
        for n, r in members:
            thr = _value(r.doc, "throughput_items_per_s")
            lat = _value(r.doc, "latency_mean_s")
            p99 = _value(r.doc, "latency_p99_s")
            mark = "knee" if n == best else ("still rising" if best is None
                                             and n == members[-1][0] else "")
            rows.append([name, Cell(label), str(n), Cell(format_value(thr, unit)),
                         Cell(format_value(lat, "s")), Cell(format_value(p99, "s")),
                         Cell(mark, notes=(why,) if mark else (), kind="status")])
            if thr and lat:
                xy.append(XYPoint(thr, lat, best is None or n <= best,
                                  f"{label} · {name}: {n} stream(s), "
                                  f"{format_value(thr, unit)}, mean {format_value(lat, 's')}"))
        series.append((f"{label} · {name}", xy, None))
    table = Table("Concurrent streams", ["workload", "device", "streams", "throughput",
                                         "latency mean", "latency p99", "knee"], rows,
                  anchor="streams",
                  caption=f"N host threads, each with its own batches (and its own device "
                          f"stream where the device has streams). The knee: the stream count "
                          f"after which one more step of the sweep adds less than "
                          f"{KNEE_MIN_GAIN:.0%} throughput.")
    svg = xy_chart(series, "Throughput against latency per stream count",
                   "throughput (items/s)", "mean latency per batch")
    figure = Figure("streams-chart", "Streams: throughput against latency", svg,
                    "One point per stream count (left to right: more streams); hollow: past "
                    "the knee.", name="streams")
    return table, figure


# -- speed-up over the cpu -----------------------------------------------------------------------
def speedup_table(analysis: Analysis) -> Table | None:
    """Each device's ratio to a cpu run of the identical configuration (throughput, and the
    scenario's own figure where there is one)."""
    cpu: dict[str, list[Result]] = {}
    for device, _wl, result in _ok(analysis):
        if analysis.devices[device].vendor == "cpu":
            cpu.setdefault(config_key(result.doc), []).append(result)
    if not cpu:
        return None
    rows: list[list[Cell | str]] = []
    for device, workload, result in _ok(analysis):
        if analysis.devices[device].vendor == "cpu":
            continue
        refs = cpu.get(config_key(result.doc))
        if not refs:
            continue
        metrics = ["throughput_items_per_s"]
        headline = (result.doc.get("scenario") or {}).get("headline_metric")
        if headline:
            metrics.append(headline)
        for metric in metrics:
            mine = _value(result.doc, metric)
            theirs = [v for v in (_value(r.doc, metric) for r in refs) if v is not None]
            ref = sum(theirs) / len(theirs) if theirs else None
            ratio = speedup(mine, ref, direction(metric) >= 0)
            rows.append([workload, Cell(analysis.devices[device].label), metric,
                         Cell("n/a" if ratio is None else f"×{ratio:.3g}",
                              notes=(f"{mine} vs cpu {ref} (mean of {len(theirs)})",),
                              kind="score")])
    if not rows:
        return None
    return Table("Speed-up over the CPU", ["workload", "device", "metric", "× cpu"], rows,
                 anchor="speedup",
                 caption="Against a cpu result of the identical configuration (workload, "
                         "parameters, precision, scenario rules); a latency's speed-up is cpu "
                         "latency / device latency.")


def build(analysis: Analysis) -> InferenceViews:
    out = InferenceViews(scenarios=scenario_table(analysis),
                         latency_qps=latency_qps_figure(analysis),
                         speedup=speedup_table(analysis))
    out.streams, out.streams_chart = streams_views(analysis)
    out.figures = [f for f in (out.latency_qps, out.streams_chart) if f is not None]
    return out
