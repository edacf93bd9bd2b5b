"""Model function: every model workload's outputs (inference) and one training step's gradients
(training) on the device against the CPU reference, in one result (docs/function.md).

Each model workload is built as its benchmark entry builds it (its configuration and default
precision, same seed, so the same weights and synthetic inputs) and checked by
``bench.function.model``; a workload that cannot be built here is recorded with why
(``not_checked``: unsupported, out of memory) instead of stopping the others. The benchmark
entries of the cv, nlp and llm suites run the same check on their own result (run rule
``function_check``), which is what withholds a wrong device's performance score.
"""

from __future__ import annotations

import gc
import time

from bench.documents import ModelCheck, Params, RepeatResult
from bench.errors import Unsupported, UserError
from bench.function.model import NORM_TOLERANCE, workload_check
from bench.function.trace import MODEL_GROUPS, first_point_params
from bench.results import metric
from bench.rules import RunRules
from bench.workload import Workload, WorkloadContext, all_workloads, register

STATUSES = ("pass", "fail", "not_checked", "error")


def model_workloads() -> dict[str, type[Workload]]:
    return {n: c for n, c in all_workloads().items() if c.group in MODEL_GROUPS}


@register
class ModelFunction(Workload):
    name = "model-function"
    description = ("every model workload's outputs and training gradients on the device "
                   "against the CPU reference (same weights and inputs)")
    group = "function"
    modes = ("infer",)
    item_unit = "models"
    configs = {
        "small": {"workloads": None, "modes": ["infer", "train"], "config": "small",
                  "precision": None},
        "full": {"workloads": None, "modes": ["infer", "train"], "config": "full",
                 "precision": None},
    }

    @classmethod
    def validate_params(cls, params: Params) -> None:
        known = model_workloads()
        names = params["workloads"]
        if names is not None and (not isinstance(names, list) or
                                  any(n not in known for n in names)):
            raise UserError(f"workloads {names!r} are not model workloads.",
                            f"Give null (all) or a list of: {', '.join(known)}.")
        if not params["modes"] or any(m not in ("infer", "train") for m in params["modes"]):
            raise UserError(f"modes {params['modes']!r}.", "Give a list of infer and train.")
        if params["config"] not in ("small", "full"):
            raise UserError(f"config {params['config']!r}.", "Use small or full.")

    def setup(self) -> None:
        self.validate_params(self.params)
        known = model_workloads()
        names = self.params["workloads"] or list(known)
        self.targets = [(n, m) for n in names for m in self.params["modes"]
                        if m in known[n].modes]
        self.extra["checked"] = [f"{n}/{m}" for n, m in self.targets]

    def _check(self, name: str, mode: str) -> ModelCheck:
        cls = model_workloads()[name]
        params = first_point_params(cls.configs[self.params["config"]])
        precision = self.params["precision"] or cls.default_precision
        ctx = WorkloadContext(backend=self.ctx.backend, mode=mode, params=params,
                              precision=precision, seed=self.ctx.seed,
                              rules=RunRules(warmup_iters=0, min_iters=1, min_duration_s=0.0))
        base = {"kind": "model", "workload": name, "mode": mode, "precision": precision,
                "tolerance": {"norm_rel": NORM_TOLERANCE.get(precision, NORM_TOLERANCE["fp32"])}}
        workload = None
        try:
            workload = cls(ctx)
            workload.setup()
            check = workload_check(workload)
        except Unsupported as exc:
            check = {**base, "status": "not_checked", "reason": f"unsupported: {exc}"}
        except Exception as exc:
            status = "not_checked" if self.ctx.backend.is_oom(exc) else "error"
            check = {**base, "status": status,
                     "reason": f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"}
        finally:
            del workload
            gc.collect()
            empty = getattr(getattr(self.ctx.backend, "module", None), "empty_cache", None)
            if callable(empty):
                empty()
        if check is None:
            check = {**base, "status": "not_checked", "reason": "the workload has no model"}
        return check

    def measure(self) -> RepeatResult:
        start_wall, start = time.time(), time.monotonic()
        checks = []
        for i, (name, mode) in enumerate(self.targets):
            self.ctx.progress({"phase": "point", "message":
                               f"model {i + 1}/{len(self.targets)}: {name} {mode}"})
            checks.append(self._check(name, mode))
        end = time.monotonic()
        duration = end - start
        metrics = {f"models_{s}": metric(sum(c["status"] == s for c in checks), "models")
                   for s in STATUSES}
        return {
            "window": {"start_mono": start, "end_mono": end, "start_wall": start_wall,
                       "end_wall": start_wall + duration, "duration_s": duration},
            "iterations": 1, "items": len(checks), "latencies_s": [duration],
            "throughput_items_per_s": len(checks) / duration if duration > 0 else 0.0,
            "metrics": metrics,
            "function": {"kind": "models", "checks": checks},
        }
