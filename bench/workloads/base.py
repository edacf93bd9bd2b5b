"""The workload interface.

A workload builds its model and synthetic on-device data in ``setup`` and does one iteration
in ``step`` (returning the items it processed). The harness owns the timing (``bench.timing``),
so every workload is measured by the same rules. Workloads whose measurement is not a loop of
identical steps (a grid of generation lengths, an operator sweep) override ``measure``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from bench.config import RunRules
from bench.devices import DeviceBackend
from bench.devices.base import PRECISION_DTYPES
from bench.errors import Unsupported
from bench.timing import ProgressFn, timed_loop


@dataclass
class WorkloadContext:
    backend: DeviceBackend
    mode: str
    params: dict[str, Any]
    precision: str
    seed: int
    rules: RunRules
    progress: ProgressFn = field(default=lambda _event: None)
    # Grid workloads hand over the points measured so far after each point: if the repeat
    # then times out or is killed, those points are kept in the result.
    save_points: Callable[[list[dict[str, Any]]], None] = field(
        default=lambda _points: None)

    @property
    def device(self) -> torch.device:
        return self.backend.device(0)


class Workload(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    group: ClassVar[str]  # report grouping: cv, nlp, llm, micro
    modes: ClassVar[tuple[str, ...]]
    item_unit: ClassVar[str]  # what one item is: images, sequences, tokens, GEMMs
    configs: ClassVar[dict[str, dict[str, Any]]]  # named parameter sets: small, full
    default_precision: ClassVar[str] = "fp32"

    def __init__(self, ctx: WorkloadContext) -> None:
        self.ctx = ctx
        self.params = ctx.params
        self.precision_used = ctx.precision
        self.precision_reason: str | None = None
        self.series: dict[str, list[float]] = {}
        self.extra: dict[str, Any] = {}

    # -- to implement ------------------------------------------------------------------
    @abstractmethod
    def setup(self) -> None:
        """Build the model and the input data on the device (not timed)."""

    def step(self) -> int:
        """One iteration; returns the number of items processed."""
        raise NotImplementedError(f"{self.name} defines neither step() nor measure()")

    @classmethod  # noqa: B027 - an optional hook: most workloads accept any known param
    def validate_params(cls, params: dict[str, Any]) -> None:
        """Refuse parameter values that make the measurement meaningless (``UserError``).

        Called when the suite is loaded, so a bad value stops the run before anything starts.
        """

    def metrics(self, loop: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Workload-specific metrics derived from the timed loop (e.g. FLOP/s)."""
        return {}

    # -- provided ----------------------------------------------------------------------
    def check_precision(self) -> None:
        """Refuse a precision the device cannot run (status ``unsupported``, recorded)."""
        p = self.ctx.precision
        if p not in PRECISION_DTYPES and p != "int8":
            raise Unsupported(f"precision {p!r} is not one of {', '.join(PRECISION_DTYPES)}")
        if not self.ctx.backend.supports_precision(p):
            raise Unsupported(f"{self.ctx.backend.vendor} device does not support {p}")

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Mixed precision for fp16/bf16 through ``torch.autocast``; nothing for fp32."""
        p = self.precision_used
        if p in ("fp16", "bf16"):
            with torch.autocast(self.ctx.backend.device_type, dtype=PRECISION_DTYPES[p]):
                yield
        else:
            yield

    def record(self, name: str, value: float) -> None:
        self.series.setdefault(name, []).append(float(value))

    def measure(self) -> dict[str, Any]:
        """Time ``step`` under the run rules; returns the repeat's measurement."""
        loop = timed_loop(self.step, lambda: self.ctx.backend.synchronize(),
                          self.ctx.rules, self.ctx.progress).as_dict()
        loop["metrics"] = self.metrics(loop)
        return loop

    def info(self) -> dict[str, Any]:
        """Facts about the built workload for the result (e.g. parameter count)."""
        return dict(self.extra)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
