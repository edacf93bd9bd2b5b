"""The site's "what changed" page of each device, and the leaderboard's change badges.

A device's page lists its confirmed changes (newest first: when, which workload and metric, by
how much with its interval, what the provenance shows changed, the runs either side with their
documents and, for an unexplained change, both runs' ``disturbed`` records), the results kept
out of its series and why, and one chart per series: each run's figure over time, the
changes as dashed lines and each level's mean. ``testbed.store.changes`` finds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise

from bench.errors import UserError
from testbed.report.analysis import Workload
from testbed.report.charts import AXIS, FAIL, GRID, MUTED, Svg, colour, esc, linear_ticks
from testbed.report.fmt import format_value
from testbed.report.render_html import e
from testbed.store.changes import (
    DEFAULT_METRIC,
    EXCLUSIONS,
    UNEXPLAINED,
    Change,
    ChangeReport,
    ChangeSettings,
    RunPoint,
    Series,
    changed_fields,
    find_changes,
    interval_text,
    latest_changes,
    percent_text,
)
from testbed.store.queries import Filters
from testbed.store.site.data import SiteData
from testbed.store.site.history import tick_text
from testbed.store.site.render import page
from testbed.store.store import Store

KIND_BADGE = {"regression": "fail", "improvement": "pass", "change": "partly"}


def anchor(change: Change) -> str:
    return f"change-{change.after.doc_id[:12]}"


def badge_html(change: Change, href: str) -> str:
    """``-12 % since driver 550.54.15``, linking to the change on the device's page."""
    text = f"{change.percent:+.0f} % since {change.since()}"
    tip = (f"{change.kind}: {percent_text(change.ratio)} ({interval_text(change)}) from "
           f"{change.after.started_at:%Y-%m-%d}; {change.cause}")
    return (f"<a class='change-badge' href='{e(href)}#{anchor(change)}' title='{e(tip)}'>"
            f"<span class='badge {KIND_BADGE[change.kind]}'>{e(text)}</span></a>")


def _doc_link(point: RunPoint, documents: set[str], text: str) -> str:
    if point.doc_id in documents:
        return f"<a href='../documents/{point.doc_id}.json'>{e(text)}</a>"
    return e(text)


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def change_rows(changes: Sequence[Change], series: dict[object, Series],
                documents: set[str]) -> list[str]:
    rows = []
    for c in changes:
        s = series[c.key]
        runs = (f"{_doc_link(c.before, documents, c.before.run_id)} → "
                f"{_doc_link(c.after, documents, c.after.run_id)}<br><small>{c.runs_before} "
                f"run(s) before, {c.runs_after} after; p {c.pvalue:.1g}</small>")
        cause = e(c.cause)
        if not c.explained:
            records = "".join(
                f"<li>{_doc_link(p, documents, p.run_id)}: "
                f"{e(p.disturbed.describe() if p.disturbed else 'no disturbed record')}</li>"
                for p in (c.before, c.after))
            cause = f"{e(UNEXPLAINED)}<ul class='results'>{records}</ul>"
        nb = c.neighbours
        neighbours = nb if isinstance(nb, str) else (
            f"{percent_text(nb.estimate)} ({(nb.low - 1) * 100:+.1f} .. "
            f"{(nb.high - 1) * 100:+.1f} %)")
        rows.append(
            f"<tr id='{anchor(c)}'><td class='text'>{e(_when(c.after.started_at))}</td>"
            f"<td class='text'>{e(s.workload)}</td><td class='text'><code>{e(c.key.metric)}"
            f"</code></td><td class='text'><span class='badge {KIND_BADGE[c.kind]}'>"
            f"{e(c.kind)}</span></td><td title='the last run before against the first run "
            f"after, from their repeats: {e(neighbours)}'><b>{e(percent_text(c.ratio))}</b>"
            f"<br><small>{e(interval_text(c))}</small></td>"
            f"<td class='text cause'>{cause}</td><td class='text'>{runs}</td></tr>")
    return rows


