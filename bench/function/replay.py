"""Replaying one catalogued call: the device side and the CPU reference, forward and backward.

Both sides get the same values (``bench.function.args.Rebuild``): the device in the variant's
dtype, the reference on the CPU in float64 (or the dtype the catalogue names where float64
has no kernel). The backward pass differentiates every floating-point input with the same
seeded output gradients on both sides (``torch.autograd.grad``); an in-place operator gets a
clone of its leaf, so autograd accepts the mutation.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import torch

from bench.function.args import Rebuild, dtype_of, flat_tensors, map_tensors


def resolve(op: str) -> Any:
    """``aten.add.Tensor`` -> ``torch.ops.aten.add.Tensor``."""
    namespace, packet, overload = op.split(".", 2)
    return getattr(getattr(getattr(torch.ops, namespace), packet), overload)


def is_inplace(op: str) -> bool:
    packet = op.split(".")[1]
    return (packet.endswith("_") and not packet.endswith("__")) or op.endswith(".out")


def case_seed(seed: int, op: str, index: int, variant: str) -> int:
    """A seed per (operator, call, variant): a case draws the same values whatever ran
    before it, so a re-run after a crash and a re-run months later see the same inputs."""
    return zlib.crc32(f"{seed}|{op}|{index}|{variant}".encode()) & 0x7FFFFFFF


@dataclass
class Side:
    args: list[Any]
    kwargs: dict[str, Any]
    leaves: list[torch.Tensor]


@dataclass
class Prepared:
    device: Side
    reference: Side


def prepare(call: dict[str, Any], variant: str, device: torch.device, seed: int,
            reference_dtype: str = "float64", grad: bool = False,
            creation: bool = False) -> Prepared:
    """Both sides' arguments of a recorded ``call`` (``{"args": [...], "kwargs": {...}}``)."""
    rebuild = Rebuild(variant, device, seed, dtype_of(reference_dtype), vary_dtype_args=creation)
    dev_args, ref_args = rebuild.build(call["args"])
    dev_kwargs, ref_kwargs = _build_kwargs(rebuild, call["kwargs"])
    dev = Side(dev_args, dev_kwargs, [])
    ref = Side(ref_args, ref_kwargs, [])
    if grad:
        for side in (dev, ref):
            side.args, side.kwargs = _with_leaves(side)
    return Prepared(dev, ref)


def _build_kwargs(rebuild: Rebuild, kwargs: dict[str, Any]) -> tuple[dict[str, Any],
                                                                      dict[str, Any]]:
    dev: dict[str, Any] = {}
    ref: dict[str, Any] = {}
    for key, value in kwargs.items():
        dev[key], ref[key] = rebuild.build(value)
    return dev, ref


def _with_leaves(side: Side) -> tuple[list[Any], dict[str, Any]]:
    """Every floating-point tensor argument becomes a leaf that requires grad."""
    def leaf(t: torch.Tensor) -> torch.Tensor:
        if not t.is_floating_point():
            return t
        x = t.detach().requires_grad_(True)
        side.leaves.append(x)
        return x
    return map_tensors(side.args, leaf), {k: map_tensors(v, leaf)
                                          for k, v in side.kwargs.items()}


def call_op(op: Any, side: Side, clone_leaves: bool = False) -> Any:
    """Run the operator on one side's arguments (leaves cloned for in-place operators)."""
    args, kwargs = side.args, side.kwargs
    if clone_leaves and side.leaves:
        ids = {id(t) for t in side.leaves}

        def clone(t: torch.Tensor) -> torch.Tensor:
            return t.clone() if id(t) in ids else t
        args = map_tensors(args, clone)
        kwargs = {k: map_tensors(v, clone) for k, v in kwargs.items()}
    return op(*args, **kwargs)


def differentiable_outputs(outputs: Any) -> list[torch.Tensor]:
    return [t for t in flat_tensors(outputs) if t.requires_grad]


def output_gradients(outputs: list[torch.Tensor], seed: int, device: torch.device
                     ) -> list[torch.Tensor]:
    """Seeded gradients for the outputs: normal values rounded to each output's dtype."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t.dtype).to(device)
            for t in outputs]


def backward(outputs: Any, leaves: list[torch.Tensor], grads: list[torch.Tensor]
             ) -> list[torch.Tensor | None]:
    outs = differentiable_outputs(outputs)
    if not outs:
        return [None] * len(leaves)
    return list(torch.autograd.grad(outs, leaves, grads, allow_unused=True))


def to_cpu(value: Any) -> Any:
    """Outputs moved to the host for comparison (Python numbers and None as they are)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu")
    if isinstance(value, list | tuple):
        return [to_cpu(v) for v in value]
    return value
