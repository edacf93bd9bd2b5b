"""The Markdown report: the same sections as the HTML, charts as SVG files beside it.

Text from result documents (labels, ids, messages) is someone else's: it is escaped, so a
``<script>`` or a ``[link](javascript:...)`` in a field is shown as text, never rendered.
"""

from __future__ import annotations

import html
import re
from typing import Any

from bench.errors import printable
from testbed.report.charts import MARK_TEXT
from testbed.report.render_html import compare_hint, numeric_columns
from testbed.report.training import LOSS_LEAD
from testbed.report.views import Cell, Figure, Table, Views

# Characters that make links, images, code spans, table cells and escapes (HTML is made
# harmless by entities). Emphasis (* _) is left alone: it changes looks, never content.
_MD_SPECIAL = re.compile(r"([\\`\[\]|])")


def md_escape(text: str, code_spans: bool = False) -> str:
    """``text`` as literal Markdown on one line: Markdown syntax backslash-escaped and ``<``,
    ``>``, ``&`` as entities, so no HTML, link or image in it is rendered.

    With ``code_spans`` (our own captions), text between pairs of backticks stays a code span:
    nothing inside one is rendered. An odd number of backticks escapes them all."""
    text = printable(str(text).replace("\r", " ").replace("\n", " "))
    parts = text.split("`")
    if not code_spans or len(parts) % 2 == 0:
        parts = [text]
    return "`".join(p if i % 2 else _MD_SPECIAL.sub(r"\\\1", html.escape(p, quote=False))
                    for i, p in enumerate(parts))


def _text(cell: Cell | str) -> str:
    if isinstance(cell, str):
        return md_escape(cell)
    marks = f" [{','.join(MARK_TEXT.get(c, c) for c in cell.marks)}]" if cell.marks else ""
    return md_escape(cell.text) + marks  # marks are our own letters