def series_chart(s: Series, title: str) -> str:
    """Each run's figure over time; changes as dashed lines, each level's mean as a bar, the
    version changes that moved nothing as dotted grey lines named below the axis.
    Results kept out are drawn (red crosses: a failed check or audit; grey rings: disturbed)
    but the axis is fitted to the kept ones, so one absurd figure cannot flatten the rest."""
    width, left, right, top, plot_h = 760.0, 64.0, 16.0, 30.0, 170.0
    height = top + plot_h + 40
    svg = Svg(width, height, title, "changes")
    kept = s.kept
    values = [p.value for p in (kept or s.points)]
    low, high = min(values), max(values)
    pad = (high - low) * 0.15 or high * 0.05 or 1.0
    low, high = max(low - pad, 0.0), high + pad
    ticks = [v for v in linear_ticks(low, high, 5) if low <= v <= high]
    t0 = min(p.started_at for p in s.points).timestamp()
    t1 = max(p.started_at for p in s.points).timestamp()
    span = (t1 - t0) or 1.0

    def x_of(when: datetime) -> float:
        return left + (width - left - right) * (when.timestamp() - t0) / span

    def y_of(v: float) -> float:
        v = min(max(v, low), high)
        return top + plot_h - plot_h * (v - low) / (high - low)

    for v in ticks:
        svg.line(left, y_of(v), width - right, y_of(v), stroke=GRID)
        svg.text(left - 6, y_of(v) + 4, tick_text(v), anchor="end", size=10, fill=MUTED)
    svg.line(left, top + plot_h, width - right, top + plot_h, stroke=AXIS)
    svg.text(left, top - 12, title, size=12, weight="600")
    first, last = min(p.started_at for p in s.points), max(p.started_at for p in s.points)
    svg.text(left, top + plot_h + 16, f"{first:%Y-%m-%d}", size=10, fill=MUTED)
    svg.text(width - right, top + plot_h + 16, f"{last:%Y-%m-%d}", anchor="end", size=10,
             fill=MUTED)
    c = colour(0)
    for p in s.points:
        x, y = x_of(p.started_at), y_of(p.value)
        tip = (f"<title>{esc(_when(p.started_at))} · run {esc(p.run_id)} · "
               f"{esc(format_value(p.value, s.unit))}"
               + (f" · kept out: {esc(', '.join(EXCLUSIONS[k] for k in p.excluded))}"
                  if p.excluded else "") + "</title>")
        if "check" in p.excluded or "audit" in p.excluded:
            svg.add(f"<g class='point kept-out'>{tip}<path d='M{x - 3:.1f},{y - 3:.1f}"
                    f"L{x + 3:.1f},{y + 3:.1f}M{x - 3:.1f},{y + 3:.1f}L{x + 3:.1f},"
                    f"{y - 3:.1f}' stroke='{FAIL}' stroke-width='1.5'/></g>")
        elif p.excluded:
            svg.add(f"<circle class='point kept-out' cx='{x:.1f}' cy='{y:.1f}' r='3' "
                    f"fill='none' stroke='{MUTED}' stroke-width='1.2'>{tip}</circle>")
        else:
            svg.add(f"<circle class='point' cx='{x:.1f}' cy='{y:.1f}' r='2.6' fill='{c}' "
                    f"fill-opacity='0.75'>{tip}</circle>")
    cuts = [0, *(kept.index(ch.after) for ch in s.changes), len(kept)]
    for a, b in pairwise(cuts):
        part = kept[a:b]
        if not part:
            continue
        mean = sum(p.value for p in part) / len(part)
        svg.add(f"<line class='level' x1='{x_of(part[0].started_at):.1f}' "
                f"y1='{y_of(mean):.1f}' x2='{x_of(part[-1].started_at):.1f}' "
                f"y2='{y_of(mean):.1f}' stroke='#2b2f36' stroke-width='2'>"
                f"<title>mean {esc(format_value(mean, s.unit))} over {len(part)} run(s)"
                "</title></line>")
    steps = {(ch.before.doc_id, ch.after.doc_id) for ch in s.changes}
    for a, b in pairwise(s.points):
        moved = changed_fields(a.provenance, b.provenance)
        if not moved or (a.doc_id, b.doc_id) in steps:
            continue
        x = (x_of(a.started_at) + x_of(b.started_at)) / 2
        svg.add(f"<line class='version' x1='{x:.1f}' y1='{top:.1f}' x2='{x:.1f}' "
                f"y2='{top + plot_h:.1f}' stroke='{AXIS}' stroke-width='1' "
                f"stroke-dasharray='1 3'><title>{esc('; '.join(f.describe() for f in moved))}"
                "</title></line>")
        svg.text(x, top + plot_h + 28, "/".join(f.field for f in moved), anchor="middle",
                 size=9.5, fill=MUTED)
    for ch in s.changes:
        x = (x_of(ch.before.started_at) + x_of(ch.after.started_at)) / 2
        col = FAIL if ch.kind == "regression" else "#2e7d32"
        svg.add(f"<line class='change' x1='{x:.1f}' y1='{top:.1f}' x2='{x:.1f}' "
                f"y2='{top + plot_h:.1f}' stroke='{col}' stroke-width='1.5' "
                f"stroke-dasharray='5 3'><title>{esc(percent_text(ch.ratio))}: "
                f"{esc(ch.cause)}</title></line>")
        svg.text(x + 4, top + 10, percent_text(ch.ratio), size=10.5, fill=col, weight="600")
    return svg.render()


