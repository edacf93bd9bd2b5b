"""Write a report: HTML (self-contained), Markdown (+ SVG charts) and CSV tables.

``write_report(paths, out, baseline=...)`` validates every file first (an invalid one is
listed with its reason and left out, never silently dropped), checks, aggregates and scores
the rest (``analysis``), and writes into ``out``:

- ``report.html``: one file, inline CSS and SVG, no script and no external URL;
- ``report.md`` with ``charts/*.svg`` beside it;
- ``aggregated.csv``: one row per (device, workload, metric) with the mean over results,
  their number and spread, the marks and their reasons;
- ``scores.csv``: composite (and baseline-relative) score per (workload, device).

Text cells of the CSV files come from result documents (device labels, workload ids, notes):
a cell that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return) is written with a leading ``'``, as OWASP recommends; numbers are
written as numbers.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.ids import inside, slug
from bench.jsonio import atomic_write_text
from bench.paths import make_writable_dir
from testbed.report import render_html, render_md
from testbed.report.analysis import Analysis, analyse
from testbed.report.checks import CheckSettings
from testbed.report.figures import add_device_views
from testbed.report.fmt import SafeCsvWriter
from testbed.report.function_views import build_function_views
from testbed.report.inputs import ResultSet, load_results
from testbed.report.metrics import ScoreSettings
from testbed.report.references import bundled
from testbed.report.training import loss_figures, training_table
from testbed.report.views import Views, build_views

TITLE = "Accelerator benchmark report"


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    csv: Path
    scores_csv: Path
    charts: list[Path]
    analysis: Analysis
    scorecard_csv: Path | None = None

    @property
    def inputs(self) -> ResultSet:
        return self.analysis.inputs


def report_dir_name(paths: list[Path], baseline: list[Path] | None = None,
                    references: list[str] | None = None) -> str:
    """The default directory name of a report (under reports/): one run's own id; several
    inputs are named from them (the first two and a hash of them all, the baseline and the
    references included), so two combined reports never overwrite each other and the same
    inputs write the same directory again."""
    if len(paths) == 1 and not baseline and not references:
        return paths[0].resolve().name
    inputs = [str(Path(p).resolve()) for p in paths]
    inputs += [f"baseline:{Path(p).resolve()}" for p in baseline or []]
    inputs += [f"reference:{r}" for r in references or []]
    digest = hashlib.sha256("\n".join(sorted(inputs)).encode()).hexdigest()[:8]
    names = "+".join(slug(Path(p).resolve().name)[:40] for p in paths[:2])
    more = f"+{len(paths) - 2}" if len(paths) > 2 else ""
    return f"combined-{names}{more}-{digest}"


def _require(paths: list[Path], what: str) -> None:
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise UserError(f"{what} path {missing[0]} does not exist.",
                        "Give a run directory (results/<run-id>/) or result files; run "
                        "`invoke bench --native --suite smoke` to make some.")


def aggregated_csv(analysis: Analysis) -> str:
    buf = io.StringIO()
    writer = SafeCsvWriter(buf)
    writer.writerow(["device", "device_key", "workload", "mode", "group", "metric", "value",
                     "unit", "n_results", "std_over_results", "marks", "notes",
                     "missing_reason"])
    for (device, workload, metric), row in analysis.table.iterrows():
        wl = analysis.workloads[workload]
        writer.writerow([analysis.devices[device].label, device, workload, wl.mode, wl.group,
                         metric, "" if row["value"] != row["value"] else repr(row["value"]),
                         row["unit"], int(row["n"]),
                         "" if row["std"] != row["std"] else repr(row["std"]), row["marks"],
                         " | ".join(row["notes"]), row["reason"] or ""])
    return buf.getvalue()


def scores_csv(analysis: Analysis) -> str:
    buf = io.StringIO()
    writer = SafeCsvWriter(buf)
    writer.writerow(["workload", "device", "composite_score", "metrics_used",
                     "baseline_device", "baseline_relative_score"])
    bl = analysis.baseline
    for wl in analysis.workload_order():
        comp = analysis.composites.get(wl)
        for d in analysis.device_order():
            score = comp.scores.get(d) if comp else None
            rel = bl.summary.get((wl, d)) if bl else None
            if score is None and rel is None:
                continue
            writer.writerow([wl, analysis.devices[d].label,
                             "" if score is None else repr(score.score),
                             " ".join(comp.used) if comp else "",
                             bl.device.label if bl else "", "" if rel is None else repr(rel)])
    return buf.getvalue()


def _sources(paths: list[Path]) -> str:
    names = [str(p) for p in paths]
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def write_report(paths: list[Path], out: Path, baseline: list[Path] | None = None,
                 settings: ScoreSettings | None = None,
                 check_settings: CheckSettings | None = None,
                 scorecard: bool = False, sections: list[Any] | None = None) -> ReportFiles:
    """Validate, check, aggregate and score the results under ``paths``; write the report."""
    paths = [Path(p) for p in paths]
    _require(paths, "Results")
    inputs = load_results(paths)
    if not inputs.results and not inputs.invalid:
        raise UserError(f"No result files in {', '.join(map(str, paths))}.",
                        "Run a suite first (`invoke bench --native --suite smoke`).")
    base_inputs = None
    if baseline:
        _require([Path(p) for p in baseline], "Baseline")
        base_inputs = load_results([Path(p) for p in baseline])
        if not base_inputs.results:
            raise UserError(f"No valid result in the baseline {_sources(baseline)}.",
                            "Name the run directory of the baseline device (e.g. an A100 run) "
                            "with --baseline.")
    analysis = analyse(inputs, settings, check_settings, baseline=base_inputs)
    views = add_device_views(build_views(analysis), analysis)
    views.function = build_function_views(analysis)
    views.training, views.loss_curves = training_table(analysis), loss_figures(analysis)
    cards = None
    if scorecard:
        from testbed.scorecard import build as sc_build
        from testbed.scorecard import render as sc_render

        cards = sc_build.build_scorecards(inputs, base_inputs)
        views.scorecard = sc_render.section(cards)
    views.sections = list(sections or [])
    meta: dict[str, str | int] = {
        "title": TITLE,
        "generated": datetime.now(tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "files": inputs.files, "sources": _sources(paths), "results": len(inputs.results),
        "invalid": len(inputs.invalid) + (len(base_inputs.invalid) if base_inputs else 0),
        "devices": len(inputs.devices), "workloads": len(analysis.workloads),
        "references": ", ".join(bundled()),
    }
    fix = "Choose a directory you can write to with --out DIR."
    make_writable_dir(out, "Report directory", fix)
    try:
        charts_dir = out / "charts"
        charts_dir.mkdir(exist_ok=True)
        chart_files = _write_charts(views, charts_dir)
        files = ReportFiles(out / "report.html", out / "report.md", out / "aggregated.csv",
                            out / "scores.csv", chart_files, analysis)
        atomic_write_text(files.csv, aggregated_csv(analysis))
        atomic_write_text(files.scores_csv, scores_csv(analysis))
        if cards is not None:
            from testbed.scorecard.render import scorecard_csv

            files.scorecard_csv = out / "scorecard.csv"
            atomic_write_text(files.scorecard_csv, scorecard_csv(cards))
        atomic_write_text(files.markdown, render_md.render(views, meta))
        atomic_write_text(files.html, render_html.render(views, meta))
    except OSError as exc:
        raise UserError(f"Cannot write the report in {out}: {exc.strerror or exc}.",
                        fix + " (The files already written there are complete.)") from exc
    return files


def _write_charts(views: Views, directory: Path) -> list[Path]:
    written = []
    figures = [*([views.radar] if views.radar and not views.single_device else []),
               *[f for f in (views.peak, views.cold) if f],
               *([] if views.single_device else views.bars), *views.loss_curves,
               *views.timelines,
               *([views.roofline] if views.roofline else []),
               *(views.function.figures if views.function else []),
               *(views.inference.figures if views.inference is not None else []),
               *(views.scorecard.figures if views.scorecard is not None else [])]
    for fig in figures:
        path = inside(directory, f"{fig.name}.svg")
        atomic_write_text(path, "<?xml version='1.0' encoding='UTF-8'?>\n" + fig.svg + "\n")
        written.append(path)
    return written
