"""Operator function: does every catalogued operator run on the device and give the right result,
in every dtype, forward and backward? (docs/function.md)

Each case is one operator call from the catalogue (``bench/function/catalogue.yaml``) in one
dtype variant, run on the device and on the CPU reference with the same seeded inputs, in
worker processes so a crash loses nothing else (``bench.function.isolate``). The result holds
the full table of passes with their class and errors, the class of each operator per dtype
(its worst pass) and the support rate per dtype: the share of the operators a dtype applies to
whose every pass was right on the device.

Items are cases; the timed window is the whole pass (its throughput says how long a pass
takes, nothing about the device's speed).
"""

from __future__ import annotations

import time
from typing import Any

from bench.documents import (
    CaseItem,
    CaseRow,
    Params,
    RepeatResult,
    SupportRate,
    WorkerRow,
)
from bench.errors import UserError
from bench.function.catalogue import CATALOGUE_PATH, VARIANTS, load
from bench.function.compare import CLASSES, tolerances_info
from bench.function.isolate import run_isolated
from bench.function.worker import Case
from bench.results import metric
from bench.workload import Workload, register

# Worst first: an operator's class in a dtype is the worst class of its passes.
SEVERITY = ("crash", "unsupported", "wrong", "cpu_fallback", "pass", "skipped")


def operator_class(classes: list[str]) -> str:
    """The worst of an operator's pass classes (skipped only when nothing else ran)."""
    for cls in SEVERITY:
        if cls in classes:
            return cls
    return "skipped"


def support(matrix: dict[str, dict[str, str]], variants: list[str]) -> dict[str, SupportRate]:
    """Per dtype: operators tested, count per class, and the support rate (% pass).

    Skipped operators (no reference here) are left out of the rate's denominator."""
    out = {}
    for v in variants:
        classes = [row[v] for row in matrix.values() if v in row]
        counts = {cls: classes.count(cls) for cls in CLASSES}
        judged = len(classes) - counts["skipped"]
        out[v] = {"operators": len(classes), **counts,
                  "rate_pct": 100.0 * counts["pass"] / judged if judged else None}
    return out


def select_cases(catalogue: Any, variants: list[str], calls: str,
                 ops: list[str] | None) -> list[Case]:
    """The cases of a pass: per operator and dtype the smallest call (``calls: smallest``) or
    every kept call offering it (``calls: all``)."""
    cases: list[Case] = []
    wanted = set(ops) if ops else None
    for entry in catalogue.entries:
        if wanted is not None and entry.op not in wanted:
            continue
        for variant in variants:
            chosen = [(i, c) for i, c in enumerate(entry.calls) if variant in c.variants]
            if calls == "smallest":
                chosen = chosen[:1]
            cases += [Case(len(cases) + k, entry.op, i, variant)
                      for k, (i, _c) in enumerate(chosen)]
    return cases


