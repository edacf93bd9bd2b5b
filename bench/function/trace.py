"""Which ATen operators a workload executes: a ``TorchDispatchMode`` that records every call.

The recorder sees each operator call below autograd (so a training step's backward kernels
and optimiser updates are seen too) and keeps, per operator overload: how often it ran, in
which phase (``forward``: called by the program; ``backward``: called by the autograd engine),
whether the forward call was differentiated (grad mode on and an input requiring grad: its
backward is then part of training), where it was seen (``resnet/train``), the distinct
argument forms seen (shapes and dtypes, capped) and the ``KEEP`` smallest calls with their
arguments (``bench.function.args``), which the operator-function test replays.

``bench.tools.function_catalogue.trace_workload`` runs a workload once, at its small
configuration (``first_point_params``), on the CPU, inside the recorder: setup untimed and
unrecorded, then one iteration of its own measurement (grids cut to their first point). That
part needs the workload registry and the suites, so it is not here: this package is imported
by the workloads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench.documents import Params
from bench.function import args as argspec

KEEP = 3  # replayable calls kept per operator: the smallest (by storage elements)
# A call this large is kept only while the operator has no smaller one (a replay of it would
# cost more than the rest of the catalogue).
LARGE_ELEMENTS = 1 << 22
SHAPES_MAX = 12  # distinct argument forms listed per operator


@dataclass
class Call:
    """One recorded call: arguments as data (``bench.function.args.encode``)."""

    args: list[Any]
    kwargs: dict[str, Any]
    elements: int
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"args": self.args, "kwargs": self.kwargs, "elements": self.elements,
                "source": self.source}


@dataclass
class OpUse:
    """What the recorder learnt about one operator overload."""

    op: str
    calls: int = 0
    phases: set[str] = field(default_factory=set)
    grad: bool = False
    sources: set[str] = field(default_factory=set)
    shapes: list[str] = field(default_factory=list)
    kept: dict[str, Call] = field(default_factory=dict)  # describe-key -> call
    unrecordable: str | None = None

    def merge(self, other: OpUse) -> None:
        self.calls += other.calls
        self.phases |= other.phases
        self.grad = self.grad or other.grad
        self.sources |= other.sources
        for s in other.shapes:
            if s not in self.shapes and len(self.shapes) < SHAPES_MAX:
                self.shapes.append(s)
        for key, call in other.kept.items():
            _keep(self.kept, key, call)
        if not self.kept and other.unrecordable:
            self.unrecordable = other.unrecordable


def _keep(kept: dict[str, Call], key: str, call: Call) -> None:
    if key in kept:
        return
    kept[key] = call
    if len(kept) > KEEP:
        largest = max(kept, key=lambda k: (kept[k].elements, k))
        del kept[largest]


def shape_text(described: Any) -> str:
    """``float32[2, 3] int64[5] 1 True``: a call's argument form, compactly."""
    parts = []
    for item in described if isinstance(described, list) else [described]:
        if isinstance(item, dict) and "T" in item:
            t = item["T"]
            parts.append(f"{t['dtype']}{t['shape']}" + ("*" if "stride" in t else ""))
        elif isinstance(item, list):
            parts.append("[" + shape_text(item) + "]")
        elif isinstance(item, dict):
            parts.append(str(next(iter(item.values()))))
        else:
            parts.append(repr(item))
    return " ".join(parts)


