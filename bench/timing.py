"""The timed loop of the run rules.

Warm-up iterations are run and discarded; then iterations are timed one by one (the device is
synchronised after each, so a latency is the batch's real device time) until *both* the minimum
iteration count and the minimum duration are reached. The window uses ``time.monotonic`` so the
parent's telemetry samples (same clock, another process) can be cut to it exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.rules import RunRules

ProgressFn = Callable[[dict[str, Any]], None]
PROGRESS_EVERY_S = 0.5


@dataclass
class LoopResult:
    start_mono: float
    end_mono: float
    start_wall: float
    end_wall: float
    iterations: int
    items: int
    latencies_s: list[float] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.end_mono - self.start_mono

    @property
    def throughput(self) -> float:
        return self.items / self.duration_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": {"start_mono": self.start_mono, "end_mono": self.end_mono,
                       "start_wall": self.start_wall, "end_wall": self.end_wall,
                       "duration_s": self.duration_s},
            "iterations": self.iterations,
            "items": self.items,
            "latencies_s": self.latencies_s,
            "throughput_items_per_s": self.throughput,
        }


def timed_loop(step: Callable[[], int], synchronize: Callable[[], None], rules: RunRules,
               progress: ProgressFn | None = None,
               clock: Callable[[], float] = time.monotonic) -> LoopResult:
    """Run ``step`` (returns items processed) under the run rules and time it."""
    report = progress or (lambda _event: None)
    for i in range(rules.warmup_iters):
        step()
        synchronize()
        report({"phase": "warmup", "done": i + 1, "total": rules.warmup_iters})
    synchronize()
    latencies: list[float] = []
    items = 0
    start_wall = time.time()
    start = last_report = clock()
    now = start
    while len(latencies) < rules.min_iters or now - start < rules.min_duration_s:
        t0 = clock()
        items += step()
        synchronize()
        now = clock()
        latencies.append(now - t0)
        if now - last_report >= PROGRESS_EVERY_S:
            last_report = now
            report({"phase": "timed", "done": len(latencies), "min_iters": rules.min_iters,
                    "elapsed_s": now - start, "min_duration_s": rules.min_duration_s})
    return LoopResult(start_mono=start, end_mono=now, start_wall=start_wall,
                      end_wall=start_wall + (now - start), iterations=len(latencies),
                      items=items, latencies_s=latencies)
