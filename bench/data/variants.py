"""Input variants for the audit's caching check (the run rule ``input_variants``).

A synthetic-data workload builds one batch on the device and every step reads the same
tensors. A device stack that recognised repeated inputs and returned cached results would
look faster than it is, so the audit re-runs a workload with ``input_variants: K`` and checks
that the same-input run is not markedly faster than the distinct-input one (in the spirit of
MLPerf's compliance tests).

Variant 0 is the original batch; variant ``j`` holds the same values in an order permuted by
a generator seeded from ``(seed, j)``. Shape, dtype, strides, device and the multiset of
values (so value ranges, token ids within the vocabulary, labels within the classes) are
unchanged, so a step costs what it did; only the content differs. Every tensor of variant
``j`` is permuted by its own generator with that seed, so tensors of one size (a batch's
token ids, token types and attention mask) get the same permutation and stay aligned
position by position.

The variants are built once, before any timed iteration: K copies of the inputs stay on the
device for the whole loop.
"""

from __future__ import annotations

from typing import Any

import torch

# Variant j of seed s uses generator seed (s << SEED_SHIFT) | j: distinct for every (s, j)
# with j below 2**SEED_SHIFT (far above the schema's maximum K) and s below 2**48.
SEED_SHIFT = 16


def variant_seed(seed: int, index: int) -> int:
    if not 0 <= index < 2**SEED_SHIFT:
        raise ValueError(f"variant index {index} is outside [0, {2**SEED_SHIFT})")
    return ((seed << SEED_SHIFT) | index) % 2**64  # a torch.Generator takes 64 bits


def permuted(tensor: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``tensor``'s values in a random order drawn from ``gen``: same shape, dtype, device
    and strides (a channels-last image stays channels-last, a sliced view keeps its row
    stride)."""
    with torch.no_grad():
        order = torch.randperm(tensor.numel(), generator=gen).to(tensor.device)
        values = tensor.reshape(-1)[order].view(tensor.shape)
        if any(stride == 0 and size > 1 for stride, size in zip(tensor.stride(), tensor.shape,
                                                                  strict=True)):
            # An expanded tensor repeats its values: the permuted ones no longer repeat, so
            # they need storage of their own in the tensor's memory format.
            out = torch.empty_like(tensor)
        else:
            out = torch.empty_strided(tensor.shape, tensor.stride(), dtype=tensor.dtype,
                                      device=tensor.device)
        return out.copy_(values)


def permuted_inputs(value: Any, gen_seed: int) -> Any:
    """``value`` (a tensor, or a dict, list or tuple of them) with every tensor permuted by
    a generator seeded with ``gen_seed``; anything else is kept as it is."""
    if isinstance(value, torch.Tensor):
        return permuted(value, torch.Generator(device="cpu").manual_seed(gen_seed))
    if isinstance(value, dict):
        return {k: permuted_inputs(v, gen_seed) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(permuted_inputs(v, gen_seed) for v in value)
    return value


def make_variants(value: Any, count: int, seed: int) -> list[Any]:
    """``count`` variants of ``value``: the original first, then its permutations."""
    if count < 1:
        raise ValueError(f"input variants must be at least 1, got {count}")
    return [value] + [permuted_inputs(value, variant_seed(seed, j)) for j in range(1, count)]


def variants_info(requested: int, attrs: list[str] | None = None,
                  reason: str | None = None) -> dict[str, Any]:
    """The ``input_variants`` record of the workload's info: which inputs varied, or why
    none did (then the run used its one batch, as a normal run does)."""
    if reason is not None:
        return {"requested": requested, "used": 1, "reason": reason}
    return {"requested": requested, "used": requested, "attrs": list(attrs or [])}
