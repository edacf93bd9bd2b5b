"""GEMM: achieved FLOP/s of square matrix products over a sweep of sizes, next to the peak.

One entry per precision (fp32, tf32, fp16, bf16, int8). The sizes grow until the device is
saturated; the result keeps every size as a point (FLOP/s, % of peak, arithmetic intensity, its
own telemetry window) and reports the best size and where the plateau starts. Inputs are
generated on the device (no host transfer), the output buffer is reused, and a block of GEMMs
is queued between two synchronisations (bench.micro.sweep), so the host never limits a large
GEMM: an H100 SXM reaches ~790 TFLOP/s bf16 this way at n >= 8192.

With the run rule ``input_variants`` K > 1 the calls cycle through K permuted copies of the
two operands (bench.data.variants), which holds K times their memory on the device.
"""

from __future__ import annotations

import itertools

import torch

from bench.documents import RepeatResult
from bench.micro import formulas
from bench.micro.peaks import device_peaks, pct_metric
from bench.micro.precision import DTYPES, check_precision, elem_bytes, set_tf32
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

PLATEAU_TOLERANCE = 0.05

# Kept importable from here, where it lived before bench.micro.formulas existed.
gemm_flop = formulas.gemm_flop


@register
class GemmWorkload(Workload):
    name = "gemm"
    description = "square matrix multiply over a sweep of sizes: FLOP/s and % of peak"
    group = "micro"
    modes = ("infer",)
    item_unit = "FLOP"
    varies_inputs = True  # its own measure() cycles input_variants copies
    configs = {
        "small": {"sizes": [256, 512]},
        "full": {"sizes": [256, 512, 1024, 2048, 4096, 6144, 8192, 12288, 16384]},
    }

    def setup(self) -> None:
        backend = self.ctx.backend
        self.precision = self.ctx.precision
        check_precision(backend, self.precision)
        sizes = self.params["sizes"]
        if not sizes or any(not isinstance(n, int) or n < 1 for n in sizes):
            raise ValueError(f"gemm: sizes must be positive integers, got {sizes!r}")
        self.extra["tf32"] = set_tf32(backend, self.precision == "tf32")
        self.extra["kernel"] = "torch._int_mm" if self.precision == "int8" else "torch.matmul"
        if self.precision == "int8":
            self.extra["op_unit"] = "int8 OP counted as FLOP (2 per multiply-add), as TOPS"
        self.peaks = device_peaks(backend)
        self.extra["reference"] = self.peaks.info()

    def _point(self, n: int) -> Point:
        dev, dtype = self.ctx.device, DTYPES[self.precision]
        if self.precision == "int8":
            a = torch.randint(-128, 128, (n, n), dtype=dtype, device=dev)
            # column-major B: the int8 tensor-core layout (the "TN" GEMM of int8 libraries)
            b = torch.randint(-128, 128, (n, n), dtype=dtype, device=dev).t()
            out = torch.empty(n, n, dtype=torch.int32, device=dev)
            mm, out_bytes = torch._int_mm, 4
        else:
            a = torch.randn(n, n, dtype=dtype, device=dev)
            b = torch.randn(n, n, dtype=dtype, device=dev)
            out = torch.empty(n, n, dtype=dtype, device=dev)
            mm, out_bytes = torch.matmul, None
        operands = self.make_input_variants((a, b))
        if len(operands) == 1:
            def call() -> None:
                mm(a, b, out=out)
        else:
            pairs = itertools.cycle(operands)

            def call() -> None:
                x, y = next(pairs)
                mm(x, y, out=out)

        flop = formulas.gemm_flop(n, n, n)
        nbytes = formulas.gemm_bytes(n, n, n, elem_bytes(self.precision), out_bytes)
        timing = time_calls(call, self.ctx.backend.synchronize, self.ctx.rules, flop)
        seconds = timing.seconds_per_call
        achieved = flop / seconds
        peak, reason = self.peaks.peak_flops(self.precision)
        return Point(params={"n": n}, timing=timing, metrics={
            "flop_per_s": metric(achieved, "FLOP/s"),
            "pct_of_peak": pct_metric(achieved, peak, reason),
            "arithmetic_intensity": metric(formulas.arithmetic_intensity(flop, nbytes),
                                           "FLOP/B"),
            "time_s": metric(seconds, "s"),
            "throughput_items_per_s": metric(achieved, "FLOP/s"),
        })

    def measure(self) -> RepeatResult:
        sizes = self.params["sizes"]
        self.record_input_variants(["a", "b"])
        points = []
        for i, n in enumerate(sizes):
            progress_message(self.ctx, i, len(sizes), f"n={n} {self.precision}")
            points.append(run_point({"n": n}, lambda n=n: self._point(n), self.ctx.backend))
        best = best_point(points, "flop_per_s")
        peak, reason = self.peaks.peak_flops(self.precision)
        metrics = {"peak_flop_per_s": metric(peak, "FLOP/s", reason)}
        if best is not None:
            achieved = best.metrics["flop_per_s"]["value"]
            metrics["flop_per_s"] = metric(achieved, "FLOP/s")
            metrics["pct_of_peak"] = pct_metric(achieved, peak, reason)
            ok = [p for p in points if p.status == "ok"]
            plateau = ok[formulas.plateau_index([p.metrics["flop_per_s"]["value"] for p in ok],
                                                PLATEAU_TOLERANCE)]
            self.extra.update(best_n=best.params["n"], plateau_n=plateau.params["n"],
                              plateau_tolerance=PLATEAU_TOLERANCE)
        return sweep_measurement(points, best, metrics)
