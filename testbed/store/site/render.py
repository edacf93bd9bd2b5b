"""The leaderboard's HTML pages: plain files with relative links, inline CSS and SVG, no
script and no external URL, so the site opens from disk on an offline machine (the report's
stylesheet and cell rendering, so marks look the same as in a report)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from bench.documents import VerdictDoc
from testbed.report.analysis import MARKS, NON_COMPARABLE
from testbed.report.charts import MARK_TEXT
from testbed.report.fmt import format_ratio, format_score, format_value
from testbed.report.metrics import GROUP_TITLES, MODE_TITLES
from testbed.report.render_html import CSS, e
from testbed.store.site.data import HEADLINE, Board, SiteData, StoredResult, doc_path
from testbed.store.site.history import Column, Point, history_chart

EXTRA_CSS = """
header.top a{color:#c9d1dc}
a{color:var(--accent)}
td.rank{font-weight:700;text-align:right;width:2em}
span.badge{display:inline-block;border-radius:999px;padding:1px 9px;font-size:12px;
font-weight:600;white-space:nowrap}
span.badge.pass{background:#e3f4e6;color:var(--good)}span.badge.fail{background:#fde2e1;
color:var(--bad)}span.badge.partly,span.badge.other{background:#fdf0d5;color:#7a4a00}
span.badge.none{background:#f1f3f6;color:#8a9099}
ul.results{margin:4px 0 0;padding-left:18px;text-align:left;white-space:normal;font-size:12.5px}
td.unranked{color:#8a9099}
table.data td.device{text-align:left;white-space:normal;min-width:230px;max-width:380px}
"""

AUDIT_TEXT = {"pass": "✓ audited", "fail": "✗ audit failed",
              "inconclusive": "? audit inconclusive", "partly": "partly audited",
              "other": "audit: see verdict", "none": "not audited"}


def slug(text: str) -> str:
    """A file name for ``text``: readable part plus a short hash (two texts never collide)."""
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "x"
    return f"{base}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def page(title: str, subtitle: str, body: Sequence[str], root: str, nav: bool = True) -> str:
    links = (f"<nav class='toc'><a href='{root}index.html'>Leaderboard</a>"
             f"<a href='{root}runs.html'>Runs</a></nav>") if nav else ""
    return "\n".join([
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{e(title)}</title><style>{CSS}{EXTRA_CSS}</style></head><body>",
        f"<header class='top'><h1>{e(title)}</h1><p>{subtitle}</p></header>{links}<main>",
        *body, "</main></body></html>"])


def card(title: str, *parts: str, anchor: str = "") -> str:
    aid = f" id='{e(anchor)}'" if anchor else ""
    return f"<section class='card'{aid}><h2>{e(title)}</h2>{''.join(parts)}</section>"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "data",
          attrs: str = "", left: Sequence[int] = (0, 1)) -> str:
    """A table of ready ``<td>`` cells; the ``left`` columns' headings align left."""
    head = "".join(f"<th class='text'>{e(h)}</th>" if i in left else f"<th>{e(h)}</th>"
                   for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return (f"<div class='scroll'><table class='{cls}'{attrs}><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def td(html_text: str, cls: str = "", title: str = "") -> str:
    c = f" class='{cls}'" if cls else ""
    t = f" title='{e(title)}'" if title else ""
    return f"<td{c}{t}>{html_text}</td>"


def badge(state: str, href: str | None = None, by: str | None = None) -> str:
    """An audit badge; ``by``: the principal whose signed verdict it is (only signed verdicts
    by a key of the store's trust file are audits: an unsigned claim has no badge)."""
    words = AUDIT_TEXT.get(state, state) + (f" by {by}" if by else "")
    text = f"<span class='badge {e(state)}'>{e(words)}</span>"
    return f"<a href='{e(href)}'>{text}</a>" if href else text


def submitter(res: StoredResult) -> str:
    return (f"submitted by {e(res.submitted_by)}" if res.submitted_by
            else "<span class='unsigned' title='its run&#39;s manifest is not signed by a key "
                 "of the store&#39;s trust file'>unsigned</span>")


def marks_html(marks: str) -> str:
    """Marks as the report shows them (✗ for a failed check, ! for far beyond the sheets)."""
    return "".join(f"<sup class='mark mark-{c}'>{MARK_TEXT.get(c, c)}</sup>" for c in marks)


def marks_legend() -> str:
    return ("<dl class='marks'>" + "".join(f"<dt>{marks_html(c)}</dt><dd>{e(text)}</dd>"
                                           for c, text in MARKS.items()) + "</dl>")


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"


def audit_href(res: StoredResult, root: str) -> str | None:
    return f"{root}audits/{res.audit_id}.html" if res.audit_id else None


def result_item(res: StoredResult, root: str, label: str = "") -> str:
    value = (format_value(res.value, res.unit) if res.value is not None else res.status)
    audit = badge(res.audit or "none", audit_href(res, root), res.audited_by)
    who = f"{e(label)} · " if label else ""
    return (f"<li>{who}{e(when(res.started_at))} · <a href='{root}{doc_path(res.doc_id)}'>"
            f"{e(value)}</a>{marks_html(res.marks)} · run <code>{e(res.run_id)}</code> · "
            f"{submitter(res)} · {audit}</li>")


# -- workload leaderboard ---------------------------------------------------------------------
def leaderboard(board: Board, data: SiteData, device_pages: dict[str, str],
                badges: dict[str, str] | None = None) -> str:
    """``badges``: device key -> the change badge of its row (testbed.store.site.changes)."""
    wl = board.workload
    base = board.baseline
    several = len(board.rows) > 1  # a composite score compares devices
    header = ["#", "device", f"throughput ({wl.item_unit}/s)",
              *(["composite score"] if several else []),
              *(["baseline score"] if base else []), "audit", "results"]
    rows = []
    for row in board.rows:
        latest = row.results[0] if row.results else None
        cell = row.headline
        text = e(cell.text)
        if latest is not None:  # the figure links to the newest document behind it
            text = f"<a href='../{doc_path(latest.doc_id)}'>{text}</a>"
        head = td(text + marks_html(cell.marks),
                  "v flagged" if "X" in cell.marks else ("v" if cell.kind == "value"
                                                         else cell.kind), cell.tooltip)
        audited = next((r for r in row.results if r.audit_id), None)
        cells = [
            td(str(row.rank) if row.rank else "–", "rank" + ("" if row.rank else " unranked"),
               "" if row.rank else f"not ranked: {row.why_unranked}"),
            td(f"<a href='../devices/{device_pages[row.device.key]}'>{e(row.device.label)}</a>"
               + (f" {badges[row.device.key]}" if badges and row.device.key in badges else ""),
               "device"),
            head,
            *([td(e(format_score(row.composite)) + marks_html(row.marks), "score",
                  "\n".join(row.composite_parts))] if several else []),
            *([td(e(format_ratio(row.baseline)) if row.baseline is not None else "—",
                  "score")] if base else []),
            td(badge(row.audit, audit_href(audited, "../") if audited else None,
                     _auditors(row.results)), "text"),
            td(f"<details><summary>{len(row.results)} result(s)</summary><ul class='results'>"
               + "".join(result_item(r, "../") for r in row.results) + "</ul></details>",
               "text"),
        ]
        rows.append(cells)
    title = f"{wl.key}: {wl.name}, {MODE_TITLES.get(wl.mode, wl.mode)} · " \
            f"{GROUP_TITLES.get(wl.group, wl.group)}"
    lead = (f"Devices ranked by <code>{HEADLINE}</code> (the mean over their results; values "
            "that failed a plausibility check are not ranked). ")
    if len(board.rows) < 2:
        lead += ("One device: no composite score (it compares devices, min-max over them, "
                 "and would say 0.5 of any lone device).")
    else:
        used = ", ".join(board.composite_metrics) or "none (no metric every device measured)"
        lead += ("The composite score is the report's, over the devices on this page; it "
                 "used: " + e(used) + ".")
    if base:
        lead += f" Baseline-relative scores against {e(base.label)} (1.0 = the baseline)."
    else:
        lead += (" No baseline named: <code>invoke site --baseline DEVICE</code> adds scores "
                 "relative to a reference device.")
    facts = "".join(f"<tr><td>{e(k)}</td><td class='text'>{e(v)}</td></tr>"
                    for k, v in board.facts)
    body = [card("What was measured", f"<table class='data' id='workload-facts'>{facts}</table>",
                 "<p class='lead'>As the results record it; where they differ, every value is "
                 "listed.</p>", anchor="facts"),
            card("Leaderboard", f"<p class='lead'>{lead}</p>",
                 table(header, rows, attrs=f" id='leaderboard' data-rows='{len(rows)}'"),
                 anchor="board"),
            card("Marks", marks_legend(),
                 "<p class='lead'>As in the report: hover a value for the reason.</p>")]
    if board.findings:
        shown = board.findings[:100]
        body.append(card(
            f"Failed plausibility checks ({len(board.findings)})",
            "<p class='lead'>The values a check failed are left out of every score, as in the "
            "report.</p>",
            table(["device", "check", "what failed"],
                  [[td(e(d), "text"), td(e(c), "text"), td(e(m), "text")]
                   for d, c, m in shown], left=(0, 1, 2)),
            f"<p class='lead'>… and {len(board.findings) - 100} more.</p>"
            if len(board.findings) > 100 else "", anchor="checks"))
    sub = (f"{len(board.rows)} device configuration(s), "
           f"{sum(len(r.results) for r in board.rows)} result(s). "
           "<a href='../index.html'>All workloads</a>")
    return page(title, sub, body, "../")


def _auditors(results: list[StoredResult]) -> str | None:
    names = sorted({r.audited_by for r in results if r.audited_by})
    return ", ".join(names) if names else None


# -- device history ----------------------------------------------------------------------------
def differing(members: list[str], data: SiteData) -> list[str]:
    """The version facts that tell this hardware's configurations apart."""
    facts = [data.devices[k].facts for k in members]
    keys = ("driver", "torch", "image")
    return [k for k in keys if len({f.get(k) for f in facts}) > 1] or \
        [k for k in keys if any(k in f for f in facts)][:1]


def config_label(key: str, shown: list[str], data: SiteData) -> str:
    facts = data.devices[key].facts
    return " · ".join(f"{k} {facts.get(k, '—')}" if k != "image"
                      else facts.get("image", "native").rsplit("/", 1)[-1][:30]
                      for k in shown) or data.devices[key].label


def device_page(hardware: str, label: str, data: SiteData, workload_pages: dict[str, str],
                changes_href: str | None = None) -> str:
    members = data.hardware[hardware]
    shown = differing(members, data)
    results = [r for r in data.results.values() if r.hardware_key == hardware]
    first = {k: min(r.started_at for r in results if r.device_key == k) for k in members}
    order = sorted(members, key=lambda k: first[k])
    config_rows = []
    for k in order:
        mine = [r for r in results if r.device_key == k]
        facts = data.devices[k].facts
        audited = sum(1 for r in mine if r.audit == "pass")
        config_rows.append([td(e(facts.get("driver", "—")), "text"),
                            td(e(facts.get("torch", "—")), "text"),
                            td(e(facts.get("image", "native")), "text"),
                            td(e(when(min(r.started_at for r in mine)))),
                            td(e(when(max(r.started_at for r in mine)))),
                            td(str(len(mine))), td(str(audited))])
    charts = []
    workloads = sorted({r.workload for r in results}, key=lambda w: data.workloads[w].order)
    for w in workloads:
        columns = []
        not_drawn = 0
        unit = ""
        for k in order:
            mine = sorted((r for r in results if r.device_key == k and r.workload == w),
                          key=lambda r: r.started_at)
            points = []
            for r in mine:
                if r.value is None:
                    not_drawn += 1
                    continue
                unit = r.unit
                notes = "; ".join(r.notes)
                points.append(Point(r.value, f"{when(r.started_at)} · run {r.run_id} · "
                                    f"{format_value(r.value, r.unit)}"
                                    + (f" · {notes}" if notes else "")
                                    + (f" · audit {r.audit}" if r.audit else ""),
                                    failed="X" in r.marks,
                                    hollow=any(c in r.marks for c in NON_COMPARABLE)))
            if points:
                columns.append(Column(config_label(k, shown, data), points))
        if not columns:
            continue
        wl = data.workloads[w]
        svg = history_chart(columns, f"{w}: throughput ({unit})", unit)
        caption = (f"{not_drawn} result(s) without a throughput (did not finish)."
                   if not_drawn else "")
        charts.append(f"<h3><a href='../workloads/{workload_pages[w]}'>{e(w)}</a> · "
                      f"{e(wl.name)} {e(wl.mode)}</h3><figure class='chart-figure'>{svg}"
                      f"<figcaption>{e(caption)}</figcaption></figure>")
    body = [card("Configurations", table(["driver", "torch", "image",
                                          "first result", "last result", "results",
                                          "passed audit"], config_rows, left=(0, 1, 2)),
                 anchor="configs"),
            card("History of its figures",
                 "<p class='lead'>Throughput per workload. Each dot is one result, the bar the "
                 "mean of those that passed the plausibility checks; the columns are this "
                 "device's configurations in the order they were first measured, named by "
                 f"what differs ({e(', '.join(shown) or 'one configuration')}). Red crosses "
                 "failed a check; hollow dots are not comparable. Hover for values.</p>",
                 *charts, anchor="history")]
    changes = f"<a href='{e(changes_href)}'>What changed</a> · " if changes_href else ""
    return page(label, f"{len(order)} configuration(s), {len(results)} result(s). "
                       f"{changes}<a href='../index.html'>All workloads</a>", body, "../")


# -- audits ---------------------------------------------------------------------------------------
def audit_page(audit_id: str, verdict: VerdictDoc, judged: list[StoredResult],
               labels: dict[str, str]) -> str:
    sub = verdict.get("submitted") or {}
    summary = verdict.get("summary") or {}
    state = verdict.get("verdict", "?")
    by = next((r.audited_by for r in judged if r.audit_id == audit_id and r.audited_by), None)
    facts = [("verdict", badge(state if state in AUDIT_TEXT else "other")),
             ("audited by", f"{e(by)} (SSH signature verified against the store's trust "
                            "file)" if by else "—"),
             ("run judged", f"<code>{e(sub.get('run_id'))}</code>"),
             ("re-run", e(verdict.get("mode"))),
             ("image", e((verdict.get("image") or {}).get("ref") or "native")),
             ("tolerances", e((verdict.get("tolerances") or {}).get("path"))),
             ("audited", e(f"{verdict.get('started_at')} to {verdict.get('ended_at')}")),
             ("metrics", e(", ".join(f"{v} {k}" for k, v in
                                     (summary.get("metrics") or {}).items())))]
    reasons = summary.get("reasons") or []
    body = [card("Verdict", "<table class='data'>" + "".join(
        f"<tr><td>{e(k)}</td><td class='text'>{v}</td></tr>" for k, v in facts) + "</table>",
        f"<p><a href='{audit_id}.json'>The verdict document</a> (sealed JSON, as written by "
        "<code>invoke audit</code>).</p>"),
        card("Results judged", "<ul class='results'>" + "".join(
            result_item(r, "../", labels.get(r.device_key, "")) for r in judged)
            + "</ul>" if judged else "<p class='lead'>None of the judged results is on this "
                                     "site.</p>")]
    if reasons:
        body.append(card(f"Why it failed ({len(reasons)})", "<ul>" + "".join(
            f"<li>{e(r)}</li>" for r in reasons[:200]) + "</ul>"
            + (f"<p class='lead'>… {len(reasons) - 200} more in the document.</p>"
               if len(reasons) > 200 else "")))
    return page(f"Audit of {sub.get('run_id')}", f"{e(state)} · "
                "<a href='../index.html'>Leaderboard</a>", body, "../")


# -- index and runs ---------------------------------------------------------------------------
def index_page(data: SiteData, workload_pages: dict[str, str], hardware: dict[str, str],
               hardware_pages: dict[str, str], generated: str, source: str) -> str:
    sections: dict[tuple[str, str], list[list[str]]] = {}
    for key, board in data.boards.items():
        wl = board.workload
        leader = board.rows[0] if board.rows and board.rows[0].rank else None
        audited = [x.audit for r in board.rows for x in r.results if x.audit]
        n = sum(len(r.results) for r in board.rows)
        sections.setdefault((wl.mode, wl.group), []).append([
            td(f"<a href='workloads/{workload_pages[key]}'>{e(key)}</a>", "text"),
            td(e(wl.name), "text"),
            td(e(leader.device.label) if leader else "—", "text"),
            td(e(format_value(leader.value, wl.item_unit + "/s")) if leader else "—"),
            td(str(len(board.rows))), td(str(n)),
            td(f"{audited.count('pass')} / {len(audited) - audited.count('pass')}",
               title="results whose latest audit passed / did not pass")])
    body = []
    for (mode, group), rows in sorted(sections.items(), key=lambda kv: (
            list(MODE_TITLES).index(kv[0][0]) if kv[0][0] in MODE_TITLES else 9,
            list(GROUP_TITLES).index(kv[0][1]) if kv[0][1] in GROUP_TITLES else 9)):
        body.append(card(f"{MODE_TITLES.get(mode, mode)} · {GROUP_TITLES.get(group, group)}",
                         table(["workload", "model", "leader", "its throughput", "devices",
                                "results", "audits pass / fail"], rows, left=(0, 1, 2))))
    dev_rows = [[td(f"<a href='devices/{hardware_pages[h]}'>{e(label)}</a>", "text"),
                 td(str(len(data.hardware[h]))),
                 td(str(sum(1 for r in data.results.values() if r.hardware_key == h)))]
                for h, label in sorted(hardware.items(), key=lambda kv: kv[1])]
    body.append(card("Devices", "<p class='lead'>Each device's page draws its figures across "
                     "its driver, torch and image versions.</p>",
                     table(["device", "configurations", "results"], dev_rows), anchor="devices"))
    audits = len({r.audit_id for r in data.results.values() if r.audit_id})
    sub = (f"{len(data.results)} result(s) on {len(data.devices)} device configuration(s), "
           f"{len(data.boards)} workload(s), {audits} audit verdict(s). Generated {e(generated)} "
           f"from {e(source)}.")
    return page("Accelerator leaderboard", sub, body, "")


def runs_page(runs: list[Any]) -> str:
    rows = [[td(f"<code>{e(r.run_id)}</code>", "text"), td(e(when(r.started_at))),
             td(e(r.suite or "—"), "text"), td(e("; ".join(r.devices) or "—"), "text"),
             td(f"{r.ok}/{r.results}"), td(e(r.state or "no manifest"), "text"),
             td(badge(r.audit if r.audit in AUDIT_TEXT else ("other" if r.audit else "none"),
                      by=r.audited_by), "text"),
             td(e(r.submitted_by) if r.submitted_by else "unsigned", "text")] for r in runs]
    return page("Runs", f"{len(runs)} run(s). <a href='index.html'>Leaderboard</a>",
                [card("Runs", table(["run", "started (UTC)", "suite", "devices", "ok",
                                     "state", "audit", "submitted by"], rows,
                                    attrs=" id='runs'", left=(0, 2, 3, 5, 6, 7)))], "")
