"""Charts of the function section: the operator coverage matrix (hand-written SVG, like
``charts``: no script, a ``<title>`` on every mark)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from testbed.report.charts import MUTED, TEXT, Svg, esc

CLASS_COLOURS = {
    "pass": "#59a14f",
    "wrong": "#e15759",
    "unsupported": "#f28e2b",
    "cpu_fallback": "#edc948",
    "crash": "#6a3d9a",
    "skipped": "#bab0ac",
}
NOT_APPLICABLE = "#eef0f3"
CLASS_TITLES = {
    "pass": "pass", "wrong": "wrong result", "unsupported": "unsupported (raised)",
    "cpu_fallback": "CPU fallback", "crash": "crash", "skipped": "not judged",
}


@dataclass
class MatrixCell:
    cls: str | None  # None: the dtype does not apply to the operator
    tooltip: str


def matrix_chart(rows: Sequence[str], groups: Sequence[tuple[str, Sequence[str]]],
                 cells: dict[tuple[int, int], MatrixCell], title: str) -> str:
    """Operators (rows) x dtypes per device (column groups), each cell coloured by class."""
    cell_w, cell_h, gap = 30.0, 13.0, 12.0
    label_w = max((len(r) for r in rows), default=10) * 6.2 + 12
    top = 58.0
    columns = [(g, d) for g, dtypes in groups for d in dtypes]
    width = label_w + sum(len(d) * cell_w for _g, d in groups) + gap * (len(groups) - 1) + 20
    legend_w = sum(22 + 6.6 * len(t) + 14 for t in CLASS_TITLES.values()) + 120
    width = max(width, min(legend_w, 1100.0))
    height = top + len(rows) * cell_h + 44
    svg = Svg(width, height, title, "matrix")
    x = label_w
    col_x: list[float] = []
    for g, dtypes in groups:
        start = x
        for d in dtypes:
            col_x.append(x)
            svg.text(x + cell_w / 2, top - 6, d, anchor="middle", size=10, fill=MUTED)
            x += cell_w
        svg.text((start + x) / 2, top - 22, g, anchor="middle", size=11, weight="600")
        svg.line(start + 1, top - 17, x - 1, top - 17, stroke=MUTED)
        x += gap
    for i, row in enumerate(rows):
        y = top + i * cell_h
        svg.text(label_w - 6, y + cell_h - 3, row, anchor="end", size=10, fill=TEXT)
        for j, _col in enumerate(columns):
            cell = cells.get((i, j))
            fill = CLASS_COLOURS.get(cell.cls, NOT_APPLICABLE) if cell and cell.cls \
                else NOT_APPLICABLE
            tip = cell.tooltip if cell else f"{row}: not tested"
            svg.add(f"<rect class='op-cell op-{esc(cell.cls if cell and cell.cls else 'na')}' "
                    f"x='{col_x[j] + 1:.1f}' y='{y + 1:.1f}' width='{cell_w - 2:.1f}' "
                    f"height='{cell_h - 2:.1f}' rx='2' fill='{fill}'><title>{esc(tip)}</title>"
                    "</rect>")
    lx, ly = 10.0, height - 16
    for cls, text in [*CLASS_TITLES.items(), ("na", "does not apply")]:
        colour = CLASS_COLOURS.get(cls, NOT_APPLICABLE)
        svg.add(f"<rect x='{lx:.1f}' y='{ly - 9:.1f}' width='12' height='12' rx='2' "
                f"fill='{colour}' stroke='#d0d4da'/>")
        svg.text(lx + 17, ly + 1, text, size=11)
        lx += 22 + 6.4 * len(text) + 14
    return svg.render()
