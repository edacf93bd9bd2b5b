"""How loaded the host was while a re-run ran, and how much that load could have slowed it.

The measurement is the run's own (``bench.contention``: per-thread run-queue wait from
schedstat, the slowdown it implies, other processes' CPU time from ``/proc/stat``), so a
submitted result's record of its own windows and the audit's record of its re-run mean the
same thing. This module is the audit's side: which processes are the re-run (the audit's own
child natively, the re-run's container otherwise) and which windows were timed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psutil

from bench.contention import (
    MAX_SLOWDOWN,
    PERIOD_S,
    ContentionMonitor,
    thread_slowdown,
    window_demand,
    window_slowdown,
)
from bench.documents import ResultDoc

__all__ = ["MAX_SLOWDOWN", "PERIOD_S", "HostMonitor", "container_of", "own_children",
           "thread_slowdown", "timed_windows", "window_demand", "window_slowdown"]

# The audit's monitor: ``with HostMonitor(roots) as m: ...; m.report(windows)``.
HostMonitor = ContentionMonitor


def timed_windows(doc: ResultDoc) -> list[tuple[float, float]]:
    """The timed windows of a result in monotonic seconds: its repeats' and its points'."""
    out = [(r["window"]["start_mono"], r["window"]["end_mono"])
           for r in doc.get("repeats") or [] if r.get("status") == "ok" and r.get("window")]
    origin = (doc.get("telemetry") or {}).get("origin_mono_s")
    if origin is not None:
        out += [(origin + w["start_s"], origin + w["end_s"])
                for p in doc.get("points") or [] for w in p.get("windows") or []]
    return out


def own_children() -> list[int]:
    """A native re-run: this process's children (``python -m bench run`` and its repeats)."""
    try:
        return [c.pid for c in psutil.Process().children()]
    except psutil.Error:
        return []


def container_of(out_dir: Path) -> Callable[[], list[int]]:
    """A container re-run: the main process of the container that writes into ``out_dir``
    (found once it exists, through the engine)."""
    found: list[int] = []
    target = str(Path(out_dir).resolve())

    def roots() -> list[int]:
        if found:
            return found
        try:
            from testbed.images.engine import connect

            client = connect()
            try:
                for c in client.containers.list(filters={"name": "accel-testbed-"}):
                    if any(m.get("Source") == target for m in c.attrs.get("Mounts", [])):
                        pid = c.attrs.get("State", {}).get("Pid")
                        if pid:
                            found.append(int(pid))
            finally:
                client.close()
        except Exception:  # the engine is optional here: no reading, not a failed audit
            return []
        return found

    return roots
