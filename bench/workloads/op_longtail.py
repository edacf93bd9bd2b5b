"""The long tail timed against the memory-bound limit (docs/function.md).

Each long-tail operator (``bench.function.longtail``) runs at ``elements`` elements of its main
input in the precision's dtype, timed like the other micro-benchmarks (bench.micro.sweep:
blocks of calls between two synchronisations). Such operators do little arithmetic per byte,
so their speed limit is memory: moving their compulsory bytes (every input read once, every
output written once) at the spec sheet's bandwidth takes ``bytes / bandwidth``; a point
records how far it stays from that limit (``time_over_memory_bound``: 1 is at the limit) and
its achieved bandwidth as % of the sheet's. Operators that do arithmetic also get a nominal
FLOP count (longtail.py) and so a point on the roofline.
"""

from __future__ import annotations

import statistics

import torch

from bench.documents import Metrics, Params, RepeatResult
from bench.errors import Unsupported, UserError
from bench.function.longtail import BY_NAME, LONG_TAIL, case_bytes, nominal_flop
from bench.micro import formulas
from bench.micro.peaks import device_peaks, pct_metric
from bench.micro.precision import DTYPES, check_precision
from bench.micro.sweep import (
    Point,
    best_point,
    progress_message,
    run_point,
    sweep_measurement,
    time_calls,
)
from bench.results import metric
from bench.workload import Workload, register

TIMED = [op.name for op in LONG_TAIL if op.timed]


@register
class LongTailOps(Workload):
    name = "op-longtail"
    description = ("long-tail operators (index/scatter/gather, sort/topk, norms, softmax, "
                   "activations, pooling, ...) timed against the memory-bound limit")
    group = "micro"
    modes = ("infer",)
    item_unit = "B"
    configs = {
        "small": {"ops": TIMED, "elements": [1 << 18]},
        "full": {"ops": TIMED, "elements": [1 << 22, 1 << 26]},
    }

    @classmethod
    def validate_params(cls, params: Params) -> None:
        unknown = [o for o in params["ops"] if o not in BY_NAME]
        if unknown or not params["ops"]:
            raise UserError(f"ops {unknown or params['ops']} are not long-tail operators.",
                            f"Use some of: {', '.join(BY_NAME)}.")
        sizes = params["elements"]
        if not sizes or any(not isinstance(n, int) or n < 1024 for n in sizes):
            raise UserError(f"elements {sizes!r}.", "Give sizes of at least 1024 elements.")

    def setup(self) -> None:
        precision = self.ctx.precision
        if precision in ("int8", "tf32"):
            raise Unsupported(f"the long-tail operators run in fp32, fp16 or bf16, not "
                              f"{precision}")
        check_precision(self.ctx.backend, precision)
        self.dtype = DTYPES[precision]
        self.peaks = device_peaks(self.ctx.backend)
        self.extra["reference"] = self.peaks.info()
        self.bandwidth, self.bandwidth_reason = self.peaks.peak("memory_bandwidth_bytes_per_s")

    def _point(self, op_name: str, n: int) -> Point:
        op = BY_NAME[op_name]
        backend = self.ctx.backend
        gen = torch.Generator().manual_seed(self.ctx.seed)
        case = op.build(n, self.dtype, self.ctx.device, gen)
        with torch.inference_mode():
            out = case()
            nbytes = case_bytes(case, out)
            flop = nominal_flop(op, case, out)
            del out
            timing = time_calls(case, backend.synchronize, self.ctx.rules, nbytes)
        seconds = timing.seconds_per_call
        achieved = nbytes / seconds
        metrics = {
            "time_s": metric(seconds, "s"),
            "bytes": metric(nbytes, "B"),
            "bytes_per_s": metric(achieved, "B/s"),
            "pct_of_peak": pct_metric(achieved, self.bandwidth, self.bandwidth_reason),
            "memory_bound_time_s": metric(nbytes / self.bandwidth if self.bandwidth else None,
                                          "s", self.bandwidth_reason),
            "time_over_memory_bound": metric(
                seconds / (nbytes / self.bandwidth) if self.bandwidth else None, "ratio",
                self.bandwidth_reason),
            "throughput_items_per_s": metric(achieved, "B/s"),
        }
        if flop > 0:
            metrics.update(flop=metric(flop, "FLOP"),
                           flop_per_s=metric(flop / seconds, "FLOP/s"),
                           arithmetic_intensity=metric(
                               formulas.arithmetic_intensity(flop, nbytes), "FLOP/B"))
        return Point(params={"op": op_name, "elements": n}, timing=timing, metrics=metrics)

    def measure(self) -> RepeatResult:
        grid = [(o, n) for n in self.params["elements"] for o in self.params["ops"]]
        points = []
        for i, (o, n) in enumerate(grid):
            progress_message(self.ctx, i, len(grid), f"{o} n={n}")
            points.append(run_point({"op": o, "elements": n},
                                    lambda o=o, n=n: self._point(o, n), self.ctx.backend))
        best = best_point(points, "bytes_per_s")
        metrics: Metrics = {
            "peak_memory_bandwidth_bytes_per_s": metric(self.bandwidth, "B/s",
                                                        self.bandwidth_reason)}
        for status in ("ok", "oom", "unsupported", "error"):
            metrics[f"points_{status}"] = metric(sum(p.status == status for p in points),
                                                 "points")
        ratios = [p.metrics["time_over_memory_bound"]["value"] for p in points
                  if p.status == "ok" and p.metrics["time_over_memory_bound"]["value"]]
        metrics["time_over_memory_bound_median"] = metric(
            statistics.median(ratios) if ratios else None, "ratio",
            self.bandwidth_reason or "no operator ran")
        if best is not None:
            metrics["bytes_per_s"] = dict(best.metrics["bytes_per_s"])
            metrics["pct_of_peak"] = dict(best.metrics["pct_of_peak"])
            self.extra["best_point"] = best.params
        return sweep_measurement(points, best, metrics)
