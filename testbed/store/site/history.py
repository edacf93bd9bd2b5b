"""A device's figures across its software versions, as an SVG chart (the report's Svg kit).

One column per configuration (driver, torch, image), in the order they were first measured;
a dot per result, a bar at the mean of the results that passed the checks, a line through
the means. Values that failed a plausibility check are red crosses and stay out of the mean;
non-comparable ones (precision fallback, overrides, host-bound, CPU fallback) are hollow.
The y axis starts at zero, so a change of a few percent looks like one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from testbed.report.charts import AXIS, FAIL, GRID, MUTED, Svg, colour, esc, linear_ticks
from testbed.report.fmt import format_value


@dataclass
class Point:
    value: float
    tooltip: str
    failed: bool = False
    hollow: bool = False


@dataclass
class Column:
    label: str  # what this configuration is (the versions that differ)
    points: list[Point]

    @property
    def mean(self) -> float | None:
        good = [p.value for p in self.points if not p.failed]
        return sum(good) / len(good) if good else None


def tick_text(value: float) -> str:
    """An axis number with an SI prefix (the unit is in the chart's title)."""
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{prefix}"
    return f"{value:g}"


def history_chart(columns: Sequence[Column], title: str, unit: str) -> str:
    width = max(460.0, 110.0 + 150.0 * len(columns))
    left, right, top, plot_h = 56.0, 20.0, 34.0, 190.0
    label_lines = max((len(_wrap(c.label)) for c in columns), default=1)
    height = top + plot_h + 20 + 14 * label_lines + 10
    svg = Svg(width, height, title, "history")
    values = [p.value for c in columns for p in c.points]
    high = max([*values, 0.0]) * 1.08 or 1.0
    ticks = [v for v in linear_ticks(0.0, high, 5) if v <= high * 1.0001]
    high = max(high, ticks[-1]) if ticks else high

    def y_of(v: float) -> float:
        return top + plot_h - plot_h * max(v, 0.0) / high

    step = (width - left - right) / max(len(columns), 1)
    for v in ticks:
        svg.line(left, y_of(v), width - right, y_of(v), stroke=GRID)
        svg.text(left - 6, y_of(v) + 4, tick_text(v), anchor="end", size=10, fill=MUTED)
    svg.line(left, top + plot_h, width - right, top + plot_h, stroke=AXIS)
    svg.text(left, top - 14, title, size=12, weight="600")
    means: list[tuple[float, float]] = []
    for i, col in enumerate(columns):
        cx = left + step * (i + 0.5)
        c = colour(i)
        n = len(col.points)
        spread = min(step * 0.5, 6.0 * max(n - 1, 0))
        for k, p in enumerate(col.points):
            x = cx - spread / 2 + (spread * k / (n - 1) if n > 1 else 0)
            y = y_of(p.value)
            tip = f"<title>{esc(p.tooltip)}</title>"
            if p.failed:
                svg.add(f"<g class='point failed'>{tip}<path d='M{x - 4:.1f},{y - 4:.1f}"
                        f"L{x + 4:.1f},{y + 4:.1f}M{x - 4:.1f},{y + 4:.1f}L{x + 4:.1f},"
                        f"{y - 4:.1f}' stroke='{FAIL}' stroke-width='2'/></g>")
            else:
                fill = "#ffffff" if p.hollow else c
                svg.add(f"<circle class='point' cx='{x:.1f}' cy='{y:.1f}' r='4' "
                        f"fill='{fill}' fill-opacity='0.85' stroke='{c}' stroke-width='1.5'>"
                        f"{tip}</circle>")
        mean = col.mean
        if mean is not None:
            y = y_of(mean)
            svg.add(f"<line class='mean' x1='{cx - step * 0.3:.1f}' y1='{y:.1f}' "
                    f"x2='{cx + step * 0.3:.1f}' y2='{y:.1f}' stroke='{c}' stroke-width='3'>"
                    f"<title>{esc(col.label)}: mean {esc(format_value(mean, unit))} over "
                    f"{sum(1 for p in col.points if not p.failed)} result(s)</title></line>")
            means.append((cx, y))
        for j, line in enumerate(_wrap(col.label)):
            svg.text(cx, top + plot_h + 16 + 14 * j, line, anchor="middle", size=10.5,
                     fill=MUTED if j else "#2b2f36")
    if len(means) > 1:
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in means)
        svg.add(f"<polyline class='trend' points='{pts}' fill='none' stroke='{AXIS}' "
                "stroke-width='1.2' stroke-dasharray='4 3'/>")
    return svg.render()


def _wrap(label: str, width: int = 24) -> list[str]:
    """A configuration label over lines at its ' · ' separators (and long words cut)."""
    lines: list[str] = []
    for part in label.split(" · "):
        while len(part) > width:
            lines.append(part[:width])
            part = part[width:]
        lines.append(part)
    return lines or [""]
