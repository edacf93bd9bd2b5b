"""The timed loop of the run rules.

Warm-up iterations are run and discarded; then iterations are timed one by one (the device is
synchronised after each, so a latency is the batch's real device time) until *both* the minimum
iteration count and the minimum duration are reached. The window uses ``time.monotonic`` so the
parent's telemetry samples (same clock, another process) can be cut to it exactly.

The first step of every loop is timed too, warm-up or not: the cold start that compiling
backends and lazy vendor runtimes pay once. ``first_step`` catches the first step of the first
loop inside it, which in a repeat's child process is the workload's first iteration, whichever
workload (a plain loop, a grid point, a sweep) runs it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from bench.documents import ProgressEvent, RepeatResult
from bench.rules import RunRules

ProgressFn = Callable[[ProgressEvent], None]
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
    # The loop's first step (the first warm-up step, or the first timed one without warm-up).
    first_step_s: float | None = None
    per_stream: list[dict[str, int]] | None = None  # concurrent streams: each one's share

    @property
    def duration_s(self) -> float:
        return self.end_mono - self.start_mono

    @property
    def throughput(self) -> float:
        return self.items / self.duration_s

    def as_dict(self) -> RepeatResult:
        return {
            "window": {"start_mono": self.start_mono, "end_mono": self.end_mono,
                       "start_wall": self.start_wall, "end_wall": self.end_wall,
                       "duration_s": self.duration_s},
            "iterations": self.iterations,
            "items": self.items,
            "latencies_s": self.latencies_s,
            "throughput_items_per_s": self.throughput,
            **({"streams": self.per_stream} if self.per_stream is not None else {}),
        }


@dataclass
class FirstStep:
    """The latency of the first step timed while it is being recorded (None: none ran)."""

    latency_s: float | None = None


_recording: list[FirstStep] = []
_first_lock = threading.Lock()  # concurrent streams finish their first steps at once


@contextlib.contextmanager
def first_step() -> Iterator[FirstStep]:
    """Record the first step of the first timed loop run inside the ``with``."""
    record = FirstStep()
    _recording.append(record)
    try:
        yield record
    finally:
        _recording.remove(record)


def _first_step_done(latency_s: float) -> None:
    with _first_lock:
        for record in _recording:
            if record.latency_s is None:
                record.latency_s = latency_s


def timed_loop(step: Callable[[], int], synchronize: Callable[[], None], rules: RunRules,
               progress: ProgressFn | None = None,
               clock: Callable[[], float] = time.monotonic,
               agree: Callable[[bool], bool] | None = None) -> LoopResult:
    """Run ``step`` (returns items processed) under the run rules and time it.

    ``agree`` makes the stopping decision a group's: the ranks of a multi-device job must run
    the same number of steps (each step's collectives wait for every rank), so each rank
    passes whether it is done and gets whether all are (an all-reduce). It runs between
    steps, outside the per-step latencies.
    """
    report = progress or (lambda _event: None)
    first_s: float | None = None
    for i in range(rules.warmup_iters):
        t0 = clock()
        step()
        synchronize()
        if i == 0:
            first_s = clock() - t0
            _first_step_done(first_s)
        report({"phase": "warmup", "done": i + 1, "total": rules.warmup_iters})
    synchronize()
    latencies: list[float] = []
    items = 0
    start_wall = time.time()
    start = last_report = clock()
    now = start

    def finished() -> bool:
        done = len(latencies) >= rules.min_iters and now - start >= rules.min_duration_s
        return agree(done) if agree is not None else done

    while not finished():
        t0 = clock()
        items += step()
        synchronize()
        now = clock()
        latencies.append(now - t0)
        if first_s is None:
            first_s = latencies[0]
            _first_step_done(first_s)
        if now - last_report >= PROGRESS_EVERY_S:
            last_report = now
            report({"phase": "timed", "done": len(latencies), "min_iters": rules.min_iters,
                    "elapsed_s": now - start, "min_duration_s": rules.min_duration_s})
    return LoopResult(start_mono=start, end_mono=now, start_wall=start_wall,
                      end_wall=start_wall + (now - start), iterations=len(latencies),
                      items=items, latencies_s=latencies, first_step_s=first_s)


@dataclass
class StreamStep:
    """One concurrent stream: its step (issued on its own device stream) and its sync."""

    step: Callable[[], int]
    synchronize: Callable[[], None]


def concurrent_loop(streams: list[StreamStep], rules: RunRules,
                    progress: ProgressFn | None = None,
                    clock: Callable[[], float] = time.monotonic) -> LoopResult:
    """N host threads, each running its own stream's steps, timed as one window.

    Every thread does its warm-up, then all start together (a barrier, whose release is the
    window's start). Each thread times its iterations (its step and its own stream's sync),
    and the window closes when the minimum duration has passed and every stream has done
    ``min_iters``: each thread finishes the iteration it is in, and the last to finish ends
    the window. Throughput is all streams' items over the window; the latencies are every
    stream's iterations (a batch's latency as its own stream saw it).
    """
    report = progress or (lambda _event: None)
    n = len(streams)
    counts = [0] * n
    items = [0] * n
    latencies: list[list[float]] = [[] for _ in range(n)]
    errors: list[BaseException] = []
    stop = threading.Event()
    marks: dict[str, float] = {}
    barrier = threading.Barrier(n, action=lambda: marks.update(start=clock(),
                                                              start_wall=time.time()))

    def run(i: int) -> None:
        s = streams[i]
        try:
            for j in range(rules.warmup_iters):
                t0 = clock()
                s.step()
                s.synchronize()
                if j == 0:  # the first stream to finish its first step is the cold start
                    _first_step_done(clock() - t0)
            s.synchronize()
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        start = marks["start"]
        try:
            while not stop.is_set():
                t0 = clock()
                items[i] += s.step()
                s.synchronize()
                t1 = clock()
                latencies[i].append(t1 - t0)
                counts[i] += 1
                if counts[i] == 1 and not rules.warmup_iters:
                    _first_step_done(t1 - t0)
                if t1 - start >= rules.min_duration_s and min(counts) >= rules.min_iters:
                    stop.set()
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=run, args=(i,), daemon=True, name=f"stream-{i}")
               for i in range(n)]
    for t in threads:
        t.start()
    report({"phase": "warmup", "done": 0, "total": rules.warmup_iters})
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=PROGRESS_EVERY_S)
        if "start" in marks and not stop.is_set():
            report({"phase": "timed", "done": sum(counts), "min_iters": rules.min_iters * n,
                    "elapsed_s": clock() - marks["start"],
                    "min_duration_s": rules.min_duration_s})
    end = clock()
    if errors:
        raise errors[0]
    start = marks["start"]
    return LoopResult(start_mono=start, end_mono=end, start_wall=marks["start_wall"],
                      end_wall=marks["start_wall"] + (end - start), iterations=sum(counts),
                      items=sum(items), latencies_s=[x for lat in latencies for x in lat],
                      per_stream=[{"stream": i, "iterations": counts[i], "items": items[i]}
                                  for i in range(n)])
