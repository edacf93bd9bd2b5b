"""The first report: one table per metric (workload x device), Markdown and HTML.

Every file is validated first. An invalid file is listed in the report with the reason and
left out of the tables, never silently dropped.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.jsonio import atomic_write_text
from bench.validate import expand, validate_file

# Metrics shown, in order, with a title. Derived from SPEC section 5.
REPORT_METRICS: list[tuple[str, str]] = [
    ("throughput_items_per_s", "Throughput"),
    ("latency_mean_s", "Forward latency per batch, mean"),
    ("latency_p99_s", "Latency per batch, p99"),
    ("device_util_pct", "Device utilisation"),
    ("device_mem_used_pct_mean", "Device memory used, mean"),
    ("framework_mem_peak_bytes", "Framework peak memory"),
    ("power_w_mean", "Average power"),
    ("items_per_j", "Energy efficiency"),
    ("temp_c_mean", "Average temperature"),
    ("flop_per_s", "Achieved FLOP/s"),
]


@dataclass
class ReportInputs:
    results: list[dict[str, Any]] = field(default_factory=list)
    invalid: list[tuple[Path, list[str]]] = field(default_factory=list)
    files: int = 0


def load_results(paths: Iterable[Path]) -> ReportInputs:
    inputs = ReportInputs()
    for path in expand(paths):
        report = validate_file(path)
        inputs.files += 1
        if report.schema == "manifest" and report.ok:
            continue
        if not report.ok:
            inputs.invalid.append((path, [str(p) for p in report.problems]))
            continue
        inputs.results.append(report.doc)
    return inputs


def device_label(doc: dict[str, Any]) -> str:
    prov = doc["provenance"]
    name = (prov.get("device") or {}).get("name") or prov["vendor"]
    return f"{prov['vendor']}: {name}"


def row_label(doc: dict[str, Any]) -> str:
    return doc["workload"]["id"]


def format_value(value: Any, unit: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if unit == "B":
        return f"{value / 2**30:.3g} GiB"
    if unit == "s":
        return f"{value * 1e3:.4g} ms"
    if unit == "FLOP/s":
        return f"{value / 1e12:.4g} TFLOP/s"
    if isinstance(value, float) and (abs(value) >= 1e5 or (value and abs(value) < 1e-3)):
        return f"{value:.3e} {unit}"
    return f"{value:.4g} {unit}" if isinstance(value, float) else f"{value} {unit}"


def cell(doc: dict[str, Any], metric: str) -> str:
    if doc["status"] != "ok":
        return doc["status"]
    entry = doc["metrics"].get(metric)
    if entry is None:
        return ""
    text = format_value(entry["value"], entry["unit"])
    if doc["workload"]["overrides"] or doc["workload"]["precision_used"] != doc["workload"][
            "precision_requested"]:
        text += " †"
    return text


def tables(results: list[dict[str, Any]]) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(metric, title, column labels, rows) for every metric that some result has."""
    devices = sorted({device_label(d) for d in results})
    rows = sorted({row_label(d) for d in results})
    by_key = {(row_label(d), device_label(d)): d for d in results}
    out = []
    for metric, title in REPORT_METRICS:
        if not any(metric in d["metrics"] for d in results):
            continue
        body = []
        for row in rows:
            cells = [cell(by_key[(row, dev)], metric) if (row, dev) in by_key else "—"
                     for dev in devices]
            if any(c not in ("", "—") for c in cells):
                body.append([row, *cells])
        out.append((metric, title, ["workload", *devices], body))
    return out


def markdown(inputs: ReportInputs, generated: str) -> str:
    lines = ["# Benchmark report", "", f"Generated {generated} from {inputs.files} file(s); "
             f"{len(inputs.results)} valid result(s), {len(inputs.invalid)} invalid.", ""]
    for metric, title, header, body in tables(inputs.results):
        lines += [f"## {title} (`{metric}`)", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        lines.append("")
    lines += ["† not comparable: a parameter was overridden or the precision fell back.", ""]
    if inputs.invalid:
        lines += ["## Invalid files (left out)", ""]
        for path, problems in inputs.invalid:
            lines.append(f"- `{path}`: " + "; ".join(problems))
        lines.append("")
    return "\n".join(lines)


def html_report(inputs: ReportInputs, generated: str) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Benchmark report</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}"
        "table{border-collapse:collapse;margin:0 0 2rem}th,td{border:1px solid #ccc;"
        "padding:.3rem .6rem;text-align:right}th:first-child,td:first-child{text-align:left}"
        "thead th{background:#f2f2f2}.invalid{color:#a00}",
        "</style></head><body>",
        "<h1>Benchmark report</h1>",
        f"<p>Generated {e(generated)} from {inputs.files} file(s); {len(inputs.results)} valid "
        f"result(s), {len(inputs.invalid)} invalid.</p>",
    ]
    for metric, title, header, body in tables(inputs.results):
        parts.append(f"<h2 id='{e(metric)}'>{e(title)} <code>{e(metric)}</code></h2>")
        parts.append("<table class='metric'><thead><tr>"
                     + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead><tbody>")
        for row in body:
            parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("<p>† not comparable: a parameter was overridden or the precision fell "
                 "back.</p>")
    if inputs.invalid:
        parts.append("<h2 class='invalid'>Invalid files (left out)</h2><ul>")
        for path, problems in inputs.invalid:
            parts.append(f"<li class='invalid'><code>{e(str(path))}</code>: "
                         + e("; ".join(problems)) + "</li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(paths: list[Path], out: Path) -> tuple[Path, Path, ReportInputs]:
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise UserError(f"Results path {missing[0]} does not exist.",
                        "Give a run directory (results/<run-id>/) or result files; run "
                        "`invoke bench --native --suite smoke` to make some.")
    inputs = load_results(paths)
    if not inputs.results and not inputs.invalid:
        raise UserError(f"No result files in {', '.join(map(str, paths))}.",
                        "Run a suite first (`invoke bench --native --suite smoke`).")
    out.mkdir(parents=True, exist_ok=True)
    generated = datetime.now(tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    md, page = out / "report.md", out / "report.html"
    atomic_write_text(md, markdown(inputs, generated))
    atomic_write_text(page, html_report(inputs, generated))
    return md, page, inputs
