"""Run rules and telemetry settings: plain data, with no behaviour; of bench it imports only the
document types (``bench.documents``).

When a measurement is complete (``RunRules``) and how telemetry is sampled
(``TelemetrySettings``) are read by the suite loader (``bench.config``), the harness
(``bench.timing``), the workloads and the runner. They live apart from the suite loader so that
a workload can import the rules it is measured by without importing the loader, which imports
the workloads to check a suite (the import circle this module breaks).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bench.documents import JsonObject, QuietThresholds, RulesRecord


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

    def merged(self, overrides: JsonObject | None) -> RunRules:
        return dataclasses.replace(self, **(overrides or {}))

    def to_dict(self) -> RulesRecord:
        out: RulesRecord = dataclasses.asdict(self)  # type: ignore[assignment]
        if not out["soak_s"]:
            del out["soak_s"]  # absent: no soak (results from before the rule read the same)
        return out

    @classmethod
    def from_dict(cls, data: RulesRecord) -> RunRules:
        return cls(**data)


RULE_NAMES = tuple(f.name for f in dataclasses.fields(RunRules))


@dataclass(frozen=True)
class QuietRules:
    """When a measurement was disturbed (``bench.contention.judge``; docs/measurement.md).

    An entry is disturbed when, in any repeat's timed window, a figure exceeds its bound, or
    when its repeats spread more than ``max_cv``. The defaults match the audit's noise bounds
    (testbed/audit/tolerances.yaml) and pyperf's warning for an unstable benchmark. A suite's
    ``quiet:`` section or ``--set quiet.NAME=VALUE`` changes them; the result records the
    thresholds it was judged by. They decide what the result says, never what it measured,
    so changing them is not an override of the measurement."""

    # The throughput's coefficient of variation over the repeats.
    max_cv: float = 0.10
    # How much the benchmark's threads' run-queue wait slowed a window (x).
    max_slowdown: float = 1.25
    # CPUs other processes kept busy, as a share of the host's CPUs.
    max_other_cpu_share: float = 0.25
    # CPUs a hypervisor gave to other guests (steal), as a share of the host's CPUs.
    max_steal_share: float = 0.05
    # Share of a window's telemetry readings in which the device slowed its clocks for one
    # of ``throttle_reasons``.
    max_throttled_share: float = 0.05
    # Processes other than the benchmark's on the devices it used.
    max_other_device_processes: int = 0
    # Clock-throttle reasons that disturb (NVML's and CNDev's names): heat and power brakes.
    # Not the device's own power cap (sw_power_cap, tdp): that is how it works at full load,
    # and its power figures show it.
    throttle_reasons: tuple[str, ...] = ("hw_slowdown", "sw_thermal_slowdown",
                                         "hw_thermal_slowdown", "hw_power_brake_slowdown",
                                         "thermal_slowdown", "power_brake")

    def merged(self, changes: JsonObject | None) -> QuietRules:
        changes = dict(changes or {})
        if "throttle_reasons" in changes:
            changes["throttle_reasons"] = tuple(changes["throttle_reasons"])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> QuietThresholds:
        out: QuietThresholds = dataclasses.asdict(self)  # type: ignore[assignment]
        out["throttle_reasons"] = list(self.throttle_reasons)
        return out


QUIET_NAMES = tuple(f.name for f in dataclasses.fields(QuietRules))


@dataclass(frozen=True)
class TelemetrySettings:
    """How often the sampler reads the devices, and how long idle is measured first."""

    interval_s: float = 0.1
    idle_s: float = 2.0

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)