def changes_page(label: str, report: ChangeReport, hardware: str, documents: set[str],
                 device_href: str) -> str:
    """The page of one device (``hardware``)."""
    mine = [s for s in report.series if s.key.hardware_key == hardware]
    by_key = {s.key: s for s in mine}
    changes = [c for c in report.changes if c.key in by_key]
    body = []
    intro = ("Each series is one workload and metric of this device, its results in the order "
             "they ran, across driver, torch and image versions. A change is a step that "
             "Apache Otava's change-point detection finds (p < "
             f"{report.settings.max_pvalue:g}) and the {report.settings.level * 100:.0f} % "
             "interval of the runs either side confirms; its cause is what the provenance shows "
             "changed between the last run before and the first run after, and nothing else. "
             "Hover a change for the last run before against the first run after, from "
             "their repeats.")
    if changes:
        table = ("<table class='data' id='changes'><thead><tr><th class='text'>after (UTC)"
                 "</th><th class='text'>workload</th><th class='text'>metric</th>"
                 "<th class='text'>kind</th><th>change</th><th class='text'>cause</th>"
                 "<th class='text'>runs either side</th></tr></thead><tbody>"
                 + "".join(change_rows(changes, by_key, documents)) + "</tbody></table>")
    else:
        table = ("<div class='callout ok' id='changes'>No change: every series of this "
                 "device stays at one level within its noise.</div>")
    body.append(f"<section class='card' id='found'><h2>Changes ({len(changes)})</h2>"
                f"<p class='lead'>{e(intro)}</p>{table}</section>")
    out_counts = {k: sum(1 for s in mine for p in s.points if k in p.excluded)
                  for k in EXCLUSIONS}
    kept_out = ", ".join(f"{n} {EXCLUSIONS[k]}" for k, n in out_counts.items() if n)
    body.append("<section class='card' id='kept-out'><h2>Kept out</h2><p class='lead'>"
                + e(f"Kept out of this device's series: {kept_out}. `invoke changes "
                    "--include-all` keeps them in." if kept_out else
                    "No result of this device was kept out (none disturbed, none failing "
                    "a plausibility check or its audit)." if not report.include_all else
                    "Every result is in (--include-all).")
                + " In the charts grey rings are disturbed runs and red crosses failed a check "
                  "or an audit (the axis fits the kept runs); dotted grey lines are version "
                  "changes that moved nothing.</p></section>")
    charts = []
    for s in sorted(mine, key=lambda s: (-len(s.changes), s.workload, s.key.metric)):
        title = f"{s.workload} · {s.key.metric} ({s.unit})"
        note = (f"{len(s.kept)} run(s) kept of {len(s.points)}; "
                f"{len(s.changes)} change(s)")
        charts.append(f"<figure class='chart-figure'>{series_chart(s, title)}"
                      f"<figcaption>{e(note)}</figcaption></figure>")
    body.append("<section class='card' id='series'><h2>Series</h2>" + "".join(charts)
                + "</section>")
    sub = (f"{len(mine)} series, {len(changes)} change(s). <a href='{e(device_href)}'>"
           "The device's history</a> · <a href='../index.html'>All workloads</a>")
    return page(f"{label}: what changed", sub, body, "../")


def site_changes(store: Store, f: Filters) -> ChangeReport:
    """The headline metric's changes for the site (an empty report where nothing is
    measured)."""
    try:
        return find_changes(store, f)
    except UserError:  # nothing measured matches: no series
        return ChangeReport([], ChangeSettings(), False, f.since,
                            dict.fromkeys(EXCLUSIONS, 0), (DEFAULT_METRIC,))


def change_badges(report: ChangeReport, workload: Workload, data: SiteData,
                  hardware_pages: dict[str, str]) -> dict[str, str]:
    """device key -> the badge of the latest change of its line of history on this workload,
    for the configurations measured since that change."""
    latest = latest_changes(report)
    out = {}
    for hardware, members in data.hardware.items():
        found = latest.get((hardware, workload.id, workload.config))
        if found is None:
            continue
        change, since = found
        for key in members:
            if key in since:
                out[key] = badge_html(change, f"../changes/{hardware_pages[hardware]}")
    return out
