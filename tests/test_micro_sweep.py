"""The per-point timing rule and failure handling shared by the micro-benchmarks."""

from __future__ import annotations

import time

import pytest
import torch

from bench.devices import get_backend
from bench.errors import Unsupported
from bench.micro.sweep import (
    Point,
    failure_class,
    raise_sweep_failure,
    run_point,
    time_calls,
    timed_series,
)
from bench.rules import RunRules


class Recorder:
    """Counts calls and synchronisations: where the timing rule puts its syncs."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def call(self) -> None:
        self.events.append("call")

    def sync(self) -> None:
        self.events.append("sync")


def test_blocks_of_calls_between_two_synchronisations():
    rec = Recorder()
    timing = time_calls(rec.call, rec.sync, RunRules(warmup_iters=3, min_iters=4,
                                                     min_duration_s=0.0), items_per_call=10)
    # 3 warm-up calls, one sync; then one block of 4 calls closed by one sync
    assert rec.events == ["call"] * 3 + ["sync"] + ["call"] * 4 + ["sync"]
    assert time_calls(rec.call, rec.sync, RunRules(warmup_iters=0, min_iters=2,
                                                   min_duration_s=0.0)).calls == 2
    assert timing.calls == 4
    assert timing.loop["items"] == 40  # items are in the workload's unit (FLOP, bytes)
    assert len(timing.loop["latencies_s"]) == 1


def test_blocks_repeat_until_the_minimum_duration():
    timing = time_calls(lambda: time.sleep(0.002), lambda: None,
                        RunRules(warmup_iters=0, min_iters=5, min_duration_s=0.05))
    assert timing.calls % 5 == 0 and timing.calls >= 20  # >= 50 ms of 2 ms calls
    assert timing.loop["window"]["duration_s"] >= 0.05
    # per-call latencies are block times / calls: never below the 2 ms a call sleeps, and
    # together they make up the window
    latencies = timing.loop["latencies_s"]
    assert len(latencies) == timing.calls // 5 and min(latencies) >= 0.002
    assert sum(latencies) * 5 == pytest.approx(timing.loop["window"]["duration_s"], rel=0.1)
    assert timing.seconds_per_call >= 0.002


def test_series_leaves_the_preparation_out_of_the_time():
    timing = timed_series(lambda: time.sleep(0.01), lambda: time.sleep(0.03), lambda: None,
                          RunRules(warmup_iters=1, min_iters=3, min_duration_s=0.0), 100)
    assert timing.calls == 3
    assert 0.009 < timing.seconds_per_call < 0.025  # the 30 ms before each call is excluded
    assert timing.loop["window"]["duration_s"] > 0.09  # the window spans the whole series
    assert timing.loop["throughput_items_per_s"] == pytest.approx(100 / timing.seconds_per_call)


def test_failure_classes():
    cpu = get_backend("cpu")
    assert failure_class(Unsupported("no"), cpu.is_oom) == "unsupported"
    assert failure_class(NotImplementedError("x"), cpu.is_oom) == "unsupported"
    assert failure_class(RuntimeError('"slow_conv2d" not implemented for \'Half\''),
                         cpu.is_oom) == "unsupported"
    assert failure_class(RuntimeError("ProcessGroupGloo does not support alltoall"),
                         cpu.is_oom) == "unsupported"
    assert failure_class(torch.OutOfMemoryError("CUDA out of memory"), cpu.is_oom) == "oom"
    assert failure_class(ValueError("bad"), cpu.is_oom) == "error"


def test_a_real_failed_allocation_is_an_oom_point_and_the_sweep_goes_on():
    cpu = get_backend("cpu")

    def too_big() -> Point:
        torch.empty(2**50, dtype=torch.uint8)  # 1 PiB: the allocator refuses at once
        raise AssertionError("unreachable")

    point = run_point({"n": 1}, too_big, cpu)
    assert point.status == "oom" and point.error["type"] == "RuntimeError"
    assert point.exception is not None and point.exception.__traceback__ is None
    assert point.as_dict() == {"params": {"n": 1}, "status": "oom", "error": point.error,
                               "metrics": {}}


def test_a_sweep_without_success_fails_with_its_first_failure():
    cpu = get_backend("cpu")
    unsupported = run_point({"n": 1}, lambda: (_ for _ in ()).throw(Unsupported("no int8")),
                            cpu)
    with pytest.raises(Unsupported, match="every point is unsupported; first: no int8"):
        raise_sweep_failure([unsupported, unsupported])
    broken = run_point({"n": 2}, lambda: (_ for _ in ()).throw(ValueError("broken")), cpu)
    oom = run_point({"n": 3}, lambda: torch.empty(2**50, dtype=torch.uint8), cpu)
    with pytest.raises(RuntimeError, match="can't allocate memory"):
        raise_sweep_failure([unsupported, oom])
    with pytest.raises(ValueError, match="broken"):
        raise_sweep_failure([unsupported, oom, broken])
    with pytest.raises(RuntimeError, match="no points"):
        raise_sweep_failure([])
