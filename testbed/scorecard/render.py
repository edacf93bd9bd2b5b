"""The scorecard's report section: the headline, the summary table shaped like the
template's (test item, sub-item, score; NA and failed visible), the basic specifications and
communication tables, and charts (loss curves against the baseline, TGS bars, communication
throughput against message size with the baseline's points, the soak's timeline). Tables
and figures are the report's own types (testbed.report.views), rendered by its renderers.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

from bench.micro.formulas import size_label
from testbed.report import charts
from testbed.report.fmt import SafeCsvWriter
from testbed.report.training import Curve, line_chart
from testbed.report.views import Cell, Figure, Table
from testbed.scorecard.build import Scorecard, Soak
from testbed.scorecard.formulas import percent_of_baseline
from testbed.scorecard.settings import ITEM_TITLES, ITEMS

NA_NOTE = ("NA: no data for the item, which scores 0 (the template's rule); 0 (failed): it "
           "did not pass its acceptance. Scores are fractions of the baseline's figure.")


@dataclass
class Block:
    """A headline or a paragraph, a table or a figure, in order."""

    headline: str = ""
    text: str = ""
    table: Table | None = None
    figure: Figure | None = None


@dataclass
class ScorecardSection:
    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def figures(self) -> list[Figure]:
        return [b.figure for b in self.blocks if b.figure is not None]


def _score_cell(shown: str, note: str = "") -> Cell:
    kind = "na" if shown == "NA" else "status" if shown.startswith("0 (") else "score"
    return Cell(shown, notes=(note,) if note else (), kind=kind)


def summary_table(card: Scorecard) -> Table:
    rows: list[list[Cell | str]] = []
    for item in ITEMS:
        lines = [ln for ln in card.lines if ln.item == item]
        for ln in lines:
            rows.append([ITEM_TITLES[item], ln.sub_item, _score_cell(ln.shown, ln.note),
                         ln.note])
        if len(lines) > 1:
            rows.append([ITEM_TITLES[item], "item score",
                         _score_cell(percent_of_baseline(card.item_scores[item])), ""])
    rows.append(["Overall", "weighted mean of the items",
                 _score_cell(percent_of_baseline(card.overall) if card.applies else "NA"),
                 card.headline])
    return Table(f"Scorecard: {card.device} against {card.baseline}",
                 ["test item", "sub-item", "score", "how"], rows,
                 anchor=f"scorecard-summary-{_slug(card.device)}", caption=NA_NOTE)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "NA"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {prefix}{unit}"
    return f"{value:.4g} {unit}"


def specs_table(card: Scorecard) -> Table:
    rows: list[list[Cell | str]] = []
    for r in card.specs:
        pct = "" if r.measured is None else f"{r.measured / r.baseline:.1%}"
        rows.append([r.title, _score_cell(_fmt(r.measured, r.unit), r.note)
                     if r.measured is None else _fmt(r.measured, r.unit),
                     _fmt(r.baseline, r.unit), pct])
    return Table("Basic specifications (shown, not scored)",
                 ["specification", card.device, "A100 (template)", "of the A100"], rows,
                 caption="Measured by the micro-benchmarks (docs/micro.md) next to the "
                         "template's A100 values; the template does not score them again.")


def comm_table(card: Scorecard) -> Table:
    rows: list[list[Cell | str]] = []
    for r in card.comm:
        rows.append([r.op, str(r.devices), size_label(r.message_bytes), f"{r.weight:.1%}",
                     f"{r.baseline_gbit:.1f} ({r.baseline_source})",
                     "NA" if r.measured_gbit is None else f"{r.measured_gbit:.1f}",
                     _score_cell("NA" if r.score is None else percent_of_baseline(r.score))])
    return Table("Communication against the template's table",
                 ["op", "devices", "message", "weight", "baseline Gbit/s", "measured Gbit/s",
                  "score"], rows,
                 caption="Throughput as DeepSpeed's communication benchmark defines it "
                         "(all_reduce 2 × size / time, all_gather world × size / time, others "
                         "size / time); a point scores where the same op, device count and "
                         "message size was measured.")


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")


# -- charts ----------------------------------------------------------------------------------
def loss_figures(card: Scorecard) -> list[Figure]:
    out = []
    for entry, (test, base) in sorted(card.loss.items()):
        curves = [Curve(card.device, charts.colour(0), list(test))]
        if base:
            curves.append(Curve(f"{card.baseline} (baseline)", charts.colour(1), list(base)))
        name = f"scorecard-loss-{_slug(card.device)}-{entry}"
        out.append(Figure(name, f"Loss per step: {entry}",
                          line_chart(curves, f"Loss per step: {entry}", "loss (nat)"),
                          "The test device's loss curve" + (" against the baseline run's."
                                                            if base else
                                                            " (no baseline run)."), name=name))
    return out


def tgs_figure(card: Scorecard) -> Figure | None:
    entries = sorted(e for e, (t, _) in card.tgs.items() if t is not None)
    if not entries:
        return None
    section = charts.BarSection("training entries", entries)
    for e in entries:
        t, b = card.tgs[e]
        top = max(v for v in (t, b) if v is not None)
        section.bars[e] = [
            charts.Bar(t / top, f"{card.device}: {t:.4g} tokens/s per device"),
            charts.Bar(None if b is None else b / top,
                       "no baseline TGS" if b is None else f"{card.baseline}: {b:.4g} tokens/s",
                       note="NA" if b is None else "")]
    name = f"scorecard-tgs-{_slug(card.device)}"
    svg = charts.bar_chart([section], [card.device, f"{card.baseline} (baseline)"],
                           "TGS, relative to the larger of the two")
    return Figure(name, "TGS: tokens per device per second", svg,
                  "Each entry's TGS relative to the larger of test and baseline (hover for "
                  "the value); the performance score is Σ W_i × TGS_i / TGS_baseline,i.",
                  name=name)


def comm_figure(card: Scorecard) -> Figure | None:
    measured = [(op, m, g, n) for op, pts in card.comm_measured.items() for m, g, n in pts]
    base = [(r.op, r.message_bytes, r.baseline_gbit, r.devices) for r in card.comm]
    points = [*measured, *base]
    if not measured:
        return None
    left, right, top, bottom, width, height = 70.0, 20.0, 50.0, 46.0, 680.0, 340.0
    svg = charts.Svg(width, height, "Communication throughput against message size", "comm")
    xs = [p[1] for p in points]
    ys = [p[2] for p in points if p[2] > 0]
    xlo, xhi = math.log10(min(xs)) - 0.2, math.log10(max(xs)) + 0.2
    ylo, yhi = math.log10(min(ys)) - 0.2, math.log10(max(ys)) + 0.2
    pw, ph = width - left - right, height - top - bottom

    def x_of(v: float) -> float:
        return left + pw * (math.log10(v) - xlo) / (xhi - xlo)

    def y_of(v: float) -> float:
        return top + ph - ph * (math.log10(v) - ylo) / (yhi - ylo)

    ops = sorted({p[0] for p in points})
    colours = {op: charts.colour(i) for i, op in enumerate(ops)}
    charts.legend(svg, left, 18, ops, [colours[o] for o in ops], pw)
    # binary ticks (message sizes are powers of two): 1 KiB, 32 KiB, 1 MiB, ...
    lo2, hi2 = math.ceil(xlo / math.log10(2)), math.floor(xhi / math.log10(2))
    stride = next(k for k in (1, 2, 5, 10) if (hi2 - lo2) / k <= 8)
    for e in range(lo2 + (-lo2) % stride, hi2 + 1, stride):
        svg.line(x_of(2 ** e), top, x_of(2 ** e), top + ph)
        svg.text(x_of(2 ** e), top + ph + 16, size_label(2 ** e), anchor="middle",
                 size=10, fill=charts.MUTED)
    for e in range(math.ceil(ylo), math.floor(yhi) + 1):
        svg.line(left, y_of(10 ** e), left + pw, y_of(10 ** e))
        svg.text(left - 6, y_of(10 ** e) + 4, f"{10 ** e:g}", anchor="end", size=10,
                 fill=charts.MUTED)
    svg.text(left + pw, height - 8, "message size (DeepSpeed's)", anchor="end", size=11,
             fill=charts.MUTED)
    svg.text(14, top + ph / 2, "Gbit/s", anchor="middle", size=11, fill=charts.MUTED,
             rotate=-90)
    for op in ops:
        for ranks in sorted({n for o, _, _, n in measured if o == op}):
            pts = sorted((m, g) for o, m, g, n in measured if o == op and n == ranks)
            path = " ".join(f"{x_of(m):.1f},{y_of(g):.1f}" for m, g in pts if g > 0)
            svg.add(f"<polyline points='{path}' fill='none' stroke='{colours[op]}' "
                    f"stroke-width='1.6'/>")
            for m, g in pts:
                svg.add(f"<circle cx='{x_of(m):.1f}' cy='{y_of(g):.1f}' r='3' "
                        f"fill='{colours[op]}'><title>{op}, {ranks} devices, "
                        f"{size_label(m)}: {g:.3g} Gbit/s ({card.device})</title></circle>")
    for op, m, g, n in base:
        x, y = x_of(m), y_of(g)
        svg.add(f"<path d='M{x:.1f},{y - 6:.1f} L{x + 6:.1f},{y:.1f} L{x:.1f},{y + 6:.1f} "
                f"L{x - 6:.1f},{y:.1f} Z' fill='white' stroke='{colours[op]}' "
                f"stroke-width='2'><title>{op}, {n} devices, {size_label(m)}: {g:.1f} Gbit/s "
                f"(baseline)</title></path>")
    name = f"scorecard-comm-{_slug(card.device)}"
    return Figure(name, "Communication throughput against message size", svg.render(),
                  f"Lines and dots: {card.device}, measured (DeepSpeed's definition); hollow "
                  f"diamonds: the baseline's points (8 and 32 devices). Log-log.", name=name)


def soak_figure(card: Scorecard, soak: Soak) -> Figure:
    left, right, top, bottom, width, height = 64.0, 20.0, 40.0, 44.0, 680.0, 260.0
    title = f"Stability soak: {soak.entry}"
    svg = charts.Svg(width, height, title, "soak")
    pw, ph = width - left - right, height - top - bottom
    tmax = max(soak.window_s, 1e-9)
    smax = max([s for _, s in soak.steps] or [1])

    def x_of(t: float) -> float:
        return left + pw * min(max(t, 0.0), tmax) / tmax

    def y_of(s: float) -> float:
        return top + ph - ph * s / smax

    for c in soak.crashes:
        end = c.recovered_s if c.recovered_s is not None else tmax
        svg.add(f"<rect x='{x_of(c.t_s):.1f}' y='{top:.1f}' "
                f"width='{max(x_of(end) - x_of(c.t_s), 1.5):.1f}' height='{ph:.1f}' "
                f"fill='#f4c7c3' opacity='0.8'><title>down {c.t_s:.1f} s → "
                f"{'not recovered' if c.recovered_s is None else f'{end:.1f} s'}"
                f"</title></rect>")
        svg.line(x_of(c.t_s), top, x_of(c.t_s), top + ph, stroke="#c5221f", width=2)
        svg.text(x_of(c.t_s) + 3, top + 12, c.kind, size=11, fill="#c5221f",
                 tooltip=f"{c.kind} at step {c.step}: {c.message}")
    for t in charts.linear_ticks(0, tmax, 6):
        if 0 <= t <= tmax:
            svg.text(x_of(t), top + ph + 16, f"{t:g}", anchor="middle", size=10,
                     fill=charts.MUTED)
    for s in charts.linear_ticks(0, smax, 4):
        if 0 <= s <= smax:
            svg.line(left, y_of(s), left + pw, y_of(s))
            svg.text(left - 6, y_of(s) + 4, f"{s:g}", anchor="end", size=10, fill=charts.MUTED)
    svg.line(left, top + ph, left + pw, top + ph, stroke=charts.AXIS)
    svg.text(left + pw, height - 6, "seconds since the soak started", anchor="end", size=11,
             fill=charts.MUTED)
    svg.text(14, top + ph / 2, "step", anchor="middle", size=11, fill=charts.MUTED,
             rotate=-90)
    # one line per stretch of training: broken at every crash
    cuts = sorted(c.t_s for c in soak.crashes)
    runs: list[list[tuple[float, int]]] = [[]]
    for t, s in soak.steps:
        if runs[-1] and any(runs[-1][-1][0] < cut <= t for cut in cuts):
            runs.append([])
        runs[-1].append((t, s))
    for run in runs:
        path = " ".join(f"{x_of(t):.1f},{y_of(s):.1f}" for t, s in run)
        svg.add(f"<polyline points='{path}' fill='none' stroke='{charts.colour(0)}' "
                f"stroke-width='1.8'/>")
    charts.legend(svg, left, 18, ["completed step", "crash", "down until recovered"],
                  [charts.colour(0), "#c5221f", "#f4c7c3"], pw)
    rts = [c.recovery_s for c in soak.crashes if c.recovery_s is not None]
    name = f"scorecard-soak-{_slug(card.device)}-{soak.entry}"
    return Figure(name, title, svg.render(),
                  f"C = {len(soak.crashes)} crash(es), mean recovery R = "
                  f"{(sum(rts) / len(rts)) if rts else float('nan'):.3g} s, longest "
                  f"failure-free stretch h = {soak.failure_free_s:.1f} s of a "
                  f"{soak.window_s:.1f} s window; stability score "
                  f"{percent_of_baseline(soak.score)}.", name=name)


def section(cards: list[Scorecard]) -> ScorecardSection:
    sec = ScorecardSection("scorecard", "Scorecard against the A100 baseline")
    for card in cards:
        sec.blocks.append(Block(headline=f"{card.device}: {card.headline}"))
        for note in card.notes:
            sec.blocks.append(Block(text=note))
        sec.blocks.append(Block(table=summary_table(card)))
        sec.blocks.append(Block(table=specs_table(card)))
        sec.blocks.append(Block(table=comm_table(card)))
        figures = [*loss_figures(card), tgs_figure(card), comm_figure(card),
                   *(soak_figure(card, s) for s in card.soaks)]
        sec.blocks += [Block(figure=f) for f in figures if f is not None]
    return sec


def scorecard_csv(cards: list[Scorecard]) -> str:
    """The scorecards as CSV; device labels are someone else's text, so every cell is made
    safe for spreadsheets as the report's other CSV files are."""
    buf = io.StringIO()
    writer = SafeCsvWriter(buf)
    writer.writerow(["device", "baseline", "test_item", "sub_item", "score", "shown",
                     "counted", "note"])
    for card in cards:
        for ln in card.lines:
            writer.writerow([card.device, card.baseline, ln.item, ln.sub_item,
                             "" if ln.score is None else repr(ln.score), ln.shown,
                             repr(ln.counted), ln.note])
        for item in ITEMS:
            s = card.item_scores[item]
            writer.writerow([card.device, card.baseline, item, "item score", repr(s),
                             percent_of_baseline(s), repr(s), ""])
        if card.applies:
            writer.writerow([card.device, card.baseline, "overall", "", repr(card.overall),
                             percent_of_baseline(card.overall), repr(card.overall),
                             card.headline])
        else:  # nothing to score: no 0 % that reads like a measurement
            writer.writerow([card.device, card.baseline, "overall", "", "", "NA", "",
                             card.headline])
    return buf.getvalue()
