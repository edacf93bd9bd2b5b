"""The HTML report: one self-contained file (inline CSS and SVG, no script, no external URL)."""

from __future__ import annotations

import html
from typing import Any

from testbed.report.charts import MARK_TEXT
from testbed.report.training import LOSS_LEAD
from testbed.report.views import Cell, Figure, Table, Views

CSS = """
:root{--ink:#1f2430;--muted:#5f6673;--line:#e2e5ea;--bg:#f6f7f9;--card:#fff;--accent:#4e79a7;
--bad:#c62828;--warn:#a15c00;--good:#2e7d32}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,
sans-serif;color:var(--ink);background:var(--bg)}
header.top{background:#1f2a3a;color:#fff;padding:22px 32px 18px}
header.top h1{margin:0 0 4px;font-size:24px;font-weight:650;letter-spacing:.2px}
header.top p{margin:0;color:#c9d1dc}
.chips{display:flex;flex-wrap:wrap;gap:8px;margin-top:12px}
.chip{background:#2d3b50;border-radius:999px;padding:3px 12px;font-size:13px;color:#e8edf3}
.chip b{color:#fff}.chip.bad{background:#8e1d1d}.chip.good{background:#25613a}
nav.toc{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid var(--line);
padding:8px 32px;display:flex;flex-wrap:wrap;gap:4px 16px;font-size:13px}
nav.toc a{color:var(--accent);text-decoration:none}nav.toc a:hover{text-decoration:underline}
main{max-width:1240px;margin:0 auto;padding:20px 24px 60px}
section.card{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:18px 22px;margin:0 0 20px;box-shadow:0 1px 2px rgba(16,24,40,.04)}
section.card>h2{margin:0 0 10px;font-size:19px}
h3{font-size:15px;margin:18px 0 6px}
p.lead{color:var(--muted);margin:0 0 12px}
p.headline{font-size:1.35em;margin:14px 0 10px}
.scroll{overflow-x:auto}.scroll figure.chart-figure svg{max-width:none}
table.data{border-collapse:collapse;margin:6px 0 14px;font-size:13px;min-width:40%}
table.data th,table.data td{border-bottom:1px solid var(--line);padding:5px 10px;
text-align:right;vertical-align:top;white-space:nowrap}
table.data th{background:#f1f3f6;font-weight:600;text-align:right;position:sticky;top:0}
table.data[id^=figures]{font-size:12.5px}
table.data[id^=figures] th{white-space:normal;vertical-align:bottom}
table.data[id^=figures] th,table.data[id^=figures] td{padding:5px 6px}
table.data th:first-child,table.data td:first-child{text-align:left;white-space:nowrap}
table.data td.text,table.data th.text{text-align:left;white-space:normal;max-width:560px;
min-width:120px}
table.data tr>td:first-child{white-space:nowrap}
table.data tbody tr:hover{background:#fafbfc}
.tables{display:flex;flex-wrap:wrap;gap:0 34px;align-items:flex-start}
.tables>div{max-width:100%;min-width:0}
#devices td:first-child,#checks td:first-child{white-space:normal;min-width:160px;
max-width:340px}
#claims td.text{white-space:normal;max-width:260px}
#checks td:last-child,#findings td:nth-child(5){min-width:420px}
td.na,td.missing{color:#9aa1ab}td.status{color:var(--warn);font-weight:600}
td.status.ok{color:var(--good)}td.status.bad{color:var(--bad)}td.status.muted{color:#8a9099;font-weight:500}td.score{font-variant-numeric:tabular-nums;font-weight:600}
td.v{font-variant-numeric:tabular-nums}td.flagged{background:#fff5f5}
td[title]{cursor:help}
sup.mark{display:inline-block;font-size:10px;font-weight:700;line-height:1;padding:2px 4px;
border-radius:4px;margin-left:3px;vertical-align:2px;background:#fdf0d5;color:#7a4a00}
sup.mark-X,sup.mark-F{background:#fde2e1;color:var(--bad)}sup.mark-W{background:#fff1c2;color:#8a4b00}
figure.chart-figure{margin:8px 0 22px}
figure.chart-figure svg{max-width:100%;height:auto;display:block}
figcaption{color:var(--muted);font-size:12.5px;margin-top:4px;max-width:900px}
dl.marks{display:grid;grid-template-columns:auto 1fr;gap:4px 10px;margin:4px 0}
dl.marks dt{text-align:right}dl.marks dd{margin:0}
.callout{border-left:4px solid var(--bad);background:#fff7f7;padding:8px 12px;margin:8px 0}
.callout.ok{border-color:var(--good);background:#f4fbf5}
code{font-size:12.5px;background:#f1f3f6;padding:1px 4px;border-radius:4px}
details>summary{cursor:pointer;color:var(--accent);margin:6px 0}
.chart-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:0 28px}
@media print{nav.toc{display:none}section.card{break-inside:avoid}}
"""


