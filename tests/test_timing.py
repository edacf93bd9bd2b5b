"""The timed loop stops only when both the minimum iterations and duration are reached, and
warm-up is not counted."""

from __future__ import annotations

from bench.rules import RunRules
from bench.timing import timed_loop


class FakeClock:
    """A clock that advances by a fixed step on each step() call (deterministic timing)."""

    def __init__(self, per_step: float) -> None:
        self.now = 100.0
        self.per_step = per_step

    def __call__(self) -> float:
        return self.now

    def step(self) -> int:
        self.now += self.per_step
        return 8


def test_min_iterations_dominates_when_steps_are_slow():
    clock = FakeClock(per_step=1.0)
    rules = RunRules(warmup_iters=3, min_iters=5, min_duration_s=2.0)
    loop = timed_loop(clock.step, lambda: None, rules, clock=clock)
    assert loop.iterations == 5  # 5 s > 2 s already
    assert loop.items == 40  # 5 x 8, warm-up excluded
    assert loop.latencies_s == [1.0] * 5
    assert loop.duration_s == 5.0
    assert loop.throughput == 8.0


def test_min_duration_dominates_when_steps_are_fast():
    clock = FakeClock(per_step=0.25)
    rules = RunRules(warmup_iters=2, min_iters=3, min_duration_s=2.0)
    loop = timed_loop(clock.step, lambda: None, rules, clock=clock)
    assert loop.iterations == 8  # 8 x 0.25 s = 2 s
    assert loop.duration_s == 2.0
    assert loop.throughput == 8 * 8 / 2.0


def test_warmup_runs_but_is_not_timed():
    calls = []
    clock = FakeClock(per_step=1.0)

    def step() -> int:
        calls.append(clock.now)
        return clock.step()

    events = []
    loop = timed_loop(step, lambda: None, RunRules(warmup_iters=4, min_iters=1,
                                                   min_duration_s=0), events.append, clock)
    assert len(calls) == 5
    assert loop.iterations == 1
    assert loop.start_mono == 104.0  # the window starts after the four warm-up steps
    assert [e["done"] for e in events if e["phase"] == "warmup"] == [1, 2, 3, 4]
