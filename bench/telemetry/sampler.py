"""The one telemetry sampler: a background thread reading an adapter at a fixed interval.

Each sample carries a monotonic timestamp (comparable with the timed windows the workload
child processes report, which use the same clock) and a wall-clock timestamp. The timestamp is
the middle of the reading, so a slow reading (a CLI tool taking 50 ms) is not shifted by its
own duration. Failed readings are counted, timestamped and their messages kept: sampling
errors are reported, never swallowed. The sampler also records the interval it actually
achieved, how long each reading took and the CPU time its thread used (its own overhead).
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left, bisect_right
from collections import Counter
from itertools import pairwise
from typing import Any

from bench.documents import (
    DeviceSeries,
    Info,
    IntervalStats,
    SamplerOverhead,
    Snapshot,
    TelemetryErrors,
)
from bench.stats import percentile
from bench.telemetry.base import SAMPLE_FIELDS, TelemetryAdapter

MAX_ERROR_MESSAGES = 10


def interval_stats(t_mono: list[float], requested_s: float) -> IntervalStats:
    """Achieved sampling interval of sorted timestamps: mean gap, p99 |gap - requested|, max gap.

    Pure, so it is tested on hand-made timestamps; ``None`` where fewer than two samples.
    """
    gaps = [b - a for a, b in pairwise(t_mono)]
    if not gaps:
        return {"requested_s": requested_s, "mean_s": None, "p99_jitter_s": None,
                "max_gap_s": None, "samples": len(t_mono)}
    jitter = [abs(g - requested_s) for g in gaps]
    return {"requested_s": requested_s, "mean_s": math.fsum(gaps) / len(gaps),
            "p99_jitter_s": percentile(jitter, 99), "max_gap_s": max(gaps),
            "samples": len(t_mono)}


class Sampler:
    def __init__(self, adapter: TelemetryAdapter, interval_s: float = 0.1) -> None:
        if interval_s <= 0:
            raise ValueError(f"telemetry interval must be positive, got {interval_s}")
        self.adapter = adapter
        self.interval_s = interval_s
        self.t_mono: list[float] = []
        self.t_wall: list[float] = []
        self.read_s: list[float] = []
        self.per_device: list[dict[str, list[Any]]] = [
            {name: [] for name in SAMPLE_FIELDS} for _ in adapter.device_indices
        ]
        self.errors = 0
        self.error_t_mono: list[float] = []
        self.error_messages: Counter[str] = Counter()
        self.thread_cpu_s = 0.0
        self.thread_wall_s = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.description: Info = {"backend": adapter.name}

    def sample_once(self) -> None:
        t0 = time.monotonic()
        wall0 = time.time()
        try:
            samples = self.adapter.read()
            if len(samples) != len(self.per_device):
                raise RuntimeError(f"adapter returned {len(samples)} sample(s) for "
                                   f"{len(self.per_device)} device(s)")
        except Exception as exc:
            t1 = time.monotonic()
            with self._lock:
                self.errors += 1
                self.error_t_mono.append((t0 + t1) / 2)
                key = f"{exc.__class__.__name__}: {exc}"
                if key in self.error_messages or len(self.error_messages) < MAX_ERROR_MESSAGES:
                    self.error_messages[key] += 1
            return
        t1 = time.monotonic()
        with self._lock:
            self.t_mono.append((t0 + t1) / 2)
            self.t_wall.append(wall0 + (t1 - t0) / 2)
            self.read_s.append(t1 - t0)
            for series, sample in zip(self.per_device, samples, strict=True):
                for name, value in sample.values().items():
                    series[name].append(value)

    def _loop(self) -> None:
        """Sample on an absolute schedule (start() took the first sample) until stopped."""
        cpu0, wall0 = time.thread_time(), time.monotonic()
        next_t = wall0
        while True:
            next_t += self.interval_s
            now = time.monotonic()
            if next_t < now:  # fell behind: don't burst to catch up
                next_t = now
            if self._stop.wait(next_t - now):
                break
            self.sample_once()
            self.thread_cpu_s = time.thread_time() - cpu0
            self.thread_wall_s = time.monotonic() - wall0

    def start(self) -> Sampler:
        self.sample_once()
        self.description = self.adapter.describe()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="telemetry", daemon=True)
        self._thread.start()
        return self

    def stop(self, close_adapter: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 5 * self.interval_s))
        if close_adapter:
            self.adapter.close()

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_past(self, t_mono: float, timeout_s: float | None = None) -> bool:
        """Wait (bounded) until a sample or a failed reading lies after ``t_mono``, so that a
        window ending at ``t_mono`` is bracketed and its energy can be integrated to its end.
        Returns False if none came in time (the window's edge is then left unbracketed)."""
        limit = time.monotonic() + (timeout_s if timeout_s is not None else
                                    3 * self.interval_s + 1.0)
        while True:
            with self._lock:
                last = max(self.t_mono[-1] if self.t_mono else -math.inf,
                           self.error_t_mono[-1] if self.error_t_mono else -math.inf)
            if last > t_mono:
                return True
            if time.monotonic() >= limit or self._thread is None or not self._thread.is_alive():
                return False
            time.sleep(min(0.01, self.interval_s / 4))

    def _between(self, ts: list[float], start: float, end: float) -> slice:
        return slice(bisect_left(ts, start), bisect_right(ts, end))

    def achieved_interval(self, start: float = -math.inf, end: float = math.inf) -> IntervalStats:
        """Interval statistics of the samples in ``[start, end]``, plus reading durations."""
        with self._lock:
            window = self._between(self.t_mono, start, end)
            ts = self.t_mono[window]
            reads = self.read_s[window]
        out = interval_stats(ts, self.interval_s)
        out["read_mean_s"] = math.fsum(reads) / len(reads) if reads else None
        out["read_max_s"] = max(reads) if reads else None
        return out

    def overhead(self) -> SamplerOverhead:
        """CPU time the sampler thread used per second of sampling (its own cost on the host)."""
        wall = self.thread_wall_s
        return {"thread_cpu_s": self.thread_cpu_s, "thread_wall_s": wall,
                "cpu_fraction": self.thread_cpu_s / wall if wall > 0 else None}

    def snapshot(self, start: float = -math.inf, end: float = math.inf) -> Snapshot:
        """Samples with ``start <= t_mono <= end``, columnar, times relative to ``start``."""
        with self._lock:
            window = self._between(self.t_mono, start, end)
            t_mono = self.t_mono[window]
            origin = start if math.isfinite(start) else (t_mono[0] if t_mono else 0.0)
            devices: list[DeviceSeries] = []
            for dev_index, series in zip(self.adapter.device_indices, self.per_device,
                                         strict=True):
                devices.append({
                    "index": dev_index,
                    "series": {name: series[name][window]  # type: ignore[typeddict-item]
                               for name in SAMPLE_FIELDS},  # SAMPLE_FIELDS: the Series keys
                })
            return {
                "t_mono_s": t_mono,
                "t_s": [t - origin for t in t_mono],
                "t_wall": self.t_wall[window],
                "error_t_mono_s": self.error_t_mono[self._between(self.error_t_mono, start,
                                                                  end)],
                "devices": devices,
            }

    def discard_before(self, t_mono: float) -> int:
        """Drop samples (and error timestamps) older than ``t_mono``; returns how many.

        The runner calls this once an entry's document is written, so a long run keeps only
        the current entry's series in memory. Error counts and messages are kept.
        """
        with self._lock:
            n = bisect_left(self.t_mono, t_mono)
            del self.t_mono[:n], self.t_wall[:n], self.read_s[:n]
            for series in self.per_device:
                for values in series.values():
                    del values[:n]
            del self.error_t_mono[:bisect_left(self.error_t_mono, t_mono)]
            return n

    def error_report(self, start: float = -math.inf, end: float = math.inf) -> TelemetryErrors:
        """Failed readings (all, and inside ``[start, end]``) and per-field misses."""
        with self._lock:
            inside = len(self.error_t_mono[self._between(self.error_t_mono, start, end)])
            return {"count": self.errors, "in_window": inside,
                    "messages": dict(self.error_messages),
                    "field_misses": dict(self.adapter.field_misses)}