def e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _marks(marks: str) -> str:
    return "".join(f"<sup class='mark mark-{c}'>{MARK_TEXT.get(c, c)}</sup>" for c in marks)


NUMERIC_KINDS = ("value", "score", "na", "missing")


def numeric_columns(table: Table) -> list[bool]:
    """A column is right-aligned when it holds measured values, scores or plain numbers."""
    out = []
    for i in range(len(table.header)):
        cells = [row[i] for row in table.rows if i < len(row)]
        out.append(i > 0 and bool(cells) and all(
            (isinstance(c, Cell) and c.kind in NUMERIC_KINDS) or
            (isinstance(c, str) and c.replace(".", "", 1).isdigit()) for c in cells))
    return out


def status_class(text: str) -> str:
    """Colour of a status cell: good, bad or muted by its word."""
    word = text.split(" ", 1)[0]
    if text in ("not applicable", "falls short"):
        return "muted" if text == "not applicable" else "bad"
    return {"ok": "ok", "passed": "ok", "pass": "ok", "holds": "ok", "not": "muted",
            "failed": "bad", "FAIL": "bad", "error": "bad", "running": "bad",
            "interrupted": "bad"}.get(word, "")


def cell_html(cell: Cell | str, numeric: bool = False) -> str:
    align = "" if numeric else "text"
    if isinstance(cell, str):
        return f"<td class='{align}'>{e(cell)}</td>" if align else f"<td>{e(cell)}</td>"
    classes = [cell.kind if cell.kind != "value" else "v"]
    if cell.kind == "status":
        classes.append(status_class(cell.text))
    if "X" in cell.marks:
        classes.append("flagged")
    if align:
        classes.append(align)
    title = f" title='{e(cell.tooltip)}'" if cell.notes else ""
    return f"<td class='{' '.join(classes)}'{title}>{e(cell.text)}{_marks(cell.marks)}</td>"


