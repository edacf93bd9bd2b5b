"""The report's function section (docs/function.md): operator coverage per device and dtype,
the model-function table, the transformer block and the long tail against the memory-bound
limit. Built from the ``function`` record of the results and from the points of the
``transformer-block`` and ``op-longtail`` results; every device in the report side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench.documents import CaseRow, FunctionCases, FunctionRecord, ModelCheck, PointDoc
from testbed.report import charts
from testbed.report.analysis import Analysis
from testbed.report.fmt import format_value
from testbed.report.function_charts import CLASS_TITLES, MatrixCell, matrix_chart
from testbed.report.views import Cell, Figure, Table

DTYPE_ORDER = ("fp32", "fp16", "bf16", "int8", "native")
SLOWEST = 15


@dataclass
class FunctionViews:
    support: Table | None = None
    support_chart: Figure | None = None
    problems: Figure | None = None
    problem_count: int = 0
    matrix: Figure | None = None
    operators: int = 0
    models: Table | None = None
    block: Table | None = None
    longtail: Table | None = None
    longtail_chart: Figure | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any((self.support, self.models, self.block, self.longtail))

    @property
    def figures(self) -> list[Figure]:
        return [f for f in (self.support_chart, self.problems, self.matrix,
                            self.longtail_chart) if f is not None]


def _records(analysis: Analysis, kind: str) -> list[tuple[str, FunctionRecord, Any]]:
    """(device key, function record, review) of every result whose record is ``kind``."""
    out = []
    for rev in analysis.reviews:
        rec = rev.result.doc.get("function")
        if isinstance(rec, dict) and rec.get("kind") == kind:
            out.append((rev.result.device_key, rec, rev))
    return out


# -- operators ---------------------------------------------------------------------------------
def _operator_runs(analysis: Analysis) -> dict[str, FunctionCases]:
    """The latest operator-function record per device."""
    runs: dict[str, FunctionCases] = {}
    for device, rec, _rev in sorted(_records(analysis, "operators"),
                                   key=lambda t: t[2].result.doc.get("started_at", "")):
        runs[device] = rec
    return runs


def support_table(analysis: Analysis, runs: dict[str, FunctionCases]) -> Table | None:
    if not runs:
        return None
    devices = [d for d in analysis.device_order() if d in runs]
    dtypes = [v for v in DTYPE_ORDER if any(v in runs[d]["support"] for d in devices)]
    rows: list[list[Cell | str]] = []
    for v in dtypes:
        row: list[Cell | str] = [v]
        for d in devices:
            s = runs[d]["support"].get(v)
            if not s:
                row.append(Cell("—", kind="missing", notes=("dtype not tested",)))
                continue
            counts = ", ".join(f"{CLASS_TITLES.get(c, c)} {s[c]}" for c in CLASS_TITLES
                               if s.get(c))
            rate = s.get("rate_pct")
            text = "n/a" if rate is None else f"{rate:.1f} % ({s.get('pass', 0)}/" \
                f"{s['operators'] - s.get('skipped', 0)})"
            row.append(Cell(text, notes=(counts,), kind="value" if rate is not None else "na"))
        rows.append(row)
    return Table("Operator support rate per dtype",
                 ["dtype", *[analysis.devices[d].label for d in devices]], rows,
                 anchor="function-support",
                 caption="Share of the operators a dtype applies to whose every pass (forward "
                         "and backward) was right on the device; hover for the count per class.")


def support_figure(analysis: Analysis, runs: dict[str, FunctionCases]) -> Figure | None:
    if not runs:
        return None
    devices = [d for d in analysis.device_order() if d in runs]
    labels = [analysis.devices[d].label for d in devices]
    dtypes = [v for v in DTYPE_ORDER if any(v in runs[d]["support"] for d in devices)]
    section = charts.BarSection("dtype", dtypes)
    for v in dtypes:
        bars = []
        for d, label in zip(devices, labels, strict=True):
            rate = (runs[d]["support"].get(v) or {}).get("rate_pct")
            bars.append(charts.Bar(None if rate is None else rate / 100,
                                   f"{label} · {v}: " + ("n/a" if rate is None
                                                         else f"{rate:.1f} %"), note="n/a"))
        section.bars[v] = bars
    svg = charts.bar_chart([section], labels, "Operator support rate per dtype and device",
                           y_label="operators right on the device")
    return Figure("function-support-chart", "Support rate per dtype", svg,
                  "Each bar: the operators of that dtype whose every pass was right on the "
                  "device (pass), as a share of those judged.", name="function-support")


def _cell_tip(op: str, device: str, dtype: str, cls: str, cases: list[CaseRow]) -> str:
    lines = [f"{op} · {device} · {dtype}: {CLASS_TITLES.get(cls, cls)}"]
    for c in cases:
        detail = c["pass"]
        if c.get("err_over_tol") is not None:
            detail += f": error {c['err_over_tol']:.3g}x tolerance"
        if c.get("max_abs_err") is not None and c["class"] == "wrong":
            detail += f", max abs {c['max_abs_err']:.3g}"
        if c.get("message"):
            detail += f" ({c['message'][:160]})"
        lines.append(f"{c['class']} {detail}")
    return "\n".join(lines)


def matrix_figures(analysis: Analysis, runs: dict[str, FunctionCases]
                   ) -> tuple[Figure | None, int, Figure | None, int]:
    """The problems (operators not right everywhere) and the full matrix."""
    if not runs:
        return None, 0, None, 0
    devices = [d for d in analysis.device_order() if d in runs]
    dtypes = {d: [v for v in DTYPE_ORDER if v in runs[d]["support"]] for d in devices}
    ops = sorted({op for d in devices for op in runs[d]["matrix"]})
    cases: dict[tuple[str, str, str], list[CaseRow]] = {}
    for d in devices:
        for c in runs[d]["cases"]:
            cases.setdefault((d, c["op"], c["variant"]), []).append(c)

    def cls(d: str, op: str, v: str) -> str | None:
        return runs[d]["matrix"].get(op, {}).get(v)

    bad = [op for op in ops if any(cls(d, op, v) not in (None, "pass")
                                   for d in devices for v in dtypes[d])]
    groups = [(analysis.devices[d].label, dtypes[d]) for d in devices]

    def figure(rows: list[str], anchor: str, title: str, caption: str) -> Figure | None:
        if not rows:
            return None
        cells: dict[tuple[int, int], MatrixCell] = {}
        for i, op in enumerate(rows):
            j = 0
            for d in devices:
                for v in dtypes[d]:
                    c = cls(d, op, v)
                    tip = (_cell_tip(op, analysis.devices[d].label, v, c,
                                     cases.get((d, op, v), [])) if c else
                           f"{op} · {analysis.devices[d].label} · {v}: does not apply")
                    cells[(i, j)] = MatrixCell(c, tip)
                    j += 1
        svg = matrix_chart(rows, groups, cells, title)
        return Figure(anchor, title, svg, caption, name=anchor)

    problems = figure(bad, "function-problems", "Operators not right everywhere",
                      "Operators with a pass that was wrong, unsupported, fell back to the CPU, "
                      "crashed or could not be judged on some device and dtype; hover a cell "
                      "for the errors and messages.")
    full = figure(ops, "function-matrix", "Operator coverage matrix",
                  "Every catalogued operator (rows) in every dtype it applies to, per device "
                  "(columns), coloured by class (an operator's class in a dtype is the worst "
                  "of its forward and backward passes).")
    return problems, len(bad), full, len(ops)


# -- models -----------------------------------------------------------------------------------
def _check_tip(check: ModelCheck, source: str) -> tuple[str, ...]:
    lines = [f"{check['status']} ({source})"]
    if check.get("reason"):
        lines.append(check["reason"])
    tol = (check.get("tolerance") or {}).get("norm_rel")
    ref = check.get("reference") or {}
    if ref:
        lines.append(f"reference: {ref.get('device')} {ref.get('dtype')}; tolerance {tol:g} "
                     "norm-wise" if tol else "")
    for name, o in (check.get("outputs") or {}).items():
        text = f"{name}: error {o.get('norm_rel_err', 0):.3g} norm-wise"
        if "agreement_pct" in o:
            text += (f", top-1 agreement {o['agreement_pct']:.1f} % ({o.get('decisive', 0)} "
                     f"decisive, {o.get('decisive_disagreements', 0)} differ)")
        lines.append(text)
    if check.get("tokens"):
        t = check["tokens"]
        lines.append(f"greedy tokens: {t['agreeing']}/{t['requested']} agree"
                     + (" (diverged at a near tie)" if t.get("near_tie") else ""))
    if check.get("gradients"):
        g = check["gradients"]
        lines.append(f"gradients: error {g['norm_rel_err']:.3g} norm-wise over "
                     f"{g.get('parameters')} parameters; worst {g.get('worst_parameter')} "
                     f"{g.get('worst_norm_rel_err', 0):.3g}")
    if check.get("loss"):
        lo = check["loss"]
        lines.append(f"loss {lo['device']:.6g}, reference {lo['reference']:.6g}")
    return tuple(x for x in lines if x)


def _summary(check: ModelCheck) -> str:
    status = check["status"]
    if status != "pass":
        return {"fail": "FAIL", "not_checked": "not checked", "error": "error"}.get(status,
                                                                                   status)
    errs = [o.get("norm_rel_err") for o in (check.get("outputs") or {}).values()]
    if check.get("gradients"):
        errs.append(check["gradients"].get("norm_rel_err"))
    worst = max((e for e in errs if e is not None), default=None)
    return "pass" if worst is None else f"pass ({worst:.1e})"


def model_checks(analysis: Analysis) -> dict[tuple[str, str, str, str], tuple[dict, str]]:
    """(device, workload, mode, precision) -> (check, where it came from): a benchmark
    entry's own check wins over the model-function workload's."""
    out: dict[tuple[str, str, str, str], tuple[dict, str]] = {}
    for device, rec, rev in _records(analysis, "models"):
        for c in rec.get("checks", []):
            out[(device, c["workload"], c["mode"], c["precision"])] = (c, rev.workload)
    for device, rec, rev in _records(analysis, "model"):
        out[(device, rec["workload"], rec["mode"], rec["precision"])] = (rec, rev.workload)
    return out


def models_table(analysis: Analysis) -> Table | None:
    checks = model_checks(analysis)
    if not checks:
        return None
    devices = [d for d in analysis.device_order() if any(k[0] == d for k in checks)]
    keys = sorted({k[1:] for k in checks}, key=lambda k: (k[0], k[1] != "infer", k[2]))
    rows: list[list[Cell | str]] = []
    for workload, mode, precision in keys:
        row: list[Cell | str] = [workload, mode, precision]
        compared = ""
        for d in devices:
            found = checks.get((d, workload, mode, precision))
            if found is None:
                row.append(Cell("—", kind="missing", notes=("not checked on this device",)))
                continue
            check, source = found
            compared = compared or ", ".join(
                [*(check.get("outputs") or {}), *(["tokens"] if check.get("tokens") else []),
                 *(["gradients"] if check.get("gradients") else [])])
            row.append(Cell(_summary(check), "X" if check["status"] == "fail" else "",
                            _check_tip(check, source), kind="status"))
        row.insert(3, compared)
        rows.append(row)
    return Table("Model function", ["workload", "mode", "precision", "compared",
                                    *[analysis.devices[d].label for d in devices]], rows,
                 anchor="function-models",
                 caption="Outputs (inference) or one training step's gradients on the device "
                         "against the CPU reference with the same weights and inputs; the "
                         "worst norm-wise error in brackets. A FAIL withholds that device's "
                         "performance score for the workload (mark F).")


# -- transformer block and long tail ---------------------------------------------------------
def _points(analysis: Analysis, workload: str) -> list[tuple[str, str, PointDoc]]:
    out = []
    for rev in analysis.reviews:
        doc = rev.result.doc
        if doc["workload"]["name"] != workload:
            continue
        precision = doc["workload"].get("precision_used", "")
        out += [(rev.result.device_key, precision, p) for p in doc.get("points") or []]
    return out


def _value(p: PointDoc, name: str) -> float | None:
    v = (p.get("metrics", {}).get(name) or {}).get("value")
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def block_table(analysis: Analysis) -> Table | None:
    points = _points(analysis, "transformer-block")
    if not points:
        return None
    devices = [d for d in analysis.device_order() if any(p[0] == d for p in points)]
    keys: dict[tuple, dict[str, tuple[dict, str]]] = {}
    for device, precision, p in points:
        prm = p.get("params", {})
        key = (prm.get("model"), prm.get("batch"), prm.get("seq_len"), prm.get("pass"),
               precision)
        keys.setdefault(key, {})[device] = (p, precision)
    rows: list[list[Cell | str]] = []
    for key in sorted(keys, key=lambda k: tuple(str(x) for x in k)):
        row: list[Cell | str] = [str(x) for x in key]
        for d in devices:
            found = keys[key].get(d)
            if found is None:
                row.append(Cell("—", kind="missing"))
                continue
            p, _prec = found
            if p.get("status") != "ok":
                row.append(Cell(p.get("status", "?"), kind="status",
                                notes=((p.get("error") or {}).get("message", ""),)))
                continue
            flops, pct = _value(p, "flop_per_s"), _value(p, "pct_of_peak")
            reason = (p["metrics"].get("pct_of_peak") or {}).get("reason", "")
            text = format_value(flops, "FLOP/s", 3) + (f" ({pct:.1f} %)" if pct is not None
                                                       else "")
            row.append(Cell(text, notes=(f"% of peak: {reason}" if pct is None else
                                         f"{pct:.2f} % of the precision's peak",)))
        rows.append(row)
    return Table("Transformer block", ["model", "batch", "seq_len", "pass", "precision",
                                       *[analysis.devices[d].label for d in devices]], rows,
                 anchor="function-block",
                 caption="One decoder block (GQA attention through scaled_dot_product_attention "
                         "and the gated MLP) at each LLM's shape: achieved FLOP/s and % of the "
                         "spec sheet's peak.")


def longtail_views(analysis: Analysis) -> tuple[Table | None, Figure | None, list[str]]:
    points = [(d, prec, p) for d, prec, p in _points(analysis, "op-longtail")
              if p.get("status") == "ok"]
    if not points:
        return None, None, []
    notes = []
    rows: list[list[Cell | str]] = []
    ranked = []
    for d, prec, p in points:
        ratio = _value(p, "time_over_memory_bound")
        ranked.append((ratio is None, -(ratio or 0.0), _value(p, "bytes_per_s") or 0.0, d, prec,
                       p))
    ranked.sort(key=lambda r: r[:3])
    per_device: dict[str, int] = {}
    for _none, _neg, _bw, d, prec, p in ranked:
        if per_device.get(d, 0) >= SLOWEST:
            continue
        per_device[d] = per_device.get(d, 0) + 1
        prm = p.get("params", {})
        ratio = _value(p, "time_over_memory_bound")
        limit = _value(p, "memory_bound_time_s")
        reason = (p["metrics"].get("time_over_memory_bound") or {}).get("reason", "")
        rows.append([analysis.devices[d].label, str(prm.get("op")), str(prm.get("elements")),
                     prec, Cell(format_value(_value(p, "time_s"), "s", 3)),
                     Cell(format_value(_value(p, "bytes"), "B", 3)),
                     Cell(format_value(_value(p, "bytes_per_s"), "B/s", 3)),
                     Cell(format_value(limit, "s", 3) if limit else "n/a",
                          kind="value" if limit else "na", notes=(reason,) if reason else ()),
                     Cell(f"{ratio:.1f}×" if ratio else "n/a", kind="value" if ratio else "na",
                          notes=(reason,) if reason else ())])
    no_sheet = sorted({analysis.devices[d].label for _a, _b, _c, d, _e, _f in ranked
                       if _a})
    if no_sheet:
        notes.append(f"No memory bandwidth on the spec sheet of {', '.join(no_sheet)}: its "
                     "long-tail operators are ranked by achieved bandwidth instead.")
    table = Table("Slowest long-tail operators against the memory-bound limit",
                  ["device", "operator", "elements", "precision", "time", "bytes moved",
                   "achieved", "memory-bound time", "time / limit"], rows,
                  anchor="function-longtail",
                  caption="Memory-bound time: the operator's compulsory bytes (inputs read, "
                          "outputs written once) at the spec sheet's bandwidth; time / limit "
                          "says how far the device stays from it (1× is at the limit). "
                          f"The {SLOWEST} slowest per device.")
    devices = [d for d in analysis.device_order() if any(p[0] == d for p in points)]
    labels = [analysis.devices[d].label for d in devices]
    use_pct = any(_value(p, "pct_of_peak") is not None for _d, _pr, p in points)
    best = {d: max((_value(p, "bytes_per_s") or 0.0) for dd, _pr, p in points if dd == d)
            for d in devices}

    def share(p: PointDoc, d: str) -> float:  # the bar's height (0: not measured)
        if use_pct:
            return (_value(p, "pct_of_peak") or 0.0) / 100
        return (_value(p, "bytes_per_s") or 0.0) / best[d] if best[d] else 0.0

    # The slowest first (the lowest bar over the devices): the wide chart opens on them.
    lowest: dict[str, float] = {}
    for d, _pr, p in points:
        op = str(p.get("params", {}).get("op"))
        lowest[op] = min(lowest.get(op, math.inf), share(p, d))
    ops = sorted(lowest, key=lambda op: lowest[op])
    section = charts.BarSection("operator, slowest first", ops)
    for op in ops:
        bars = []
        for d, label in zip(devices, labels, strict=True):
            p = next((p for dd, _pr, p in points if dd == d and
                      str(p.get("params", {}).get("op")) == op), None)
            if p is None:
                bars.append(charts.Bar(None, f"{label} · {op}: not run", note="—"))
                continue
            bw = _value(p, "bytes_per_s")
            pct = _value(p, "pct_of_peak")
            value = pct / 100 if use_pct and pct is not None else (
                bw / best[d] if not use_pct and bw and best[d] else None)
            bars.append(charts.Bar(value, f"{label} · {op}: {format_value(bw, 'B/s', 3)}"
                                   + (f", {pct:.1f} % of the spec bandwidth" if pct else ""),
                                   note="n/a"))
        section.bars[op] = bars
    what = "% of the spec sheet's memory bandwidth" if use_pct else \
        "achieved bandwidth relative to the device's fastest long-tail operator"
    svg = charts.bar_chart([section], labels, f"Long-tail operators: {what}",
                           y_label="bandwidth")
    fig = Figure("function-longtail-chart", "Long tail against memory bandwidth", svg,
                 f"Each bar: {what}.", name="function-longtail")
    return table, fig, notes


def build_function_views(analysis: Analysis) -> FunctionViews:
    runs = _operator_runs(analysis)
    problems, bad, matrix, ops = matrix_figures(analysis, runs)
    longtail, longtail_chart, notes = longtail_views(analysis)
    return FunctionViews(support=support_table(analysis, runs),
                         support_chart=support_figure(analysis, runs), problems=problems,
                         problem_count=bad, matrix=matrix, operators=ops,
                         models=models_table(analysis), block=block_table(analysis),
                         longtail=longtail, longtail_chart=longtail_chart, notes=notes)
