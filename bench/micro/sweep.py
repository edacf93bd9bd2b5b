"""Timing one point of a sweep, and turning a sweep into the harness's points format.

Timing rule of every micro-benchmark point (the run rules of the suite entry, applied per
point): ``warmup_iters`` calls, then blocks of ``min_iters`` calls, the device synchronised
once at the end of each block, until the blocks add up to ``min_duration_s`` (at least one
block). Queueing a whole block before one synchronisation keeps the host's per-call overhead
(a synchronisation costs tens of microseconds) out of a kernel that takes a millisecond, so a
large GEMM or copy is timed at the device's speed; the duration is wall-clock between two
device synchronisations, on ``time.monotonic`` so each point's window can be matched with the
telemetry samples. With ``min_duration_s: 0`` a point is exactly the Ascend paper's protocol:
10 warm-up and 100 timed iterations.

A point that fails records its failure class (``oom``, ``unsupported``, ``error``) and the
sweep goes on with the next one.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.documents import Params, PointDoc, RepeatResult
from bench.errors import Unsupported
from bench.results import Metric
from bench.rules import RunRules
from bench.timing import timed_loop

UNSUPPORTED_MARKERS = ("not implemented for", "not supported", "does not support", "unsupported",
                       "no kernel image")


@dataclass
class PointTiming:
    """One point's timed loop (the harness's loop fields) and its per-call time."""

    loop: RepeatResult
    calls: int

    @property
    def seconds_per_call(self) -> float:
        busy = self.loop.get("busy_s", self.loop["window"]["duration_s"])
        return busy / self.calls


def time_calls(fn: Callable[[], Any], synchronize: Callable[[], None], rules: RunRules,
               items_per_call: float = 1) -> PointTiming:
    """Time ``fn`` under the per-point rule above.

    ``items_per_call`` is what one call processes in the workload's item unit (FLOP, bytes),
    so the loop's throughput is FLOP/s or B/s. Latencies are per call: each block's time
    divided by its calls (a block is the smallest interval that is timed).
    """
    for _ in range(rules.warmup_iters):
        fn()
    per_block = max(1, rules.min_iters)

    def block() -> int:
        for _ in range(per_block):
            fn()
        return per_block

    result = timed_loop(block, synchronize, RunRules(warmup_iters=0, min_iters=1,
                                                     min_duration_s=rules.min_duration_s))
    calls = result.items
    loop = result.as_dict()
    loop["latencies_s"] = [t / per_block for t in result.latencies_s]
    loop["items"] = calls * items_per_call
    loop["throughput_items_per_s"] = loop["items"] / result.duration_s
    return PointTiming(loop=loop, calls=calls)


def failure_class(exc: BaseException, is_oom: Callable[[BaseException], bool]) -> str:
    """oom, unsupported (the device or build cannot run it) or error."""
    if isinstance(exc, Unsupported | NotImplementedError):
        return "unsupported"
    if is_oom(exc):
        return "oom"
    text = str(exc).lower()
    if isinstance(exc, RuntimeError) and any(m in text for m in UNSUPPORTED_MARKERS):
        return "unsupported"
    return "error"


@dataclass
class Point:
    params: Params
    status: str = "ok"
    error: dict[str, str] | None = None
    timing: PointTiming | None = None
    metrics: dict[str, Metric] = field(default_factory=dict)
    exception: BaseException | None = None

    def as_dict(self) -> PointDoc:
        out: PointDoc = {"params": self.params, "status": self.status,
                               "error": self.error, "metrics": self.metrics}
        if self.timing is not None:
            out["window"] = self.timing.loop["window"]
        return out


def release_memory(backend: Any, collect: bool = False) -> None:
    """Give cached device memory back after a point; ``collect`` after a failure too.

    A point's tensors are freed by reference counting when it returns; only a failure can
    leave cycles (exception, frames) holding them, and a garbage collection costs a tenth of
    a second in a process that has imported torch, so it runs only then.
    """
    if collect:
        gc.collect()
    empty = getattr(getattr(backend, "module", None), "empty_cache", None)
    if callable(empty):
        with contextlib.suppress(Exception):  # best effort: never fail the sweep over it
            empty()


def failed_point(params: Params, exc: BaseException, backend: Any) -> Point:
    """A point that did not run, with its failure class and the error.

    The traceback is dropped: its frames would keep the failed point's tensors (an
    out-of-memory's huge buffers) alive through the rest of the sweep.
    """
    exc = exc.with_traceback(None)
    return Point(params=params, status=failure_class(exc, backend.is_oom),
                 error={"type": type(exc).__name__,
                        "message": (str(exc) or type(exc).__name__)[:2000]},
                 exception=exc)


def run_point(params: Params, body: Callable[[], Point], backend: Any) -> Point:
    """Run one point; an exception becomes the point's status instead of ending the sweep."""
    try:
        point = body()
    except Exception as exc:
        point = failed_point(params, exc, backend)
    release_memory(backend, collect=point.status != "ok")
    return point