def table_html(table: Table, heading: str = "h3", table_id: str | None = None) -> str:
    numeric = numeric_columns(table)
    head = "".join(f"<th class='{'' if numeric[i] else 'text'}'>{e(h)}</th>"
                   for i, h in enumerate(table.header))
    body = "".join("<tr>" + "".join(cell_html(c, numeric[i]) for i, c in enumerate(row))
                   + "</tr>" for row in table.rows)
    caption = f"<p class='lead'>{_inline(table.caption)}</p>" if table.caption else ""
    tid = f" id='{e(table_id or table.anchor)}'" if (table_id or table.anchor) else ""
    title = f"<{heading}>{e(table.title)}</{heading}>" if heading else ""
    return (f"{title}{caption}<div class='scroll'><table class='data'{tid}"
            f" data-rows='{len(table.rows)}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def _inline(text: str) -> str:
    """Escape, then turn `code` spans into <code>."""
    parts = e(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def figure_html(fig: Figure) -> str:
    return (f"<figure class='chart-figure' id='{e(fig.anchor)}'>{fig.svg}"
            f"<figcaption>{_inline(fig.caption)}</figcaption></figure>")


def training_html(views: Views) -> list[str]:
    """The training section: TGS/MFU/checkpoint table and the loss curves (none: nothing)."""
    if views.training is None and not views.loss_curves:
        return []
    out = ["<section class='card' id='training'><h2>Training</h2>"]
    if views.training is not None:
        out.append(table_html(views.training))
    if views.loss_curves:
        out.append(f"<p class='lead'>{e(LOSS_LEAD)}</p>")
    out.append("<div class='chart-grid'>")
    out += [f"<div><h3>{e(f.title)}</h3>{figure_html(f)}</div>" for f in views.loss_curves]
    out.append("</div></section>")
    return out


def compare_hint(meta: dict[str, str | int]) -> str:
    """How to compare a one-device report with other devices (text with `code` spans)."""
    bundled = str(meta.get("references") or "")
    return ("Scores compare devices (each metric is mapped min-max over them), so a report of "
            "one device has none. Compare with another run, `invoke report -r results/<run> "
            "-r results/<other-run>`, or with a reference result set: `invoke report -r "
            "results/<run> --reference NAME_OR_PATH`"
            + (f" (bundled: {bundled})." if bundled else "."))


def _figures_card(views: Views, meta: dict[str, str | int]) -> list[str]:
    """The one-device lead: each workload's figures, % of peak, cold start."""
    out = ["<section class='card' id='figures'><h2>Figures per workload</h2>"]
    out += [table_html(t, heading="") for t in views.figures[:1]]
    for fig in (views.peak, views.cold):
        if fig is not None:
            out.append(f"<h3>{e(fig.title)}</h3>{figure_html(fig)}")
    out.append(f"<p class='lead'>{_inline(compare_hint(meta))}</p></section>")
    return out


def render(views: Views, meta: dict[str, str | int]) -> str:
    single = views.single_device
    claims_nav = [("claims-section", "Claims")] if views.claims is not None else []
    function = [function_html(views.function)] \
        if views.function is not None and not views.function.empty else []
    function_nav = [("function", "Function")] if function else []
    if single:
        nav = [("summary", "Summary"), *function_nav, ("figures", "Figures")]
        if views.roofline:
            nav.append(("roofline-section", "Roofline"))
        nav += [("telemetry", "Telemetry"), ("checks", "Plausibility"), *claims_nav]
    else:
        nav = [("summary", "Summary"), ("checks", "Plausibility"), *claims_nav, *function_nav,
               ("scores", "Scores"), ("charts", "Charts"), ("telemetry", "Telemetry")]
        if views.roofline:
            nav.append(("roofline-section", "Roofline"))
    if views.training is not None or views.loss_curves:
        nav.append(("training", "Training"))
    if views.inference is not None:
        nav.append(("inference", "Inference"))
    if views.scorecard is not None:
        nav.insert(1, (views.scorecard.anchor, "Scorecard"))
    for sec in views.sections:
        nav.insert(1, (sec.anchor, sec.title.split(":")[0]))
    nav.append(("appendix", "Appendix"))
    failed = len(views.findings.rows)
    chips = [("device configurations", meta["devices"], ""), ("workloads", meta["workloads"], ""),
             ("valid results", meta["results"], ""),
             ("invalid files", meta["invalid"], "bad" if meta["invalid"] else "good"),
             ("failed checks", failed, "bad" if failed else "good")]
    if views.incomplete is not None:
        chips.append(("incomplete runs", len(views.incomplete.rows), "bad"))
    if views.disturbed is not None and views.disturbed.rows:
        chips.append(("disturbed results", len(views.disturbed.rows), "bad"))
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{e(meta['title'])}</title><style>{CSS}</style></head><body>",
        f"<header class='top'><h1>{e(meta['title'])}</h1><p>Generated {e(meta['generated'])} "
        f"from {e(meta['files'])} file(s) in {e(meta['sources'])}.</p><div class='chips'>",
        *(f"<span class='chip {cls}'><b>{e(n)}</b> {e(label)}</span>" for label, n, cls in chips),
        "</div></header><nav class='toc'>",
        *(f"<a href='#{a}'>{e(t)}</a>" for a, t in nav),
        "</nav><main>",
        "<section class='card' id='summary'><h2>Summary</h2>",
        table_html(views.devices, heading=""),
    ]
    if views.invalid.rows:
        out.append("<div class='callout'><b>Invalid files were left out.</b> Each failed the "
                   "result schema or its sha256 seal; the reason is given.</div>")
        out.append(table_html(views.invalid))
    if views.incomplete is not None:
        out.append("<div class='callout'><b>Some runs did not finish.</b> Their results are "
                   "shown (each is a complete, sealed document), but the run is not: entries "
                   "may be missing, and a killed run may have stopped mid-measurement.</div>")
        out.append(table_html(views.incomplete))
    if views.disturbed is not None:
        rows = len(views.disturbed.rows)
        if rows:
            out.append(f"<div class='callout' id='disturbed-callout'><b>{rows} result(s) were "
                       "disturbed while they measured (D).</b> Their figures are not "
                       "representative of the device; the reasons are below.</div>")
            out.append(table_html(views.disturbed))
        else:  # none disturbed, some unknown
            out.append(f"<p class='lead' id='disturbed'>{e(views.disturbed.caption)}</p>")
    out.append("<h3>Marks</h3><dl class='marks'>" + "".join(
        f"<dt>{_marks(c)}</dt><dd>{e(text)}</dd>" for c, text in views.marks.items())
        + "</dl><p class='lead'>Hover a marked value for the reason.</p></section>")
    if views.scorecard is not None:
        out.append(scorecard_html(views.scorecard))
    out += [scorecard_html(sec) for sec in views.sections]

    checks = ["<section class='card' id='checks'><h2>Plausibility checks</h2><p class='lead'>"
              "Run on every result before any score. A failed check marks the values it "
              "concerns (✗) and those values are left out of the scores.</p>",
              table_html(views.checks, heading="")]
    if views.findings.rows:
        checks.append(table_html(views.findings))
    else:
        checks.append("<div class='callout ok'>Every check passed on every result.</div>")
    checks.append("</section>")
    if views.claims is not None:
        checks.append("<section class='card' id='claims-section'>"
                      f"<h2>{e(views.claims.title)}</h2>"
                      f"{table_html(views.claims, heading='')}</section>")
    telemetry = ["<section class='card' id='telemetry'><h2>Telemetry timelines</h2>"]
    if views.scopes is not None:
        telemetry.append(table_html(views.scopes))
    telemetry += [f"<h3>{e(f.title)}</h3>{figure_html(f)}" for f in views.timelines] or [
        "<p class='lead'>No telemetry series in these results.</p>"]
    telemetry.append("</section>")
    roofline = ["<section class='card' id='roofline-section'><h2>Roofline</h2>",
                figure_html(views.roofline), "</section>"] if views.roofline else []
    if single:
        out += [*function, *_figures_card(views, meta), *roofline, *telemetry, *checks]
    else:
        out += [*checks, *function, *_scores_and_charts(views), *telemetry, *roofline]
    out += training_html(views)
    if views.inference is not None:
        out.append(inference_html(views.inference))
    out += _appendix(views)
    return "\n".join(out)


def _scores_and_charts(views: Views) -> list[str]:
    out = ["<section class='card' id='scores'><h2>Scores</h2>"]
    if views.radar:
        out.append(figure_html(views.radar))
    out.append(table_html(views.composite))
    out.append(table_html(views.composite_basis))
    if views.composite_dropped is not None:
        out.append(table_html(views.composite_dropped))
    for table in (views.baseline, views.tiers):
        if table is not None:
            out.append(table_html(table))
    if views.baseline_detail is not None:
        out.append(f"<details><summary>{e(views.baseline_detail.title)}</summary>"
                   f"{table_html(views.baseline_detail, heading='')}</details>")
    if views.baseline is None:
        out.append("<p class='lead'>No baseline named: give <code>--baseline RESULTS</code> "
                   "for scores relative to a reference device (an A100 in the large-model "
                   "template).</p>")
    out.append("</section>")

    out.append("<section class='card' id='charts'><h2>Metrics, normalised to their maximum"
               "</h2>")
    out += [f"<h3>{e(f.title)}</h3>{figure_html(f)}" for f in (views.peak, views.cold) if f]
    out += [f"<h3>{e(f.title)}</h3>{figure_html(f)}" for f in views.bars]
    out.append("</section>")
    return out


def _appendix(views: Views) -> list[str]:
    out = []
    out.append("<section class='card' id='appendix'><h2>Appendix: tables per metric</h2>"
               "<p class='lead'>Workload × device; the mean over results where a device ran a "
               "workload more than once (hover for n and spread).</p>")
    out.append("<div class='tables'>")
    out += [f"<div>{table_html(t)}</div>" for t in views.appendix]
    out.append("</div>")
    if views.unmeasured is not None:
        out.append(table_html(views.unmeasured))
    if views.points:
        out.append("<h3>Grid points</h3>")
        for t in views.points:
            out.append(f"<details><summary>{e(t.title)}</summary>"
                       f"{table_html(t, heading='')}</details>")
    if not views.single_device and views.figures:
        out.append("<h3>Figures per workload, per device</h3>")
        for t in views.figures:
            out.append(f"<details><summary>{e(t.title)}</summary>"
                       f"{table_html(t, heading='')}</details>")
    out.append("</section></main></body></html>")
    return out


def function_html(fv: Any) -> str:
    """The function section (testbed.report.function_views.FunctionViews)."""
    out = ["<section class='card' id='function'><h2>Function before performance</h2>"
           "<p class='lead'>Does the device compute the right numbers, and which operators "
           "does it lack: every catalogued operator per dtype against the CPU reference, every "
           "model's outputs against the CPU reference (a model that fails gets no performance "
           "score, mark F), the transformer block and the long tail against the memory-bound "
           "limit.</p>"]
    if fv.support is not None:
        out.append("<div class='tables'><div>" + table_html(fv.support) + "</div>")
        if fv.support_chart is not None:
            out.append("<div>" + figure_html(fv.support_chart) + "</div>")
        out.append("</div>")
    if fv.problems is not None:
        out.append(f"<h3>{e(fv.problems.title)} ({fv.problem_count} of {fv.operators})</h3>"
                   f"<div class='scroll'>{figure_html(fv.problems)}</div>")
    elif fv.matrix is not None:
        out.append(f"<div class='callout ok'>Every one of the {fv.operators} operators was "
                   "right in every dtype on every device.</div>")
    if fv.matrix is not None:
        out.append(f"<details><summary>{e(fv.matrix.title)}: all {fv.operators} operators"
                   f"</summary><div class='scroll'>{figure_html(fv.matrix)}</div></details>")
    if fv.models is not None:
        out.append(table_html(fv.models))
    if fv.block is not None:
        out.append(table_html(fv.block))
    if fv.longtail is not None:
        out.append(table_html(fv.longtail))
        if fv.longtail_chart is not None:
            out.append(f"<div class='scroll'>{figure_html(fv.longtail_chart)}</div>")
    out += [f"<p class='lead'>{e(n)}</p>" for n in fv.notes]
    out.append("</section>")
    return "\n".join(out)


def scorecard_html(sec: Any) -> str:
    """The scorecard section (testbed.scorecard.render): headlines, tables, figures."""
    out = [f"<section class='card' id='{e(sec.anchor)}'><h2>{e(sec.title)}</h2>"]
    for b in sec.blocks:
        if b.headline:
            out.append(f"<p class='headline'><b>{e(b.headline)}</b></p>")
        if b.text:
            out.append(f"<p class='lead'>{e(b.text)}</p>")
        if b.table is not None:
            out.append(table_html(b.table))
        if b.figure is not None:
            out.append(f"<h3>{e(b.figure.title)}</h3>{figure_html(b.figure)}")
    out.append("</section>")
    return "".join(out)


def inference_html(inf: Any) -> str:
    """Scenarios, streams and the speed-up over the cpu (testbed.report.scenarios)."""
    out = ["<section class='card' id='inference'><h2>Inference: scenarios, streams, "
           "speed-up</h2>"]
    for table, figure in ((inf.scenarios, inf.latency_qps), (inf.streams, inf.streams_chart),
                          (inf.speedup, None)):
        if table is not None:
            out.append(table_html(table))
        if figure is not None:
            out.append(f"<h3>{e(figure.title)}</h3>{figure_html(figure)}")
    out.append("</section>")
    return "".join(out)
