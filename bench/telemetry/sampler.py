"""The one telemetry sampler: a background thread reading an adapter at a fixed interval.

Each sample carries a monotonic timestamp (comparable with the timed windows the workload
child processes report, which use the same clock) and a wall-clock timestamp. Failed readings
are counted and their messages kept: sampling errors are reported, never swallowed. The
sampler also records the interval it actually achieved.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from itertools import pairwise
from typing import Any

from bench.stats import percentile
from bench.telemetry.base import SAMPLE_FIELDS, TelemetryAdapter

MAX_ERROR_MESSAGES = 10


class Sampler:
    def __init__(self, adapter: TelemetryAdapter, interval_s: float = 0.1) -> None:
        if interval_s <= 0:
            raise ValueError(f"telemetry interval must be positive, got {interval_s}")
        self.adapter = adapter
        self.interval_s = interval_s
        self.t_mono: list[float] = []
        self.t_wall: list[float] = []
        self.per_device: list[dict[str, list[Any]]] = [
            {name: [] for name in SAMPLE_FIELDS} for _ in adapter.device_indices
        ]
        self.errors = 0
        self.error_messages: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.description: dict[str, Any] = {"backend": adapter.name}

    def sample_once(self) -> None:
        t_mono = time.monotonic()
        t_wall = time.time()
        try:
            samples = self.adapter.read()
        except Exception as exc:
            with self._lock:
                self.errors += 1
                key = f"{exc.__class__.__name__}: {exc}"
                if key in self.error_messages or len(self.error_messages) < MAX_ERROR_MESSAGES:
                    self.error_messages[key] += 1
            return
        with self._lock:
            self.t_mono.append(t_mono)
            self.t_wall.append(t_wall)
            for series, sample in zip(self.per_device, samples, strict=True):
                for name, value in sample.values().items():
                    series[name].append(value)

    def _loop(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.sample_once()
            next_t += self.interval_s
            delay = next_t - time.monotonic()
            if delay < 0:  # fell behind: don't burst to catch up
                next_t = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def start(self) -> Sampler:
        self.sample_once()
        self.description = self.adapter.describe()
        self._thread = threading.Thread(target=self._loop, name="telemetry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 5 * self.interval_s))
        self.adapter.close()

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def achieved_interval(self, start: float = -math.inf, end: float = math.inf) -> dict[str, Any]:
        with self._lock:
            ts = [t for t in self.t_mono if start <= t <= end]
        gaps = [b - a for a, b in pairwise(ts)]
        if not gaps:
            return {"requested_s": self.interval_s, "mean_s": None, "p99_jitter_s": None,
                    "samples": len(ts)}
        mean = math.fsum(gaps) / len(gaps)
        jitter = [abs(g - self.interval_s) for g in gaps]
        return {"requested_s": self.interval_s, "mean_s": mean,
                "p99_jitter_s": percentile(jitter, 99), "samples": len(ts)}

    def snapshot(self, start: float = -math.inf, end: float = math.inf) -> dict[str, Any]:
        """Samples with ``start <= t_mono <= end``, columnar, times relative to ``start``."""
        with self._lock:
            idx = [i for i, t in enumerate(self.t_mono) if start <= t <= end]
            origin = start if math.isfinite(start) else (self.t_mono[0] if self.t_mono else 0.0)
            devices = []
            for dev_index, series in zip(self.adapter.device_indices, self.per_device,
                                         strict=True):
                devices.append({
                    "index": dev_index,
                    "series": {name: [series[name][i] for i in idx] for name in SAMPLE_FIELDS},
                })
            return {
                "t_mono_s": [self.t_mono[i] for i in idx],
                "t_s": [self.t_mono[i] - origin for i in idx],
                "t_wall": [self.t_wall[i] for i in idx],
                "devices": devices,
            }

    def error_report(self) -> dict[str, Any]:
        with self._lock:
            return {"count": self.errors, "messages": dict(self.error_messages)}