@register
class OperatorFunction(Workload):
    name = "operator-function"
    description = ("every catalogued ATen operator in fp32/fp16/bf16/int8, forward and "
                   "backward, against the CPU reference: support rate per dtype, full table")
    group = "function"
    modes = ("infer",)
    item_unit = "cases"
    configs = {
        "small": {"calls": "smallest", "variants": list(VARIANTS), "ops": None,
                  "case_timeout_s": 60.0},
        "full": {"calls": "all", "variants": list(VARIANTS), "ops": None,
                 "case_timeout_s": 300.0},
    }

    @classmethod
    def validate_params(cls, params: Params) -> None:
        if params["calls"] not in ("smallest", "all"):
            raise UserError(f"calls is {params['calls']!r}.", "Use smallest or all.")
        bad = [v for v in params["variants"] if v not in VARIANTS]
        if bad or not params["variants"]:
            raise UserError(f"variants {params['variants']!r} are not a list of "
                            f"{', '.join(VARIANTS)}.", "Write e.g. variants: [fp32, fp16].")
        if params["ops"] is not None and not (isinstance(params["ops"], list) and all(
                isinstance(o, str) for o in params["ops"])):
            raise UserError(f"ops is {params['ops']!r}.",
                            "Give null (every operator) or a list like [aten.gelu.default].")
        if not isinstance(params["case_timeout_s"], int | float) or params["case_timeout_s"] <= 0:
            raise UserError(f"case_timeout_s is {params['case_timeout_s']!r}.",
                            "Give the seconds a pass may take before it counts as a hang.")

    def setup(self) -> None:
        self.validate_params(self.params)
        self.catalogue = load()
        unknown = sorted(set(self.params["ops"] or []) - set(self.catalogue.by_op))
        if unknown:
            raise UserError(f"operator(s) {', '.join(unknown)} are not in the catalogue.",
                            "Name catalogued overloads (bench/function/catalogue.yaml), e.g. "
                            "aten.gelu.default.")
        self.cases = select_cases(self.catalogue, list(self.params["variants"]),
                                  self.params["calls"], self.params["ops"])
        self.extra.update(catalogue=self.catalogue.summary(), cases=len(self.cases))

    def measure(self) -> RepeatResult:
        ctx = self.ctx

        def progress(done: int, total: int, case: CaseItem) -> None:
            ctx.progress({"phase": "point", "message":
                          f"case {done + 1}/{total}: {case['op']} {case['variant']}"})

        start_wall, start = time.time(), time.monotonic()
        run = run_isolated([c.as_dict() for c in self.cases], "bench.function.worker",
                           {"vendor": ctx.backend.vendor, "catalogue": str(CATALOGUE_PATH),
                            "seed": ctx.seed}, float(self.params["case_timeout_s"]),
                           progress=progress)
        end = time.monotonic()
        rows = self._rows(run.rows)
        matrix: dict[str, dict[str, str]] = {}
        for row in rows:
            matrix.setdefault(row["op"], {}).setdefault(row["variant"], [])
        classes: dict[tuple[str, str], list[str]] = {}
        for row in rows:
            classes.setdefault((row["op"], row["variant"]), []).append(row["class"])
        for (op, variant), found in classes.items():
            matrix[op][variant] = operator_class(found)
        variants = [v for v in self.params["variants"] if any(v in m for m in matrix.values())]
        rates = support(matrix, variants)
        metrics = {f"support_rate_{v}_pct": metric(rates[v]["rate_pct"], "%",
                                                   "no operator could be judged")
                   for v in variants}
        for cls in CLASSES:
            metrics[f"passes_{cls}"] = metric(sum(r["class"] == cls for r in rows), "passes")
        metrics["operators_tested"] = metric(len(matrix), "operators")
        duration = end - start
        return {
            "window": {"start_mono": start, "end_mono": end, "start_wall": start_wall,
                       "end_wall": start_wall + duration, "duration_s": duration},
            "iterations": 1, "items": len(self.cases), "latencies_s": [duration],
            "throughput_items_per_s": len(self.cases) / duration if duration > 0 else 0.0,
            "metrics": metrics,
            "function": {"kind": "operators", "catalogue": self.catalogue.summary(),
                         "tolerances": tolerances_info(),
                         "selection": {k: self.params[k] for k in ("calls", "variants", "ops")},
                         "workers": run.workers, "crashes": run.crashes,
                         "support": rates, "matrix": matrix, "cases": rows},
        }

    def _rows(self, raw: list[WorkerRow]) -> list[CaseRow]:
        """Rows without the worker's bookkeeping; a placeholder backward row only where the
        call has a backward pass."""
        out = []
        by_op = self.catalogue.by_op
        for row in raw:
            if row.pop("only_if_backward", False) and \
                    not by_op[row["op"]].calls[row["call"]].backward:
                continue
            row.pop("case", None)
            if isinstance(row.get("seconds"), float):
                row["seconds"] = round(row["seconds"], 6)
            out.append(row)
        return sorted(out, key=lambda r: (r["op"], VARIANTS.index(r["variant"]), r["call"],
                                          r["pass"] != "forward"))
