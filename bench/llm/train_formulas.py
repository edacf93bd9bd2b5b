"""The arithmetic of large-model training: small pure functions, tested against numbers worked
out by hand (tests/test_training.py).

- TGS (tokens per device per second), the chip evaluation template's training figure.
- Model FLOPs per token (6N plus the attention term, as PaLM's appendix B counts them) and MFU.
- The learning-rate schedule (linear warm-up, cosine decay to a floor): a function of the step
  alone, so a run resumed from a checkpoint continues on the same curve.
- The memory a training step needs per device, for choosing DDP or FSDP and for the
  reasoning in docs/training.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Bytes per parameter of mixed-precision training with AdamW: fp32 master weight (4), fp32
# gradient (4), Adam's first and second moments (4 + 4).
ADAMW_BYTES_PER_PARAM = 16
# Share of device memory a plan may use: the rest is the allocator's fragmentation, the
# runtime context, communication buffers and library workspaces.
USABLE_FRACTION = 0.9


def tgs(tokens_per_sample: int, global_batch: int, iteration_s: float, devices: int) -> float:
    """Tokens per device per second: tokens per sample x global batch / (iteration time x
    devices)."""
    if iteration_s <= 0 or devices <= 0:
        raise ValueError("iteration time and device count must be positive")
    return tokens_per_sample * global_batch / (iteration_s * devices)


def attention_flop_per_token(layers: int, attention_width: int, seq_len: int) -> float:
    """Training FLOPs of the attention products per token: scores QK^T and the weighted sum
    AV each cost 2 x seq x width per token and layer forward (4 together), backward twice
    that, so 12 x layers x width x seq. Full (non-causal) attention is counted, as PaLM does."""
    return 12.0 * layers * attention_width * seq_len


def train_flop_per_token(matmul_params: int, layers: int, attention_width: int, seq_len: int,
                         frozen_matmul_params: int = 0) -> float:
    """Model FLOPs of one trained token.

    Every weight matrix costs 2 FLOP per token forward and 2 for the input gradient; a trained
    one 2 more for its weight gradient: 6N for trained weights, 4N for frozen ones (LoRA's base
    model). ``matmul_params`` counts all weight matrices, trained and frozen (embedding
    look-ups are not products and are not counted; a tied output head is). Activation
    recomputation is not counted: model FLOPs, not hardware FLOPs.
    """
    trained = matmul_params - frozen_matmul_params
    return (6.0 * trained + 4.0 * frozen_matmul_params
            + attention_flop_per_token(layers, attention_width, seq_len))


def mfu_pct(flop_per_token: float, tokens_per_device_per_s: float, peak_flop_per_s: float
            ) -> float:
    """Model FLOPs utilisation: the model FLOPs one device does per second as % of its peak."""
    if peak_flop_per_s <= 0:
        raise ValueError("peak must be positive")
    return 100.0 * flop_per_token * tokens_per_device_per_s / peak_flop_per_s


@dataclass(frozen=True)
class LrSchedule:
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then cosine decay to
    ``peak x min_ratio`` at ``decay_steps``, constant after. Step 1 is the first update."""

    peak: float
    warmup_steps: int
    decay_steps: int
    min_ratio: float = 0.1

    def __post_init__(self) -> None:
        if self.peak <= 0 or self.warmup_steps < 0 or self.decay_steps <= self.warmup_steps:
            raise ValueError("need peak > 0, warmup_steps >= 0 and decay_steps > warmup_steps")
        if not 0 <= self.min_ratio <= 1:
            raise ValueError("min_ratio must be in [0, 1]")

    def lr(self, step: int) -> float:
        if step < 1:
            raise ValueError("steps count from 1")
        if step <= self.warmup_steps:
            return self.peak * step / self.warmup_steps
        if step >= self.decay_steps:
            return self.peak * self.min_ratio
        progress = (step - self.warmup_steps) / (self.decay_steps - self.warmup_steps)
        floor = self.peak * self.min_ratio
        return floor + (self.peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class TrainMemory:
    """Estimated bytes per device of one training step."""

    states_bytes: int  # weights, gradients and optimiser moments (sharded under FSDP)
    activation_bytes: int
    logits_bytes: int
    gathered_bytes: int = 0  # FSDP: whole blocks gathered for compute (this one and the next)

    @property
    def total_bytes(self) -> int:
        return (self.states_bytes + self.activation_bytes + self.logits_bytes
                + self.gathered_bytes)

    def describe(self) -> str:
        gib = 2**30
        gathered = (f", gathered blocks {self.gathered_bytes / gib:.2f}"
                    if self.gathered_bytes else "")
        return (f"{self.total_bytes / gib:.2f} GiB (states {self.states_bytes / gib:.2f}, "
                f"activations {self.activation_bytes / gib:.2f}, logits "
                f"{self.logits_bytes / gib:.2f}{gathered})")


def training_memory(params: int, trainable: int, world: int, strategy: str, layers: int,
                    hidden: int, vocab: int, micro_batch: int, seq_len: int,
                    compute_bytes: int, checkpointing: bool,
                    frozen_bytes_per_param: int = 4) -> TrainMemory:
    """Per-device memory of a step.

    States: AdamW mixed precision keeps 16 B per trained parameter; frozen ones (LoRA's base)
    ``frozen_bytes_per_param``; FSDP divides both by the world size, DDP keeps them whole.
    Activations (Korthikanti et al. 2022, with a memory-efficient attention kernel, so no
    seq x seq scores): 34 x seq x batch x hidden bytes per layer at 2-byte compute (x2 in
    fp32); with activation checkpointing only each layer's input (2 x seq x batch x hidden at
    2 bytes) stays, plus one layer's full set during its recomputation. Logits: seq x batch x
    vocab in fp32, three times (the logits, their softmax and its gradient). FSDP also holds
    two whole blocks in fp32 while it computes one and gathers the next (a block taken as
    parameters / layers).
    """
    if strategy not in ("none", "ddp", "fsdp"):
        raise ValueError(f"unknown strategy {strategy!r}")
    frozen = params - trainable
    states = trainable * ADAMW_BYTES_PER_PARAM + frozen * frozen_bytes_per_param
    gathered = 0
    if strategy == "fsdp":
        states = math.ceil(states / world)
        gathered = 2 * math.ceil(params / layers) * 4
    scale = compute_bytes / 2
    tokens = seq_len * micro_batch
    per_layer = 34 * tokens * hidden * scale
    if checkpointing:
        activations = layers * 2 * tokens * hidden * scale + per_layer
    else:
        activations = layers * per_layer
    logits = 3 * tokens * vocab * 4
    return TrainMemory(int(states), int(activations), int(logits), gathered)


def fits(memory: TrainMemory, budget_bytes: int) -> bool:
    return memory.total_bytes <= USABLE_FRACTION * budget_bytes


def loss_difference_variance(test: list[float], baseline: list[float]) -> float | None:
    """Variance (population) of the step-by-step difference of two loss curves over their
    common steps: the evaluation template's stability figure (0 = the same curve)."""
    n = min(len(test), len(baseline))
    if n == 0:
        return None
    diffs = [test[i] - baseline[i] for i in range(n)]
    mean = math.fsum(diffs) / n
    return math.fsum((d - mean) ** 2 for d in diffs) / n
