"""Run rules and telemetry settings: plain data, with no behaviour and no imports of bench.

When a measurement is complete (``RunRules``) and how telemetry is sampled
(``TelemetrySettings``) are read by the suite loader (``bench.config``), the harness
(``bench.timing``), the workloads and the runner. They live apart from the suite loader so that
a workload can import the rules it is measured by without importing the loader, which imports
the workloads to check a suite (the import circle this module breaks).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunRules:
    """When a measurement is complete. Defaults are the suite schema's defaults."""

    warmup_iters: int = 3
    min_iters: int = 10
    min_duration_s: float = 2.0
    repeats: int = 3
    timeout_s: float = 600.0
    host_bound_util_pct: float = 30.0
    # The audit's caching check: distinct synthetic batches the timed loop cycles through
    # (bench.data.variants); 1 is the normal run, the same batch every iteration.
    input_variants: int = 1
    # Model function (bench.function.model): in the first repeat, after the timed loop, the
    # workload's outputs or gradients against the CPU reference; the verdict goes on the result.
    function_check: bool = False
    # Training workloads: a stability soak of this many seconds (docs/scorecard.md); 0: none.
    soak_s: float = 0.0

    def merged(self, overrides: dict[str, Any] | None) -> RunRules:
        return dataclasses.replace(self, **(overrides or {}))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if not out["soak_s"]:
            del out["soak_s"]  # absent: no soak (results from before the rule read the same)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRules:
        return cls(**data)


RULE_NAMES = tuple(f.name for f in dataclasses.fields(RunRules))


@dataclass(frozen=True)
class TelemetrySettings:
    """How often the sampler reads the devices, and how long idle is measured first."""

    interval_s: float = 0.1
    idle_s: float = 2.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