def table_md(table: Table, level: str = "###") -> list[str]:
    lines = [f"{level} {md_escape(table.title)}", ""] if level else []
    if table.caption:
        lines += [md_escape(table.caption, code_spans=True), ""]
    numeric = numeric_columns(table)
    lines += ["| " + " | ".join(md_escape(h) for h in table.header) + " |",
              "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(_text(c) for c in row) + " |" for row in table.rows]
    return [*lines, ""]


def figure_md(fig: Figure) -> list[str]:
    return [f"![{md_escape(fig.title)}](charts/{fig.name}.svg)", "",
            f"*{md_escape(fig.caption, code_spans=True)}*", ""]


def scorecard_md(sec: Any) -> list[str]:
    """The scorecard section (testbed.scorecard.render): headlines, tables, figures."""
    lines = [f"## {sec.title}", ""]
    for b in sec.blocks:
        if b.headline:
            lines += [f"**{b.headline}**", ""]
        if b.text:
            lines += [b.text, ""]
        if b.table is not None:
            lines += table_md(b.table)
        if b.figure is not None:
            lines += [f"### {b.figure.title}", "", *figure_md(b.figure)]
    return lines


def render(views: Views, meta: dict[str, str | int]) -> str:
    lines = [f"# {meta['title']}", "",
             f"Generated {meta['generated']} from {meta['files']} file(s) in "
             f"{md_escape(str(meta['sources']))}: "
             f"{meta['results']} valid result(s), {meta['invalid']} invalid; "
             f"{meta['devices']} device configuration(s), {meta['workloads']} workload(s).",
             ""]
    lines += table_md(views.devices, "##")
    if views.invalid.rows:
        lines += table_md(views.invalid, "##")
    if views.incomplete is not None:
        lines += ["## Incomplete runs", "",
                  "These runs did not finish: their results are shown, but entries may be "
                  "missing.", ""]
        lines += table_md(views.incomplete, "")
    if views.disturbed is not None:
        if views.disturbed.rows:
            lines += [f"**{len(views.disturbed.rows)} result(s) were disturbed while they "
                      "measured ([D]): their figures are not representative of the device.**",
                      ""]
            lines += table_md(views.disturbed, "##")
        else:  # none disturbed, some unknown
            lines += [md_escape(views.disturbed.caption), ""]
    lines += ["Marks: " + "; ".join(f"[{MARK_TEXT.get(c, c)}] {t}"
                                    for c, t in views.marks.items()) + ".", ""]
    if views.scorecard is not None:
        lines += scorecard_md(views.scorecard)
    for sec in views.sections:
        lines += scorecard_md(sec)
    checks = ["## Plausibility checks", "", *table_md(views.checks, "")]
    if views.findings.rows:
        checks += table_md(views.findings)
    else:
        checks += ["Every check passed on every result.", ""]
    if views.claims is not None:
        checks += table_md(views.claims, "##")
    telemetry = ["## Telemetry timelines", ""]
    if views.scopes is not None:
        telemetry += table_md(views.scopes)
    for fig in views.timelines:
        telemetry += [f"### {md_escape(fig.title)}", "", *figure_md(fig)]
    roofline = ["## Roofline", "", *figure_md(views.roofline)] if views.roofline else []
    if views.single_device:
        lines += function_md(views)
        lines += ["## Figures per workload", ""]
        for table in views.figures[:1]:
            lines += table_md(table, "")
        for fig in (views.peak, views.cold):
            if fig is not None:
                lines += [f"### {md_escape(fig.title)}", "", *figure_md(fig)]
        lines += [compare_hint(meta), ""]
        lines += [*roofline, *telemetry, *checks]
    else:
        lines += [*checks, *function_md(views), *_scores_and_charts(views), *telemetry,
                  *roofline]
    if views.training is not None or views.loss_curves:
        lines += ["## Training", ""]
        if views.training is not None:
            lines += table_md(views.training)
        if views.loss_curves:
            lines += [LOSS_LEAD, ""]
        for fig in views.loss_curves:
            lines += [f"### {md_escape(fig.title)}", "", *figure_md(fig)]
    if views.inference is not None:
        lines += ["## Inference: scenarios, streams, speed-up", ""]
        inf = views.inference
        for table, figure in ((inf.scenarios, inf.latency_qps),
                              (inf.streams, inf.streams_chart), (inf.speedup, None)):
            if table is not None:
                lines += table_md(table)
            if figure is not None:
                lines += figure_md(figure)
    lines += ["## Appendix: tables per metric", ""]
    for table in views.appendix:
        lines += table_md(table)
    if views.unmeasured is not None:
        lines += table_md(views.unmeasured)
    if views.points:
        lines += ["### Grid points", ""]
        lines += [f"- {md_escape(t.title)} (table in the HTML report)" for t in views.points]
        lines.append("")
    if not views.single_device:
        for table in views.figures:
            lines += table_md(table)
    return "\n".join(lines)


def function_md(views: Views) -> list[str]:
    """The function section (testbed.report.function_views.FunctionViews; none: nothing)."""
    fv = views.function
    if fv is None or fv.empty:
        return []
    lines = ["## Function before performance", ""]
    for table in (fv.support, fv.models, fv.block, fv.longtail):
        if table is not None:
            lines += table_md(table)
    for fig in (fv.support_chart, fv.problems, fv.longtail_chart):
        if fig is not None:
            lines += [f"### {fig.title}", "", *figure_md(fig)]
    if fv.matrix is not None:
        lines += [f"The full operator matrix ({fv.operators} operators) is "
                  f"charts/{fv.matrix.name}.svg.", ""]
    return lines


def _scores_and_charts(views: Views) -> list[str]:
    lines = ["## Scores", ""]
    if views.radar:
        lines += figure_md(views.radar)
    lines += table_md(views.composite)
    lines += table_md(views.composite_basis)
    if views.composite_dropped is not None:
        lines += table_md(views.composite_dropped)
    for table in (views.baseline, views.tiers, views.baseline_detail):
        if table is not None:
            lines += table_md(table)
    lines += ["## Metrics, normalised to their maximum", ""]
    for fig in (views.peak, views.cold, *views.bars):
        if fig is not None:
            lines += [f"### {md_escape(fig.title)}", "", *figure_md(fig)]
    return lines
