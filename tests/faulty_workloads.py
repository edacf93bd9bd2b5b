"""Workloads that misbehave on purpose, loaded through BENCH_WORKLOAD_MODULES by the
isolation tests: they prove that one workload's failure is recorded as its status and never
takes the others' results with it."""

from __future__ import annotations

import os
import signal
import time

from bench.workloads import register
from bench.workloads.base import Workload

SMALL = {"small": {"batch_size": 4}}


class _Base(Workload):
    group = "micro"
    modes = ("infer",)
    item_unit = "items"
    configs = SMALL

    def setup(self) -> None:
        pass


@register
class Sleeper(_Base):
    """Deterministic: each step sleeps 10 ms and processes batch_size items."""

    name = "test-sleep"
    description = "sleeps 10 ms per step (a well-behaved workload)"

    def step(self) -> int:
        time.sleep(0.01)
        return self.params["batch_size"]


@register
class Raiser(_Base):
    name = "test-raise"
    description = "raises in its third step"

    def setup(self) -> None:
        self.calls = 0

    def step(self) -> int:
        self.calls += 1
        if self.calls == 3:
            raise ValueError("deliberate failure in step 3")
        return 1


@register
class Hanger(_Base):
    name = "test-hang"
    description = "never finishes a step"

    def step(self) -> int:
        time.sleep(3600)
        return 1


@register
class Killed(_Base):
    name = "test-kill"
    description = "is killed by SIGKILL during setup (as the OOM killer would)"

    def setup(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


@register
class OutOfMemory(_Base):
    name = "test-oom"
    description = "raises the framework's out-of-memory error"

    def setup(self) -> None:
        import torch

        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
