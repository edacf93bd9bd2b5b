"""The Markdown report: the same sections as the HTML, charts as SVG files beside it."""

from __future__ import annotations

from typing import Any

from testbed.report.charts import MARK_TEXT
from testbed.report.render_html import compare_hint, numeric_columns
from testbed.report.training import LOSS_LEAD
from testbed.report.views import Cell, Figure, Table, Views


def _text(cell: Cell | str) -> str:
    if isinstance(cell, str):
        return cell.replace("|", "\\|").replace("\n", " ")
    marks = f" [{','.join(MARK_TEXT.get(c, c) for c in cell.marks)}]" if cell.marks else ""
    return (cell.text + marks).replace("|", "\\|").replace("\n", " ")


def table_md(table: Table, level: str = "###") -> list[str]:
    lines = [f"{level} {table.title}", ""] if level else []
    if table.caption:
        lines += [table.caption, ""]
    numeric = numeric_columns(table)
    lines += ["| " + " | ".join(table.header) + " |",
              "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(_text(c) for c in row) + " |" for row in table.rows]
    return [*lines, ""]


def figure_md(fig: Figure) -> list[str]:
    return [f"![{fig.title}](charts/{fig.name}.svg)", "", f"*{fig.caption}*", ""]


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
             f"Generated {meta['generated']} from {meta['files']} file(s) in {meta['sources']}: "
             f"{meta['results']} valid result(s), {meta['invalid']} invalid; "
             f"{meta['devices']} device(s), {meta['workloads']} workload(s).", ""]
    lines += table_md(views.devices, "##")
    if views.invalid.rows:
        lines += table_md(views.invalid, "##")
    lines += ["Marks: " + "; ".join(f"[{MARK_TEXT.get(c, c)}] {t}"
                                    for c, t in views.marks.items()) + ".", ""]
    if views.scorecard is not None:
        lines += scorecard_md(views.scorecard)
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
        telemetry += [f"### {fig.title}", "", *figure_md(fig)]
    roofline = ["## Roofline", "", *figure_md(views.roofline)] if views.roofline else []
    if views.single_device:
        lines += function_md(views)
        lines += ["## Figures per workload", ""]
        for table in views.figures[:1]:
            lines += table_md(table, "")
        for fig in (views.peak, views.cold):
            if fig is not None:
                lines += [f"### {fig.title}", "", *figure_md(fig)]
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
            lines += [f"### {fig.title}", "", *figure_md(fig)]
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
        lines += [f"- {t.title} (table in the HTML report)" for t in views.points]
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
            lines += [f"### {fig.title}", "", *figure_md(fig)]
    return lines
