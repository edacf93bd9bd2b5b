"""Workloads that misbehave on purpose, loaded through BENCH_WORKLOAD_MODULES by the
isolation tests: they prove that one workload's failure is recorded as its status and never
takes the others' results with it."""

from __future__ import annotations

import contextlib
import os
import signal
import time

from bench.workload import Workload, register
from bench.workloads.llm_train import PretrainWorkload

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
class LongSleeper(Sleeper):
    """Sleeps 50 ms per step: wake-up delays on a busy machine (a few ms) barely move it,
    so the audit's pass path can be tested where other processes compete for the CPUs."""

    name = "test-sleep-long"
    description = "sleeps 50 ms per step (a well-behaved workload for the audit tests)"

    def step(self) -> int:
        time.sleep(0.05)
        return self.params["batch_size"]


@register
class UnnamedItems(Sleeper):
    """Runs like test-sleep, but names its items with an empty string, which the result schema
    refuses: the bench writes the result (noting the problems in its manifest) and the
    launcher's acceptance on the host sets it aside (testbed.launch.base.accept_results)."""

    name = "test-invalid-result"
    description = "sleeps 10 ms per step; its result fails validation (empty item unit)"
    item_unit = ""


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
        marker = os.environ.get("TEST_HANG_MARKER")  # says "hanging now" to a test
        if marker:
            open(marker, "w").close()
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


@register
class Grid(_Base):
    """A grid workload: three points, the last one out of memory (as an LLM grid point)."""

    name = "test-grid"
    description = "measures a grid of sleep lengths; the largest is recorded as oom"

    def measure(self):
        from bench.timing import timed_loop

        points = []
        for ms in (5, 10, 1000):
            if ms >= 1000:
                points.append({"params": {"sleep_ms": ms}, "status": "oom",
                               "error": {"type": "OutOfMemoryError",
                                         "message": "estimated 90 GiB > 80 GiB"},
                               "metrics": {"memory_estimate_bytes": {
                                   "value": 90 * 2**30, "unit": "B"}}})
                continue
            loop = timed_loop(lambda ms=ms: (time.sleep(ms / 1000), 1)[1], lambda: None,
                              self.ctx.rules).as_dict()
            points.append({"params": {"sleep_ms": ms}, "status": "ok",
                           "window": loop["window"],
                           "metrics": {"throughput_items_per_s": {
                               "value": loop["throughput_items_per_s"], "unit": "items/s"}}})
        loop = timed_loop(lambda: (time.sleep(0.001), 1)[1], lambda: None, self.ctx.rules)
        return {**loop.as_dict(), "metrics": {}, "points": points}


@register
class FallsBack(_Base):
    """Warns as PyTorch does when an operator runs on the host instead of the device."""

    name = "test-cpu-fallback"
    description = "an operator falls back to the CPU (a recorded, non-comparable result)"

    def step(self) -> int:
        import warnings

        warnings.warn("The operator 'aten::_fake_op' is not currently supported on the MLU "
                      "backend and will fall back to run on the CPU.", UserWarning,
                      stacklevel=1)
        time.sleep(0.005)
        return 1


@register
class GridThatHangs(_Base):
    """Two grid points finish, the third never does (as a hung LLM grid point)."""

    name = "test-grid-hang"
    description = "a grid whose third point hangs: the first two must survive the timeout"

    def measure(self):
        from bench.timing import timed_loop

        points = []
        for ms in (5, 10):
            loop = timed_loop(lambda ms=ms: (time.sleep(ms / 1000), 1)[1], lambda: None,
                              self.ctx.rules).as_dict()
            points.append({"params": {"sleep_ms": ms}, "status": "ok", "window": loop["window"],
                           "metrics": {"throughput_items_per_s": {
                               "value": loop["throughput_items_per_s"], "unit": "items/s"}}})
            self.ctx.save_points(points)
        time.sleep(3600)


@register
class Memoiser(_Base):
    """A cheating stack: it remembers the result of the last 4 distinct inputs and returns it
    without computing (10 ms) when an input comes again. The audit's caching check must catch
    it: one repeated batch is nearly free, 16 rotating batches never hit."""

    name = "test-memo"
    description = "memoises results for identical inputs (what the caching check catches)"
    group = "cv"  # stands for a model workload: the caching check skips micro-benchmarks
    input_attrs = ("x",)
    CACHE_ENTRIES = 4

    def setup(self) -> None:
        import torch

        self.x = torch.arange(64, dtype=torch.float32)
        self.cache: list[bytes] = []

    def step(self) -> int:
        key = self.x.numpy().tobytes()
        if key in self.cache:
            self.cache.remove(key)
        else:
            time.sleep(0.01)
            if len(self.cache) == self.CACHE_ENTRIES:
                self.cache.pop(0)
        self.cache.append(key)
        return self.params["batch_size"]


@register
class InfiniteThroughput(_Base):
    """Reports an infinite throughput (as a window of zero length would)."""

    name = "test-inf"
    description = "reports an infinite throughput"

    def step(self) -> int:
        time.sleep(0.005)
        return 1

    def measure(self):
        loop = super().measure()
        loop["throughput_items_per_s"] = float("inf")
        return loop


@register
class NoItems(_Base):
    """Processes no items per step (as a batch of 0 would)."""

    name = "test-zero"
    description = "processes 0 items per step"

    def step(self) -> int:
        time.sleep(0.005)
        return 0


@register
class FillsTheDisk(_Base):
    """Fills the file system of its ``dir`` parameter to the last byte during setup, then
    measures normally: the parent then has no room to write its result."""

    name = "test-fill-disk"
    description = "fills the disk holding its dir parameter"
    configs = {"small": {"batch_size": 4, "dir": ""}}

    def setup(self) -> None:
        import errno

        path = os.path.join(self.params["dir"], "filler")
        block = b"\0" * 4096
        with open(path, "wb", buffering=0) as fh:
            try:
                while True:
                    fh.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        for size in (512, 64, 1):  # the last partial block too
            with contextlib.suppress(OSError), open(path, "ab", buffering=0) as fh:
                while True:
                    fh.write(b"\0" * size)

    def step(self) -> int:
        time.sleep(0.005)
        return self.params["batch_size"]


@register
class DyingTrainer(PretrainWorkload):
    """llm-pretrain whose rank 1 is killed at its third step (tests/faulty_train_worker.py)."""

    name = "test-train-dies"
    description = "a training job whose rank 1 dies: the entry is an error naming the rank"
    worker_module = "tests.faulty_train_worker"


@register
class TinyModel(_Base):
    """A two-layer model small enough to compile in seconds (the torch.compile test)."""

    name = "test-tiny-model"
    description = "a tiny MLP forward (compiles quickly)"
    group = "cv"

    def setup(self) -> None:
        import torch

        self.model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(),
                                         torch.nn.Linear(16, 4)).eval()
        self.x = torch.randn(self.params["batch_size"], 16)

    def step(self) -> int:
        import torch

        with torch.inference_mode():
            self.model(self.x)
        return self.params["batch_size"]


@register
class FaultySoak(PretrainWorkload):
    """llm-pretrain whose soak's training process suffers the faults BENCH_TEST_SOAK_FAULTS
    names (tests/faulty_soak_worker.py)."""

    name = "test-soak-faults"
    description = "a soak with injected faults: each is counted and recovered from"
    soak_worker_module = "tests.faulty_soak_worker"
