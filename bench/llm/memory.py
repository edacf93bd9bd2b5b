"""Will a grid point fit? The memory estimate and the precision policy (docs/llm.md).

The estimate is what generation holds at its peak, the end of the prefill: the weights, the
KV cache for the whole sequence (input + output tokens) and the prefill's transient
activations. It assumes a memory-efficient attention kernel (no seq x seq score matrix, as
SDPA's flash / memory-efficient kernels do); a real out-of-memory error is still caught and
recorded, so an optimistic estimate costs one failed attempt, never a crash. A point whose
estimate exceeds ``HEADROOM`` of the memory budget is skipped and recorded ``oom`` with the
estimate, so a 64 x 1024-token point is not attempted on a 24 GB card.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.llm.architectures import DecoderShape, decoder_parameter_count

GIB = 2**30
# Share of the budget tensors may use: the rest is the allocator's fragmentation, the
# runtime's context and the library workspaces (cuBLAS, cuDNN), which no estimate sees.
HEADROOM = 0.90
BYTES_PER_ELEMENT = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2}
LOGITS_BYTES = 4  # generation upcasts the last position's logits to fp32
# What to try, in order, when the requested precision does not fit or is not supported
# (the published evaluation fell back to fp16 on 24 GB cards).
FALLBACKS = {"fp32": ("bf16", "fp16"), "tf32": ("bf16", "fp16"), "bf16": ("fp16",),
             "fp16": ()}


@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.activation_bytes

    def describe(self) -> str:
        return (f"{self.total_bytes / GIB:.2f} GiB (weights {self.weights_bytes / GIB:.2f}, "
                f"KV cache {self.kv_cache_bytes / GIB:.2f}, activations "
                f"{self.activation_bytes / GIB:.2f})")


def kv_cache_bytes(s: DecoderShape, batch: int, tokens: int, element_bytes: int) -> int:
    """Keys and values of every layer for ``tokens`` positions of ``batch`` sequences."""
    return 2 * s.layers * batch * tokens * s.kv_heads * s.head_dim * element_bytes


def prefill_activation_bytes(s: DecoderShape, batch: int, input_tokens: int,
                             element_bytes: int) -> int:
    """Transient tensors of one layer's prefill, plus the last position's logits.

    Per token: the residual stream and its normed copy (2 x hidden), q/k/v (heads + 2 x
    kv_heads) x head_dim, and the MLP's gate, up and their product (3 x intermediate); the
    logits of the last position in fp32, twice (raw and processed).
    """
    per_token = 2 * s.hidden + (s.heads + 2 * s.kv_heads) * s.head_dim + 3 * s.intermediate
    return (batch * input_tokens * per_token * element_bytes
            + 2 * batch * s.vocab * LOGITS_BYTES)


def estimate_generation_memory(s: DecoderShape, batch: int, input_tokens: int,
                               output_tokens: int, precision: str) -> MemoryEstimate:
    b = BYTES_PER_ELEMENT[precision]
    return MemoryEstimate(
        weights_bytes=decoder_parameter_count(s) * b,
        kv_cache_bytes=kv_cache_bytes(s, batch, input_tokens + output_tokens, b),
        activation_bytes=prefill_activation_bytes(s, batch, input_tokens, b))


def usable_bytes(budget_bytes: int) -> int:
    return int(budget_bytes * HEADROOM)


def fits(estimate: MemoryEstimate, budget_bytes: int | None) -> bool:
    """Whether the estimate fits the budget's usable share (no budget known: assume it does)."""
    return budget_bytes is None or estimate.total_bytes <= usable_bytes(budget_bytes)


@dataclass(frozen=True)
class PrecisionChoice:
    requested: str
    used: str
    reason: str | None  # None when used == requested


def choose_precision(requested: str, supported: Sequence[str],
                     need_bytes: Callable[[str], int], budget_bytes: int | None
                     ) -> PrecisionChoice:
    """The precision to load the model in, and why it differs from the request.

    ``need_bytes(p)`` is the memory the smallest grid point needs at precision ``p``. The
    requested precision is kept when the device supports it and it fits; otherwise the first
    supported fallback that fits (fp32 -> bf16 -> fp16). When nothing fits, the most compact
    supported precision is used and the points will be recorded ``oom``.
    """
    candidates = [requested, *FALLBACKS.get(requested, ())]
    usable = [p for p in candidates if p in supported]
    if not usable:
        raise ValueError(f"the device supports none of {', '.join(candidates)}")
    reasons = []
    if requested not in supported:
        reasons.append(f"the device does not support {requested}")
    budget_text = (f"{usable_bytes(budget_bytes) / GIB:.2f} GiB usable of a "
                   f"{budget_bytes / GIB:.2f} GiB budget" if budget_bytes is not None else "")
    for p in usable:
        need = need_bytes(p)
        if budget_bytes is None or need <= usable_bytes(budget_bytes):
            if p == requested:
                return PrecisionChoice(requested, p, None)
            return PrecisionChoice(requested, p, "; ".join(reasons) + f": fell back to {p}")
        reasons.append(f"{p} needs {need / GIB:.2f} GiB for the smallest grid point "
                       f"> {budget_text}")
    last = usable[-1]
    return PrecisionChoice(requested, last, "; ".join(reasons)
                           + f": nothing fits, using the most compact ({last}); every point "
                           "that does not fit is recorded oom")