def sweep_measurement(points: Sequence[Point], headline: Point | None,
                      metrics: dict[str, Metric]) -> RepeatResult:
    """The repeat's measurement: the headline point's loop, entry metrics, every point.

    The harness's entry-level figures (throughput, latency, power over the window) describe
    the headline point (the best one, e.g. the GEMM size on the plateau), whose parameters each
    repeat records as ``headline`` (the best point can differ between runs); every point keeps
    its own figures and its own telemetry window.
    """
    if headline is None or headline.timing is None:
        raise_sweep_failure(points)
    assert headline is not None and headline.timing is not None
    return {**headline.timing.loop, "metrics": metrics, "headline": dict(headline.params),
            "points": [p.as_dict() for p in points]}


def raise_sweep_failure(points: Sequence[Point]) -> None:
    """No point succeeded: the entry fails with its most telling point failure.

    An ``error`` (something broke) outranks an ``oom`` (a fact about the device), which
    outranks ``unsupported``; the exception is re-raised so the entry keeps that class.
    """
    failed = [p for p in points if p.exception is not None]
    if not failed:
        raise RuntimeError("the sweep has no points: check the workload's parameters")
    if all(p.status == "unsupported" for p in failed):
        raise Unsupported(f"every point is unsupported; first: {failed[0].error['message']}")\
            from failed[0].exception
    first = next(p for status in ("error", "oom", "unsupported") for p in failed
                 if p.status == status)
    assert first.exception is not None
    raise first.exception


def best_point(points: Sequence[Point], key: str) -> Point | None:
    """The successful point with the highest value of metric ``key``."""
    ok = [p for p in points if p.status == "ok" and p.metrics.get(key, {}).get("value")]
    return max(ok, key=lambda p: p.metrics[key]["value"]) if ok else None


def progress_message(ctx: Any, index: int, total: int, label: str) -> None:
    ctx.progress({"phase": "point", "message": f"point {index + 1}/{total}: {label}"})


def timed_series(call: Callable[[], Any], before: Callable[[], Any],
                 synchronize: Callable[[], None], rules: RunRules,
                 items_per_call: float) -> PointTiming:
    """Time long operations one by one, with untimed preparation ``before`` each call.

    For operations that take long enough that one synchronisation per call costs nothing
    (a checkpoint save or load) but that need a step between calls that must not be timed
    (evicting the file from the page cache). Runs ``warmup_iters`` untimed, then at least
    ``min_iters`` timed calls and until their summed time reaches ``min_duration_s``. The
    window spans the whole series; the throughput is items over the summed call times.
    """
    for _ in range(rules.warmup_iters):
        before()
        call()
        synchronize()
    latencies: list[float] = []
    start_wall, start = time.time(), time.monotonic()
    end = start
    while len(latencies) < max(1, rules.min_iters) or sum(latencies) < rules.min_duration_s:
        before()
        t0 = time.monotonic()
        call()
        synchronize()
        end = time.monotonic()
        latencies.append(end - t0)
    busy = sum(latencies)
    items = items_per_call * len(latencies)
    loop = {"window": {"start_mono": start, "end_mono": end, "start_wall": start_wall,
                       "end_wall": start_wall + (end - start), "duration_s": end - start},
            "iterations": len(latencies), "items": items, "latencies_s": latencies,
            "throughput_items_per_s": items / busy, "busy_s": busy}
    return PointTiming(loop=loop, calls=len(latencies))
