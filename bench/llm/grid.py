"""Running a grid of points under the run rules, for the LLM and text-to-image workloads.

Each point gets its own timed loop (warm-up excluded, minimum iterations and duration) and so
its own window, which the runner cuts the telemetry to: every point has its own power, energy
and utilisation. A point that the memory estimate rules out, or that raises the device's
out-of-memory error, is recorded ``oom`` and the grid goes on.

The result-level throughput and latency that every result carries come from one designated
*reference point* (a workload parameter): a fixed point is comparable across devices, where a
total over the grid would depend on which points fit. If the reference point did not run, the
first point that did stands in, and the result says so.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.devices import DeviceBackend
from bench.documents import Metrics, Params, PointDoc, ProgressEvent, RepeatResult
from bench.timing import ProgressFn, timed_loop
from bench.workload import WorkloadContext


@dataclass
class PointResult:
    """One grid point of one repeat, in the runner's ``points`` format."""

    params: Params
    status: str = "ok"
    error: dict[str, str] | None = None
    metrics: Metrics = field(default_factory=dict)
    loop: RepeatResult | None = None  # the timed loop (window, latencies) of a point that ran

    def as_point(self) -> PointDoc:
        out: PointDoc = {"params": self.params, "status": self.status,
                               "error": self.error, "metrics": self.metrics}
        if self.loop is not None:
            out["window"] = self.loop["window"]
        return out


def free_device_memory(backend: DeviceBackend) -> None:
    """Give cached blocks back after an out-of-memory error, so the next point starts clean."""
    gc.collect()
    with contextlib.suppress(Exception):
        empty = getattr(backend.module, "empty_cache", None)
        if empty is not None:
            empty()


def run_point(ctx: WorkloadContext, params: Params, step: Callable[[], int],
              metrics: Callable[[RepeatResult], Metrics],
              extra: Metrics | None = None,
              item_unit: str = "items") -> PointResult:
    """Time ``step`` for one point; an out-of-memory error makes the point ``oom``.

    The point keeps its loop's throughput (``throughput_items_per_s``), the figure the entry's
    own throughput is made of when this point is the headline (the audit checks they agree)."""
    backend = ctx.backend
    extra = extra or {}
    backend.synchronize()
    backend.reset_peak_memory()
    try:
        loop = timed_loop(step, backend.synchronize, ctx.rules, _quiet).as_dict()
        backend.synchronize()
    except Exception as exc:
        if not backend.is_oom(exc):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        free_device_memory(backend)
        return PointResult(params, "oom", {"type": type(exc).__name__, "message": message},
                           dict(extra))
    stats = backend.memory_stats()
    point_metrics = {**extra, **metrics(loop)}
    point_metrics.setdefault("throughput_items_per_s", {
        "value": loop["throughput_items_per_s"], "unit": f"{item_unit}/s"})
    point_metrics["peak_mem_bytes"] = (
        {"value": stats.peak_allocated_bytes, "unit": "B",
         **({"note": stats.note} if stats.note else {})}
        if stats.peak_allocated_bytes is not None
        else {"value": None, "unit": "B", "reason": "the framework reports no peak allocation"})
    return PointResult(params, "ok", None, point_metrics, loop)


def _quiet(_event: ProgressEvent) -> None:
    pass


def skipped_point(params: Params, message: str,
                  extra: Metrics) -> PointResult:
    """A point the memory estimate rules out: recorded ``oom``, never attempted."""
    return PointResult(params, "oom", {"type": "MemoryEstimate", "message": message}, extra)


def pick_reference(points: Sequence[PointResult], reference: Params
                   ) -> tuple[PointResult | None, str | None]:
    """The reference point if it ran, else the first point that ran (with the reason)."""
    for p in points:
        if p.params == reference:
            if p.status == "ok":
                return p, None
            break
    first = next((p for p in points if p.status == "ok"), None)
    if first is None:
        return None, "no grid point ran"
    return first, (f"the reference point {reference} did not run; the result-level "
                   f"throughput and latency are those of {first.params}")


def progress_note(progress: ProgressFn, index: int, total: int, params: Params) -> None:
    text = " ".join(f"{k}={v}" for k, v in params.items())
    progress({"phase": "point", "message": f"point {index + 1}/{total} {text}"})
