"""Operator sweeps as in the Ascend operator-benchmarking paper: fully connected, 2-D
convolution and recurrent layers over a grid of shapes, forward and backward.

Every grid combination becomes one point per pass (``forward``; in ``train`` mode also
``backward``) with the time per call, achieved FLOP/s, % of the precision's peak, arithmetic
intensity (the roofline point, bench.micro.formulas) and the exact FLOP and byte counts, or the
failure class (``oom``, ``unsupported``, ``error``) when the combination does not run. The full
configurations are the paper's protocol: 10 warm-up and 100 timed iterations per point
(micro-full suite rules); the convolution grid is 3^5 = 243 combinations of batch, input size,
input channels, output channels and kernel 1/3/5.

Layers are built without bias (exact FLOP counts); convolutions use stride 1 and "same" padding
(kernel // 2). ``infer`` mode times the forward pass under ``torch.inference_mode``; ``train``
times the forward pass with autograd recording, and the backward pass alone
(``torch.autograd.grad`` of input and weights, graph retained, so nothing accumulates).
"""

from __future__ import annotations

import itertools
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from bench.documents import Params, RepeatResult
from bench.errors import Unsupported
from bench.micro import formulas
from bench.micro.peaks import device_peaks, pct_metric
from bench.micro.precision import DTYPES, check_precision, elem_bytes, set_tf32
from bench.micro.sweep import (
    Point,
    best_point,
    failed_point,
    progress_message,
    release_memory,
    run_point,
    sweep_measurement,
    time_calls,
)
from bench.results import metric
from bench.workload import Workload, register

PASSES = ("forward", "backward")


@dataclass
class Built:
    """One combination built on the device: the layer, its input and its counts per pass."""

    module: torch.nn.Module
    inputs: torch.Tensor
    flop: dict[str, int]
    nbytes: dict[str, int]
    output: Callable[[Any], torch.Tensor] = lambda y: y


class OperatorSweep(Workload):
    """The shared sweep: grid expansion, per-pass timing, entry metrics."""

    group = "micro"
    modes = ("infer", "train")
    item_unit = "FLOP"
    grid: ClassVar[tuple[str, ...]]  # params that are lists: the grid's axes, in order

    @abstractmethod
    def build(self, combo: Params) -> Built:
        """Build the layer and input of one combination on the device (not timed)."""

    def combos(self) -> list[Params]:
        axes = []
        for key in self.grid:
            values = self.params[key]
            if not isinstance(values, list) or not values:
                raise ValueError(f"{self.name}: parameter {key} must be a non-empty list of "
                                 f"values, got {values!r}")
            axes.append(values)
        return [dict(zip(self.grid, values, strict=True))
                for values in itertools.product(*axes)]

    def setup(self) -> None:
        backend = self.ctx.backend
        precision = self.ctx.precision
        if precision == "int8":
            raise Unsupported("the operator sweeps run in floating point (fp32, tf32, fp16, "
                              "bf16); int8 layers need quantisation, which they do not build")
        check_precision(backend, precision)
        self.dtype = DTYPES[precision]
        self.elem = elem_bytes(precision)
        self.extra["tf32"] = set_tf32(backend, precision == "tf32")
        if backend.device_type == "cuda":
            torch.backends.cudnn.benchmark = True
            self.extra["cudnn_benchmark"] = True
        self.passes = PASSES if self.ctx.mode == "train" else PASSES[:1]
        self.peaks = device_peaks(backend)
        self.extra["reference"] = self.peaks.info()
        self.extra["combinations"] = len(self.combos())

    def _time_pass(self, built: Built, combo: Params, which: str) -> Point:
        x, module = built.inputs, built.module
        sync, rules = self.ctx.backend.synchronize, self.ctx.rules
        flop = built.flop[which]
        if which == "forward" and self.ctx.mode == "infer":
            with torch.inference_mode():
                timing = time_calls(lambda: module(x), sync, rules, flop)
        elif which == "forward":
            timing = time_calls(lambda: module(x), sync, rules, flop)
        else:
            y = built.output(module(x))
            grad = torch.randn_like(y)
            wrt = [x, *module.parameters()]
            timing = time_calls(
                lambda: torch.autograd.grad(y, wrt, grad, retain_graph=True), sync, rules, flop)
        seconds = timing.seconds_per_call
        achieved = flop / seconds
        peak, reason = self.peaks.peak_flops(self.ctx.precision)
        return Point(params={**combo, "pass": which}, timing=timing, metrics={
            "flop_per_s": metric(achieved, "FLOP/s"),
            "pct_of_peak": pct_metric(achieved, peak, reason),
            "arithmetic_intensity": metric(
                formulas.arithmetic_intensity(flop, built.nbytes[which]), "FLOP/B"),
            "time_s": metric(seconds, "s"),
            "flop": metric(flop, "FLOP"),
            "bytes": metric(built.nbytes[which], "B"),
            "throughput_items_per_s": metric(achieved, "FLOP/s"),
        })

    def measure(self) -> RepeatResult:
        backend = self.ctx.backend
        grid = self.combos()
        points: list[Point] = []
        for i, combo in enumerate(grid):
            progress_message(self.ctx, i, len(grid),
                             " ".join(f"{k}={v}" for k, v in combo.items()))
            try:
                built = self.build(combo)
            except Exception as exc:
                points += [failed_point({**combo, "pass": p}, exc, backend)
                           for p in self.passes]
                release_memory(backend, collect=True)
                continue
            for which in self.passes:
                points.append(run_point(
                    {**combo, "pass": which},
                    lambda b=built, c=combo, w=which: self._time_pass(b, c, w), backend))
            del built
            release_memory(backend)
        best = best_point(points, "flop_per_s")
        peak, reason = self.peaks.peak_flops(self.ctx.precision)
        metrics = {"peak_flop_per_s": metric(peak, "FLOP/s", reason)}
        for status in ("ok", "oom", "unsupported", "error"):
            metrics[f"points_{status}"] = metric(
                sum(p.status == status for p in points), "points")
        if best is not None:
            metrics["flop_per_s"] = dict(best.metrics["flop_per_s"])
            metrics["pct_of_peak"] = dict(best.metrics["pct_of_peak"])
            self.extra["best_point"] = best.params
        return sweep_measurement(points, best, metrics)


