"""Charts as hand-written SVG: no plotting library, no script, no external file.

Inline SVG keeps the HTML report one self-contained file that opens offline (many labs are),
and the same SVG text is written beside the Markdown report. Every mark carries a
``<title>`` so hovering shows the exact value; non-comparable values are hatched and values
that failed a plausibility check are outlined in red with a cross.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")
FAIL = "#c62828"
GRID = "#e3e6ea"
AXIS = "#8a9099"
TEXT = "#2b2f36"
MUTED = "#6b7280"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"

_ids = itertools.count()


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


class Svg:
    """A small SVG builder; ``render()`` gives a standalone, scalable ``<svg>`` element."""

    def __init__(self, width: float, height: float, title: str, kind: str) -> None:
        self.width, self.height, self.title, self.kind = width, height, title, kind
        self.uid = f"c{next(_ids)}"
        self.parts: list[str] = []
        self.defs: list[str] = []

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(self, x: float, y: float, content: object, *, anchor: str = "start",
             size: float = 12, fill: str = TEXT, weight: str | None = None,
             rotate: float | None = None, baseline: str | None = None,
             tooltip: str | None = None, cls: str | None = None) -> None:
        attrs = [f"x='{x:.1f}'", f"y='{y:.1f}'", f"font-size='{size:g}'", f"fill='{fill}'"]
        if cls:
            attrs.insert(0, f"class='{cls}'")
        if anchor != "start":
            attrs.append(f"text-anchor='{anchor}'")
        if weight:
            attrs.append(f"font-weight='{weight}'")
        if baseline:
            attrs.append(f"dominant-baseline='{baseline}'")
        if rotate is not None:
            attrs.append(f"transform='rotate({rotate:g} {x:.1f} {y:.1f})'")
        inner = f"<title>{esc(tooltip)}</title>" if tooltip else ""
        self.add(f"<text {' '.join(attrs)}>{inner}{esc(content)}</text>")

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str = GRID,
             width: float = 1, dash: str | None = None) -> None:
        dashed = f" stroke-dasharray='{dash}'" if dash else ""
        self.add(f"<line x1='{x1:.1f}' y1='{y1:.1f}' x2='{x2:.1f}' y2='{y2:.1f}' "
                 f"stroke='{stroke}' stroke-width='{width:g}'{dashed}/>")

    def hatch(self) -> str:
        """The id of a diagonal-hatch pattern (non-comparable values)."""
        pid = f"{self.uid}-hatch"
        if not self.defs:
            self.defs.append(
                f"<pattern id='{pid}' width='6' height='6' patternUnits='userSpaceOnUse' "
                "patternTransform='rotate(45)'><rect width='6' height='6' fill='none'/>"
                "<line x1='0' y1='0' x2='0' y2='6' stroke='#ffffff' stroke-width='2.4' "
                "stroke-opacity='0.75'/></pattern>")
        return pid

    def render(self) -> str:
        defs = f"<defs>{''.join(self.defs)}</defs>" if self.defs else ""
        return (f"<svg xmlns='http://www.w3.org/2000/svg' class='chart chart-{self.kind}' "
                f"data-chart='{self.kind}' viewBox='0 0 {self.width:.0f} {self.height:.0f}' "
                f"width='{self.width:.0f}' height='{self.height:.0f}' role='img' "
                f"aria-label='{esc(self.title)}' font-family=\"{FONT}\">"
                f"<title>{esc(self.title)}</title>{defs}{''.join(self.parts)}</svg>")


def legend(svg: Svg, x: float, y: float, labels: Sequence[str], colours: Sequence[str],
           max_width: float) -> float:
    """A legend in rows starting at (x, y); returns the y below it."""
    cx, cy = x, y
    for label, col in zip(labels, colours, strict=True):
        w = 22 + 6.6 * len(label)
        if cx > x and cx + w > x + max_width:
            cx, cy = x, cy + 18
        svg.add(f"<rect x='{cx:.1f}' y='{cy - 9:.1f}' width='12' height='12' rx='2' "
                f"fill='{col}'/>")
        svg.text(cx + 17, cy + 1, label, size=12)
        cx += w + 14
    return cy + 16


# How a mark is written on a chart (✗ failed a check, ! far beyond the spec sheets).
MARK_TEXT = {"X": "✗", "W": "!"}
BREAK_OVERSHOOT = 12.0  # px a clipped bar runs past the top of its axis


def break_mark(svg: Svg, x: float, width: float, y: float) -> None:
    """Two slanted cuts across a bar: the bar is not drawn to scale above them."""
    for dy in (-3.5, 3.5):
        svg.add(f"<path class='break' d='M{x - 2:.1f},{y + dy + 3:.1f} L{x + width + 2:.1f},"
                f"{y + dy - 3:.1f}' stroke='#ffffff' stroke-width='2.6' fill='none'/>")


def nice_step(span: float, target: int = 5) -> float:
    raw = span / max(target, 1)
    if raw <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def linear_ticks(low: float, high: float, target: int = 5) -> list[float]:
    if high <= low:
        high = low + 1
    step = nice_step(high - low, target)
    start = math.floor(low / step) * step
    ticks = []
    v = start
    while v <= high + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


# -- radar -----------------------------------------------------------------------------------
@dataclass
class RadarSeries:
    label: str
    values: list[float | None]  # one per axis, in [0, vmax]
    notes: list[str]  # tooltip per axis


def radar_chart(axes: Sequence[str], series: Sequence[RadarSeries], title: str,
                vmax: float = 1.0) -> str:
    """A radar (spider) chart: one axis per workload, one polygon per device."""
    n = len(axes)
    # Labels sit outside the rim: leave room for the longest one on either side (an SVG
    # text's width is not known before layout; ~0.6 em per character is close enough).
    label_size = 12 if n <= 16 else 10
    char_w = 0.6 * label_size
    longest = max((len(a) for a in axes), default=0) * char_w
    radius = 165.0
    cx, cy = radius + 16 + longest + 12, radius + 57
    legend_x = cx + radius + 16 + longest + 28
    legend_w = max((len(s.label) for s in series), default=8) * 7.2 + 30
    svg = Svg(round(legend_x + legend_w), round(2 * cy), title, "radar")

    def at(i: int, r: float) -> tuple[float, float]:
        angle = -math.pi / 2 + 2 * math.pi * i / n
        return cx + r * math.cos(angle), cy + r * math.sin(angle)

    for frac in (0.25, 0.5, 0.75, 1.0):
        ring = " ".join(f"{x:.1f},{y:.1f}" for x, y in (at(i, radius * frac) for i in range(n)))
        svg.add(f"<polygon points='{ring}' fill='none' stroke='{GRID}' stroke-width='1'/>")
        svg.text(cx - 4, cy - radius * frac - 3, f"{frac * vmax:g}", anchor="end", size=10,
                 fill=MUTED)
    for i, name in enumerate(axes):
        x, y = at(i, radius)
        svg.line(cx, cy, x, y, stroke=GRID)
        lx, ly = at(i, radius + 16)
        dx = lx - cx
        anchor = "start" if dx > 8 else "end" if dx < -8 else "middle"
        svg.text(lx, ly + 4, name, anchor=anchor, size=label_size, weight="600")
    for k, s in enumerate(series):
        col = colour(k)
        pts = [at(i, radius * min(max(v or 0.0, 0.0), vmax) / vmax)
               for i, v in enumerate(s.values)]
        poly = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        svg.add(f"<polygon class='radar-area' points='{poly}' fill='{col}' fill-opacity='0.13' "
                f"stroke='{col}' stroke-width='2.2' stroke-linejoin='round'/>")
        for (x, y), v, note in zip(pts, s.values, s.notes, strict=True):
            fill = col if v is not None else "#ffffff"
            svg.add(f"<circle class='radar-point' cx='{x:.1f}' cy='{y:.1f}' r='4' fill='{fill}' "
                    f"stroke='{col}' stroke-width='1.6'><title>{esc(note)}</title></circle>")
    legend_y = 60.0
    svg.text(legend_x, legend_y - 20, "devices", size=11, fill=MUTED, weight="600")
    for k, s in enumerate(series):
        svg.add(f"<rect x='{legend_x:.1f}' y='{legend_y - 9:.1f}' width='12' height='12' "
                f"rx='2' fill='{colour(k)}'/>")
        svg.text(legend_x + 18, legend_y + 1, s.label, size=12)
        legend_y += 20
    return svg.render()


# -- grouped bars ----------------------------------------------------------------------------
@dataclass
class Bar:
    value: float | None  # in chart units (normalised), None = no bar
    tooltip: str
    note: str = ""  # short text shown instead of a bar (n/a, oom)
    hatched: bool = False  # non-comparable
    failed: bool = False  # failed a plausibility check
    marks: str = ""
    clipped: bool = False  # off the scale: drawn broken at the top, ``label`` printed in it
    label: str = ""


@dataclass
class BarSection:
    title: str
    categories: list[str]
    # bars[category][series index]
    bars: dict[str, list[Bar]] = field(default_factory=dict)


def bar_chart(sections: Sequence[BarSection], series: Sequence[str], title: str,
              y_label: str = "relative to the largest", vmax: float = 1.0,
              percent_axis: bool = True) -> str:
    """Grouped vertical bars: sections (mode x group) of categories (workloads), one bar per
    series (device) in each."""
    nser = max(len(series), 1)
    left, top, plot_h, min_plot_w = 64.0, 40.0, 190.0, 500.0
    bar_w = max(8.0, min(30.0, 150.0 / nser))
    # Every category is at least wide enough for its bars and its label, every section for
    # its title; then the plot is stretched to a minimum width.
    cat_w = {c: max(nser * bar_w + 22, 7.0 * len(c) + 12) for s in sections for c in s.categories}
    sec_w = [max(sum(cat_w[c] for c in s.categories), 7.2 * len(s.title) + 16) for s in sections]
    stretch = max(1.0, (min_plot_w - 18 * (len(sections) - 1)) / max(sum(sec_w), 1))
    sec_w = [w * stretch for w in sec_w]
    width = left + 20 + sum(sec_w) + 18 * (len(sections) - 1) + 10
    legend_rows = 1 + int(sum(22 + 6.6 * len(s) + 14 for s in series) // (width - left - 20))
    height = top + plot_h + 64 + 18 * legend_rows + 8
    svg = Svg(width, height, title, "bars")
    base = top + plot_h

    def y_of(v: float) -> float:
        return base - plot_h * max(0.0, min(v, vmax)) / vmax

    for t in (0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(t * vmax)
        svg.line(left, y, width - 10, y, stroke=GRID if t else AXIS)
        svg.text(left - 6, y + 4, f"{t * 100:g} %" if percent_axis else f"{t * vmax:g}",
                 anchor="end", size=10, fill=MUTED)
    svg.text(14, top + plot_h / 2, y_label, anchor="middle", size=10, fill=MUTED, rotate=-90)
    hatch = svg.hatch()
    x = left + 12
    for sec_index, section in enumerate(sections):
        sec_start = x
        natural = sum(cat_w[c] for c in section.categories)
        for cat in section.categories:
            bars = section.bars.get(cat, [])
            slot = cat_w[cat] * sec_w[sec_index] / natural
            bx0 = x + (slot - len(bars) * bar_w) / 2
            for k, bar in enumerate(bars):
                bx = bx0 + k * bar_w
                col = colour(k)
                if bar.value is None:
                    svg.text(bx + bar_w / 2, base - 4, bar.note or "n/a", anchor="start"
                             if len(bar.note) > 3 else "middle", size=9, fill=MUTED,
                             rotate=-90 if len(bar.note) > 3 else None, tooltip=bar.tooltip)
                    continue
                # A clipped bar runs past the top of the axis into a break mark.
                y = y_of(bar.value) - (BREAK_OVERSHOOT if bar.clipped else 0)
                h = max(base - y, 0.8)
                stroke = f" stroke='{FAIL}' stroke-width='2' stroke-dasharray='3 2'" \
                    if bar.failed else ""
                kind = "bar bar-clipped" if bar.clipped else "bar"
                svg.add(f"<rect class='{kind}' x='{bx + 1:.1f}' y='{y:.1f}' "
                        f"width='{bar_w - 2:.1f}' height='{h:.1f}' fill='{col}'{stroke}>"
                        f"<title>{esc(bar.tooltip)}</title></rect>")
                if bar.hatched:
                    svg.add(f"<rect x='{bx + 1:.1f}' y='{y:.1f}' width='{bar_w - 2:.1f}' "
                            f"height='{h:.1f}' fill='url(#{hatch})' pointer-events='none'/>")
                if bar.clipped:
                    break_mark(svg, bx + 1, bar_w - 2, y_of(vmax) + 10)
                    svg.text(bx + bar_w / 2 + 3.5, base - 6, bar.label, size=9, fill="#ffffff",
                             weight="700", rotate=-90, tooltip=bar.tooltip,
                             cls="bar-value")
                label = "".join(MARK_TEXT.get(c, c) for c in bar.marks)
                if label:
                    svg.text(bx + bar_w / 2, y - 4, label, anchor="middle", size=10,
                             fill=FAIL if bar.failed else TEXT, weight="700",
                             tooltip=bar.tooltip)
            svg.text(x + slot / 2, base + 15, cat, anchor="middle", size=11)
            x += slot
        sec_end = x - 8
        svg.line(sec_start + 4, base + 24, sec_end, base + 24, stroke=AXIS)
        svg.text((sec_start + sec_end) / 2, base + 38, section.title, anchor="middle", size=11,
                 fill=MUTED, weight="600")
        if sec_index < len(sections) - 1:
            x += 18
    legend(svg, left, base + 60, list(series), [colour(i) for i in range(len(series))],
           width - left - 20)
    return svg.render()


# -- telemetry timeline ----------------------------------------------------------------------
@dataclass
class Trace:
    label: str
    colour: str
    t_s: list[float]
    values: list[float | None]
    windows: list[tuple[float, float]]


@dataclass
class Panel:
    title: str
    unit: str
    traces: list[Trace]
    missing: str = ""  # why there is nothing to draw
    fixed: tuple[float, float] | None = None  # y range, e.g. (0, 100) for %


def _downsample(t: list[float], v: list[float | None], limit: int = 700
                ) -> tuple[list[float], list[float | None]]:
    if len(t) <= limit:
        return t, v
    step = math.ceil(len(t) / limit)
    return t[::step], v[::step]


def timeline_chart(panels: Sequence[Panel], title: str) -> str:
    """Stacked panels sharing a time axis; repeat windows shaded in each device's colour.

    Panels with nothing to draw are left out (the caption says why)."""
    left, right, width = 66.0, 16.0, 900.0
    panel_h, gap = 92.0, 34.0
    drawn = [p for p in panels if not p.missing]
    traces = {tr.label: tr.colour for p in drawn for tr in p.traces}
    height = 48 + len(drawn) * (panel_h + gap) + 8
    svg = Svg(width, height, title, "timeline")
    t_max = max((max(tr.t_s) for p in drawn for tr in p.traces if tr.t_s), default=1.0)
    t_max = max(t_max, 1e-3)
    legend(svg, left, 14, list(traces), list(traces.values()), width - left - right)

    def x_of(t: float) -> float:
        return left + (width - left - right) * t / t_max

    y0 = 52.0
    for panel in drawn:
        values = [v for tr in panel.traces for v in tr.values if v is not None]
        if panel.fixed:
            low, high = panel.fixed
        else:
            low, high = min(values), max(values)
            pad = (high - low) * 0.1 or max(abs(high) * 0.1, 1.0)
            low, high = max(0.0, low - pad) if low >= 0 else low - pad, high + pad
        ticks = [t for t in linear_ticks(low, high, 4) if low <= t <= high]

        def y_of(v: float, low: float = low, high: float = high, y0: float = y0) -> float:
            return y0 + panel_h - panel_h * (v - low) / (high - low)

        for tr in panel.traces:
            for a, b in tr.windows:
                svg.add(f"<rect class='window' x='{x_of(a):.1f}' y='{y0:.1f}' "
                        f"width='{max(x_of(b) - x_of(a), 0.8):.1f}' height='{panel_h:.1f}' "
                        f"fill='{tr.colour}' fill-opacity='0.10'><title>{esc(tr.label)}: timed "
                        f"window {a:.2f} to {b:.2f} s</title></rect>")
        for t in ticks:
            svg.line(left, y_of(t), width - right, y_of(t), stroke=GRID)
            svg.text(left - 6, y_of(t) + 4, f"{t:g}", anchor="end", size=10, fill=MUTED)
        svg.line(left, y0 + panel_h, width - right, y0 + panel_h, stroke=AXIS)
        svg.text(left, y0 - 10, f"{panel.title} ({panel.unit})", size=11, weight="600")
        for tr in panel.traces:
            t, v = _downsample(tr.t_s, tr.values)
            runs: list[list[str]] = [[]]
            for ti, vi in zip(t, v, strict=True):
                if vi is None:
                    if runs[-1]:
                        runs.append([])
                    continue
                runs[-1].append(f"{x_of(ti):.1f},{y_of(min(max(vi, low), high)):.1f}")
            for run in runs:
                if len(run) == 1:
                    x, y = run[0].split(",")
                    svg.add(f"<circle cx='{x}' cy='{y}' r='1.6' fill='{tr.colour}'/>")
                elif run:
                    svg.add(f"<polyline class='trace' points='{' '.join(run)}' fill='none' "
                            f"stroke='{tr.colour}' stroke-width='1.6' stroke-linejoin='round'>"
                            f"<title>{esc(tr.label)}: {esc(panel.title)}</title></polyline>")
        y0 += panel_h + gap
    for t in linear_ticks(0, t_max, 8):
        if t <= t_max:
            svg.text(x_of(t), y0 - gap + 14, f"{t:g}", anchor="middle", size=10, fill=MUTED)
    svg.text(width - right, y0 - gap + 14, "s", anchor="end", size=10, fill=MUTED)
    return svg.render()


# -- roofline --------------------------------------------------------------------------------
@dataclass
class RoofPoint:
    series: int
    intensity: float  # FLOP/B
    flop_per_s: float
    tooltip: str
    failed: bool = False


@dataclass
class Roof:
    series: int
    label: str
    peak_flop_per_s: float
    bandwidth_bytes_per_s: float | None  # None: a compute roof only (no bandwidth figure)


def _log_ticks(low: float, high: float) -> list[float]:
    return [10.0 ** e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)]


def _si(value: float) -> str:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{prefix}"
    return f"{value:g}"


def roofline_chart(points: Sequence[RoofPoint], roofs: Sequence[Roof], series: Sequence[str],
                   title: str) -> str:
    """Achieved FLOP/s against arithmetic intensity (log-log) under each device's roof."""
    left, top, plot_w, plot_h = 74.0, 20.0, 600.0, 320.0
    xs = [p.intensity for p in points] + [r.peak_flop_per_s / r.bandwidth_bytes_per_s
                                          for r in roofs if r.bandwidth_bytes_per_s]
    ys = [p.flop_per_s for p in points] + [r.peak_flop_per_s for r in roofs]
    x_lo, x_hi = 10 ** math.floor(math.log10(min(xs) / 1.5)), 10 ** math.ceil(
        math.log10(max(xs) * 1.5))
    y_lo, y_hi = 10 ** math.floor(math.log10(min(ys) / 1.5)), 10 ** math.ceil(
        math.log10(max(ys) * 1.5))
    svg = Svg(left + plot_w + 250, top + plot_h + 56, title, "roofline")

    def x_of(v: float) -> float:
        return left + plot_w * (math.log10(v) - math.log10(x_lo)) / (
            math.log10(x_hi) - math.log10(x_lo))

    def y_of(v: float) -> float:
        return top + plot_h - plot_h * (math.log10(v) - math.log10(y_lo)) / (
            math.log10(y_hi) - math.log10(y_lo))

    for t in _log_ticks(x_lo, x_hi):
        svg.line(x_of(t), top, x_of(t), top + plot_h)
        svg.text(x_of(t), top + plot_h + 16, _si(t), anchor="middle", size=10, fill=MUTED)
    for t in _log_ticks(y_lo, y_hi):
        svg.line(left, y_of(t), left + plot_w, y_of(t))
        svg.text(left - 6, y_of(t) + 4, _si(t), anchor="end", size=10, fill=MUTED)
    svg.add(f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='none' "
            f"stroke='{AXIS}'/>")
    svg.text(left + plot_w / 2, top + plot_h + 36, "arithmetic intensity (FLOP/B)",
             anchor="middle", size=11, fill=MUTED)
    svg.text(16, top + plot_h / 2, "achieved FLOP/s", anchor="middle", size=11, fill=MUTED,
             rotate=-90)
    for roof in roofs:
        col = colour(roof.series)
        if roof.bandwidth_bytes_per_s:
            ridge = roof.peak_flop_per_s / roof.bandwidth_bytes_per_s
            start_y = roof.bandwidth_bytes_per_s * x_lo
            pts = [(x_lo, start_y), (ridge, roof.peak_flop_per_s), (x_hi, roof.peak_flop_per_s)]
            if start_y < y_lo:
                pts[0] = (y_lo / roof.bandwidth_bytes_per_s, y_lo)
        else:
            pts = [(x_lo, roof.peak_flop_per_s), (x_hi, roof.peak_flop_per_s)]
        poly = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in pts)
        svg.add(f"<polyline class='roof' points='{poly}' fill='none' stroke='{col}' "
                f"stroke-width='2' stroke-dasharray='6 3'><title>{esc(roof.label)}</title>"
                "</polyline>")
        svg.text(left + plot_w - 4, y_of(roof.peak_flop_per_s) - 5, roof.label, anchor="end",
                 size=10, fill=col)
    for p in points:
        col = colour(p.series)
        stroke = f"stroke='{FAIL}' stroke-width='2'" if p.failed else "stroke='#ffffff'"
        svg.add(f"<circle class='roof-point' cx='{x_of(p.intensity):.1f}' "
                f"cy='{y_of(p.flop_per_s):.1f}' r='4.5' fill='{col}' fill-opacity='0.85' "
                f"{stroke}><title>{esc(p.tooltip)}</title></circle>")
    y = top + 12
    for k, label in enumerate(series):
        svg.add(f"<circle cx='{left + plot_w + 26}' cy='{y - 4}' r='5' fill='{colour(k)}'/>")
        svg.text(left + plot_w + 38, y, label, size=12)
        y += 20
    return svg.render()
