"""Memory bandwidth: device-to-device copies, and host <-> device transfers by size.

``memcopy`` copies a device buffer into another (``dst.copy_(src)``, the runtime's memcpy).
Two conventions are reported for every point, because vendors and tools mix them:
``copy_bytes_per_s`` counts each copied byte once; ``copy_rw_bytes_per_s`` counts it read and
written (2x), which is how a datasheet's memory bandwidth is meant, so % of peak uses it.

``host-transfer`` copies between host and device memory (h2d, d2h) from 4 KiB to 1 GiB, with
pageable and pinned (page-locked) host buffers. Pinned copies are issued ``non_blocking`` so the
DMA engine runs them back to back; a block is closed by one synchronisation. On the ``cpu``
backend the device *is* the host: a pageable "transfer" is a host memory copy, and pinned
memory does not exist without an accelerator's driver, so those points are ``unsupported``.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch

from bench.documents import RepeatResult
from bench.micro import formulas
from bench.micro.peaks import device_peaks, pct_metric
from bench.micro.sweep import (
    Point,
    best_point,
    progress_message,
    run_point,
    sweep_measurement,
    time_calls,
)
from bench.results import metric
from bench.workload import Workload, register

KiB, MiB, GiB = 2**10, 2**20, 2**30


def _check_sizes(name: str, sizes: Any) -> list[int]:
    if not sizes or any(not isinstance(n, int) or n < 1 for n in sizes):
        raise ValueError(f"{name}: sizes_bytes must be positive integers, got {sizes!r}")
    return list(sizes)


@register
class MemcopyWorkload(Workload):
    name = "memcopy"
    description = "device-to-device copy bandwidth over buffer sizes (read+write and copy)"
    group = "micro"
    modes = ("infer",)
    item_unit = "B"
    configs = {
        "small": {"sizes_bytes": [1 * MiB, 16 * MiB, 64 * MiB]},
        # >= 256 MiB is far beyond any last-level cache (H100: 50 MiB L2), so the large sizes
        # measure device memory, not cache.
        "full": {"sizes_bytes": [16 * MiB, 64 * MiB, 256 * MiB, 1 * GiB, 2 * GiB]},
    }

    def setup(self) -> None:
        self.sizes = _check_sizes(self.name, self.params["sizes_bytes"])
        self.peaks = device_peaks(self.ctx.backend)
        self.extra["reference"] = self.peaks.info()
        self.extra["convention"] = (
            "copy_bytes_per_s = bytes copied / s; copy_rw_bytes_per_s = 2 x bytes copied / s "
            "(each byte read and written), compared with the spec sheet's memory bandwidth")

    def _point(self, nbytes: int) -> Point:
        dev = self.ctx.device
        src = torch.randint(0, 256, (nbytes,), dtype=torch.uint8, device=dev)
        dst = torch.empty_like(src)
        timing = time_calls(lambda: dst.copy_(src), self.ctx.backend.synchronize,
                            self.ctx.rules, nbytes)
        seconds = timing.seconds_per_call
        if not torch.equal(dst[:4096], src[:4096]):
            raise RuntimeError("the copy did not copy: destination differs from source")
        rw = formulas.copy_rw_bytes_per_s(nbytes, seconds)
        peak, reason = self.peaks.peak("memory_bandwidth_bytes_per_s")
        return Point(params={"bytes": nbytes}, timing=timing, metrics={
            "copy_bytes_per_s": metric(formulas.copy_bytes_per_s(nbytes, seconds), "B/s"),
            "copy_rw_bytes_per_s": metric(rw, "B/s"),
            "pct_of_peak": pct_metric(rw, peak, reason),
            "time_s": metric(seconds, "s"),
            "throughput_items_per_s": metric(formulas.copy_bytes_per_s(nbytes, seconds), "B/s"),
        })

    def measure(self) -> RepeatResult:
        points = []
        for i, nbytes in enumerate(self.sizes):
            progress_message(self.ctx, i, len(self.sizes), formulas.size_label(nbytes))
            points.append(run_point({"bytes": nbytes}, lambda n=nbytes: self._point(n),
                                    self.ctx.backend))
        best = best_point(points, "copy_rw_bytes_per_s")
        peak, reason = self.peaks.peak("memory_bandwidth_bytes_per_s")
        metrics = {"peak_memory_bandwidth_bytes_per_s": metric(peak, "B/s", reason)}
        if best is not None:
            for name in ("copy_rw_bytes_per_s", "copy_bytes_per_s", "pct_of_peak"):
                metrics[name] = dict(best.metrics[name])
            self.extra["best_bytes"] = best.params["bytes"]
        return sweep_measurement(points, best, metrics)


def pinned_memory_unsupported() -> str | None:
    """Why this process cannot allocate page-locked host memory (None when it can)."""
    try:
        torch.empty(1, dtype=torch.uint8, pin_memory=True)
    except RuntimeError as exc:
        return ("pinned (page-locked) host memory needs an accelerator driver: "
                f"{str(exc).splitlines()[0]}")
    return None


@register
class HostTransferWorkload(Workload):
    name = "host-transfer"
    description = "host-to-device and device-to-host bandwidth by size, pageable and pinned"
    group = "micro"
    modes = ("infer",)
    item_unit = "B"
    configs = {
        "small": {"directions": ["h2d", "d2h"], "memory": ["pinned", "pageable"],
                  "sizes_bytes": [4 * KiB, 64 * KiB, 1 * MiB, 16 * MiB]},
        "full": {"directions": ["h2d", "d2h"], "memory": ["pinned", "pageable"],
                 "sizes_bytes": [4 * KiB * 4**i for i in range(10)]},  # 4 KiB .. 1 GiB
    }

    def setup(self) -> None:
        self.sizes = _check_sizes(self.name, self.params["sizes_bytes"])
        bad = set(self.params["directions"]) - {"h2d", "d2h"}
        bad |= set(self.params["memory"]) - {"pinned", "pageable"}
        if bad:
            raise ValueError(f"host-transfer: unknown direction/memory {sorted(bad)}; "
                             "directions are h2d, d2h and memory pinned, pageable")
        self.peaks = device_peaks(self.ctx.backend)
        self.pinned_reason = pinned_memory_unsupported()
        self.extra["reference"] = self.peaks.info()
        self.extra["convention"] = "bytes_per_s = bytes transferred / s (one direction)"
        if self.ctx.backend.vendor == "cpu":
            self.extra["note"] = ("the cpu device is the host: pageable h2d/d2h points are "
                                  "host memory copies, and pinned memory needs an accelerator")

    def _point(self, direction: str, memory: str, nbytes: int) -> Point:
        pinned = memory == "pinned"
        if pinned and self.pinned_reason:
            raise NotImplementedError(self.pinned_reason)
        host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pinned)
        host.fill_(7)  # touch every page now, not inside the timed copies
        device = torch.empty(nbytes, dtype=torch.uint8, device=self.ctx.device)
        if direction == "h2d":
            def call() -> None:
                device.copy_(host, non_blocking=pinned)
        else:
            device.fill_(7)

            def call() -> None:
                host.copy_(device, non_blocking=pinned)
        timing = time_calls(call, self.ctx.backend.synchronize, self.ctx.rules, nbytes)
        seconds = timing.seconds_per_call
        rate = formulas.copy_bytes_per_s(nbytes, seconds)
        peak, reason = self.peaks.peak("host_link_bytes_per_s")
        return Point(params={"direction": direction, "memory": memory, "bytes": nbytes},
                     timing=timing, metrics={
            "bytes_per_s": metric(rate, "B/s"),
            "pct_of_peak": pct_metric(rate, peak, reason),
            "time_s": metric(seconds, "s"),
            "throughput_items_per_s": metric(rate, "B/s"),
        })

    def measure(self) -> RepeatResult:
        grid = list(itertools.product(self.params["directions"], self.params["memory"],
                                      self.sizes))
        points = []
        for i, (direction, memory, nbytes) in enumerate(grid):
            progress_message(self.ctx, i, len(grid),
                             f"{direction} {memory} {formulas.size_label(nbytes)}")
            params = {"direction": direction, "memory": memory, "bytes": nbytes}
            points.append(run_point(params, lambda d=direction, m=memory, n=nbytes:
                                    self._point(d, m, n), self.ctx.backend))
        peak, reason = self.peaks.peak("host_link_bytes_per_s")
        metrics = {"peak_host_link_bytes_per_s": metric(peak, "B/s", reason)}
        for direction, memory in itertools.product(self.params["directions"],
                                                   self.params["memory"]):
            these = [p for p in points if p.params["direction"] == direction
                     and p.params["memory"] == memory]
            best = best_point(these, "bytes_per_s")
            key = f"{direction}_{memory}"
            if best is None:
                why = next((p.error["message"] for p in these if p.error), "no point ran")
                metrics[f"{key}_bytes_per_s"] = metric(None, "B/s", why)
                metrics[f"{key}_pct_of_peak"] = metric(None, "%", why)
                continue
            metrics[f"{key}_bytes_per_s"] = dict(best.metrics["bytes_per_s"])
            metrics[f"{key}_pct_of_peak"] = dict(best.metrics["pct_of_peak"])
        headline = best_point(points, "bytes_per_s")
        return sweep_measurement(points, headline, metrics)