def _randn(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device,
           grad: bool) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype, device=device).requires_grad_(grad)


@register
class FullyConnectedSweep(OperatorSweep):
    name = "op-fc"
    description = "fully connected layer sweep (batch x in x out), forward/backward roofline"
    grid = ("batch", "in_features", "out_features")
    configs = {
        "small": {"batch": [8, 32], "in_features": [64, 256], "out_features": [64, 256]},
        "full": {"batch": [64, 512, 4096], "in_features": [1024, 4096, 8192],
                 "out_features": [1024, 4096, 8192]},
    }

    def build(self, combo: Params) -> Built:
        b, i, o = combo["batch"], combo["in_features"], combo["out_features"]
        dev, train = self.ctx.device, self.ctx.mode == "train"
        module = torch.nn.Linear(i, o, bias=False).to(dev, self.dtype).requires_grad_(train)
        x = _randn((b, i), self.dtype, dev, train)
        return Built(module, x, flop={
            p: formulas.linear_flop(b, i, o, backward=p == "backward") for p in PASSES},
            nbytes={p: formulas.linear_bytes(b, i, o, self.elem, backward=p == "backward")
                    for p in PASSES})


@register
class ConvolutionSweep(OperatorSweep):
    name = "op-conv"
    description = "2-D convolution sweep (batch x size x in x out x kernel 1/3/5: 243 at full)"
    grid = ("batch", "size", "in_channels", "out_channels", "kernel")
    configs = {
        "small": {"batch": [2], "size": [8, 16], "in_channels": [4, 8], "out_channels": [8],
                  "kernel": [1, 3, 5]},
        "full": {"batch": [1, 16, 64], "size": [14, 28, 56], "in_channels": [64, 128, 256],
                 "out_channels": [64, 128, 256], "kernel": [1, 3, 5]},
    }

    def build(self, combo: Params) -> Built:
        b, s, k = combo["batch"], combo["size"], combo["kernel"]
        cin, cout = combo["in_channels"], combo["out_channels"]
        dev, train = self.ctx.device, self.ctx.mode == "train"
        pad = k // 2
        module = torch.nn.Conv2d(cin, cout, k, stride=1, padding=pad, bias=False)
        module = module.to(dev, self.dtype).requires_grad_(train)
        x = _randn((b, cin, s, s), self.dtype, dev, train)
        return Built(module, x, flop={
            p: formulas.conv2d_flop(b, cin, cout, s, s, k, 1, pad, backward=p == "backward")
            for p in PASSES}, nbytes={
            p: formulas.conv2d_bytes(b, cin, cout, s, s, k, self.elem, 1, pad,
                                     backward=p == "backward") for p in PASSES})


@register
class RecurrentSweep(OperatorSweep):
    name = "op-rnn"
    description = "recurrent layer sweep (LSTM/GRU/RNN: batch x sequence x hidden)"
    grid = ("batch", "seq_len", "hidden_size")
    configs = {
        "small": {"cell": "lstm", "layers": 1, "input_size": None, "batch": [4, 16],
                  "seq_len": [8], "hidden_size": [32, 64]},
        "full": {"cell": "lstm", "layers": 1, "input_size": None, "batch": [16, 64, 256],
                 "seq_len": [32, 128, 512], "hidden_size": [256, 512, 1024]},
    }
    CELLS: ClassVar[dict[str, Callable[..., torch.nn.Module]]] = {
        "lstm": torch.nn.LSTM, "gru": torch.nn.GRU,
        "rnn_tanh": lambda *a, **k: torch.nn.RNN(*a, nonlinearity="tanh", **k),
        "rnn_relu": lambda *a, **k: torch.nn.RNN(*a, nonlinearity="relu", **k),
    }

    def setup(self) -> None:
        if self.params["cell"] not in self.CELLS:
            raise ValueError(f"op-rnn: cell must be one of {', '.join(self.CELLS)}, "
                             f"got {self.params['cell']!r}")
        super().setup()
        self.extra["input_size"] = self.params["input_size"] or "hidden_size"

    def build(self, combo: Params) -> Built:
        b, t, h = combo["batch"], combo["seq_len"], combo["hidden_size"]
        cell, layers = self.params["cell"], self.params["layers"]
        i = self.params["input_size"] or h
        dev, train = self.ctx.device, self.ctx.mode == "train"
        module = self.CELLS[cell](i, h, num_layers=layers, bias=False)
        module = module.to(dev, self.dtype).requires_grad_(train)
        x = _randn((t, b, i), self.dtype, dev, train)
        return Built(module, x, output=lambda y: y[0], flop={
            p: formulas.rnn_flop(cell, b, t, i, h, layers, backward=p == "backward")
            for p in PASSES}, nbytes={
            p: formulas.rnn_bytes(cell, b, t, i, h, self.elem, layers, backward=p == "backward")
            for p in PASSES})