# -- backend-specific kernels ----------------------------------------------------------------
# The CPU dispatches some portable operators straight to its own kernels (outside inference
# mode): such a call is recorded as the portable operator, which every device implements its
# own way, so a device is never asked for the CPU's kernel.
def _sdpa_for_cpu(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    q, k, v, *rest = args
    dropout_p = rest[0] if rest else 0.0
    is_causal = rest[1] if len(rest) > 1 else False
    return ((q, k, v, kwargs.get("attn_mask"), dropout_p, is_causal),
            {"scale": kwargs.get("scale")})


def _mkldnn_lstm_layer(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """One layer of the CPU's LSTM as ``aten.lstm.input`` with one layer. The layer's input
    is time-major whatever the module's ``batch_first`` (the flag it passes on is ignored)."""
    (x, w_ih, w_hh, b_ih, b_hh, hx, cx, reverse, _batch_sizes, _mode, _hidden, _layers,
     has_biases, _bidirectional, _batch_first, train) = args
    if reverse:
        raise argspec.Unrecordable("a reversed (bidirectional) LSTM layer is not translated")
    params = [w_ih, w_hh, b_ih, b_hh] if has_biases else [w_ih, w_hh]
    return ((x, [hx.unsqueeze(0), cx.unsqueeze(0)], params, has_biases, 1, 0.0, train, False,
             False), {})


PORTABLE: dict[str, tuple[str, Any]] = {
    "aten._scaled_dot_product_flash_attention_for_cpu.default":
        ("aten.scaled_dot_product_attention.default", _sdpa_for_cpu),
    "aten.mkldnn_rnn_layer.default": ("aten.lstm.input", _mkldnn_lstm_layer),
}


class OpRecorder(TorchDispatchMode):
    """Records every ATen call made while active (see the module docstring).

    ``translated`` maps each backend-specific operator met to the portable one it was
    recorded as (``PORTABLE``)."""

    def __init__(self, source: str = "") -> None:
        super().__init__()
        self.source = source
        self.uses: dict[str, OpUse] = {}
        self.translated: dict[str, str] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        self._record(func, args, kwargs)
        return func(*args, **kwargs)

    def _record(self, func: Any, args: Any, kwargs: dict[str, Any]) -> None:
        name = str(func)
        if name in PORTABLE:
            portable, translate = PORTABLE[name]
            self.translated[name] = portable
            try:
                args, kwargs = translate(tuple(args), kwargs)
            except argspec.Unrecordable:
                return
            name = portable
        use = self.uses.get(name)
        if use is None:
            use = self.uses[name] = OpUse(name)
        use.calls += 1
        use.sources.add(self.source)
        backward = torch._C._current_autograd_node() is not None
        use.phases.add("backward" if backward else "forward")
        tensors = argspec.flat_tensors([args, kwargs])
        if not backward and torch.is_grad_enabled() and any(
                t.requires_grad for t in tensors if t.is_floating_point()):
            use.grad = True
        try:
            described = [argspec.describe(list(args)),
                         {k: argspec.describe(v) for k, v in kwargs.items()}]
        except argspec.Unrecordable as exc:
            use.unrecordable = str(exc)
            return
        key = json.dumps(described, sort_keys=True)
        if key in use.kept:
            return
        text = shape_text(described[0])
        if text not in use.shapes and len(use.shapes) < SHAPES_MAX:
            use.shapes.append(text)
        elements = sum(argspec.storage_elements(t) for t in argspec.tensors_in(described))
        if use.kept and (elements >= LARGE_ELEMENTS or (
                len(use.kept) >= KEEP and elements >= max(c.elements
                                                          for c in use.kept.values()))):
            return
        try:
            encoded = [argspec.encode(list(args)), {k: argspec.encode(v)
                                                    for k, v in kwargs.items()}]
        except argspec.Unrecordable as exc:
            use.unrecordable = str(exc)
            return
        _keep(use.kept, key, Call(encoded[0], encoded[1], elements, self.source))


@contextmanager
def recording(recorder: OpRecorder, source: str) -> Iterator[OpRecorder]:
    recorder.source = source
    with recorder:
        yield recorder


# -- workloads ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """One traced run: a workload in a mode and precision, at its small configuration."""

    workload: str
    mode: str
    precision: str = "fp32"

    @property
    def source(self) -> str:
        suffix = "" if self.precision == "fp32" else f"/{self.precision}"
        return f"{self.workload}/{self.mode}{suffix}"

    def as_dict(self) -> dict[str, str]:
        return {"workload": self.workload, "mode": self.mode, "precision": self.precision}


MODEL_GROUPS = ("cv", "nlp", "llm")


def first_point_params(params: Params) -> dict[str, Any]:
    """A grid workload's parameters cut to its first point (one generation is enough)."""
    p = dict(params)
    if "io_tokens" in p:
        p["batch_sizes"] = p["batch_sizes"][:1]
        p["io_tokens"] = p["io_tokens"][:1]
        i, o = p["io_tokens"][0]
        p["reference_point"] = {"batch": p["batch_sizes"][0], "input_tokens": i,
                                "output_tokens": o}
    if "resolutions" in p:
        p["batch_sizes"] = p["batch_sizes"][:1]
        p["resolutions"] = p["resolutions"][:1]
        p["reference_point"] = {"batch": p["batch_sizes"][0], "resolution": p["resolutions"][0]}
    return p
