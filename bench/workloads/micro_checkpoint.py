"""Checkpoint save and load: time and throughput for a model state of configurable size.

The state is a dict of device tensors (``state_bytes`` in shards of ``tensor_bytes``), the
shape of a model's ``state_dict``. ``save`` is ``torch.save`` to a file plus ``fsync`` (the
state is on storage when the time stops; device-to-host copies and serialisation included).
``load`` is ``torch.load(map_location=device)`` back onto the device, after the file has been
evicted from the page cache (``posix_fadvise(DONTNEED)`` after ``fsync``, outside the timed
call), so it reads storage rather than memory. The first load is compared with the saved state.
The result records the directory's file system: on tmpfs the "storage" is RAM, and it says so.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from bench.documents import RepeatResult
from bench.micro import formulas
from bench.micro.precision import DTYPES, elem_bytes
from bench.micro.sweep import Point, run_point, sweep_measurement, timed_series
from bench.results import metric
from bench.workload import Workload, register

MiB, GiB = 2**20, 2**30
FREE_SPACE_MARGIN = 1.2


def mount_of(path: Path, mounts_text: str) -> tuple[str, str] | None:
    """(mount point, file system type) that holds ``path``: the longest matching mount point."""
    best: tuple[str, str] | None = None
    target = str(path.resolve())
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and (best is None or len(mount) > len(best[0])):
            best = (mount, fields[2])
    return best


def shard_elements(state_bytes: int, tensor_bytes: int, elem: int) -> list[int]:
    """Element counts of the state's tensors: full shards, then the remainder."""
    if state_bytes < elem or tensor_bytes < elem:
        raise ValueError("state_bytes and tensor_bytes must hold at least one element")
    full, rest = divmod(state_bytes // elem, tensor_bytes // elem)
    return [tensor_bytes // elem] * full + ([rest] if rest else [])


def evict_from_page_cache(path: Path) -> bool:
    """Drop the file's (clean) pages from the page cache; False where the OS cannot."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


@register
class CheckpointWorkload(Workload):
    name = "checkpoint"
    description = "checkpoint save (with fsync) and load (cold page cache) time and throughput"
    group = "micro"
    modes = ("infer",)
    item_unit = "B"
    configs = {
        "small": {"state_bytes": 32 * MiB, "tensor_bytes": 4 * MiB, "dir": None},
        "full": {"state_bytes": 4 * GiB, "tensor_bytes": 256 * MiB, "dir": None},
    }

    def setup(self) -> None:
        if self.ctx.precision not in DTYPES or self.ctx.precision == "int8":
            raise ValueError(f"checkpoint: precision must be fp32, fp16 or bf16, got "
                             f"{self.ctx.precision}")
        dtype, elem = DTYPES[self.ctx.precision], elem_bytes(self.ctx.precision)
        shards = shard_elements(int(self.params["state_bytes"]),
                                int(self.params["tensor_bytes"]), elem)
        parent = Path(self.params["dir"] or tempfile.gettempdir())
        if not parent.is_dir():
            raise ValueError(f"checkpoint: dir {parent} is not a directory")
        self.nbytes = sum(shards) * elem
        free = shutil.disk_usage(parent).free
        if free < FREE_SPACE_MARGIN * self.nbytes:
            raise ValueError(f"checkpoint: {parent} has {free} B free, the checkpoint needs "
                             f"{self.nbytes} B (+20 %); set the entry's `dir` parameter")
        self.state = {f"layer{i}.weight": torch.randn(n, dtype=dtype, device=self.ctx.device)
                      for i, n in enumerate(shards)}
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-checkpoint-", dir=parent))
        self.path = self.workdir / "state.pt"
        mounts = Path("/proc/mounts")
        mount = mount_of(parent, mounts.read_text()) if mounts.exists() else None
        self.extra.update(
            state_bytes=self.nbytes, tensors=len(shards), dir=str(parent),
            filesystem=mount[1] if mount else None, mount_point=mount[0] if mount else None,
            save="torch.save + fsync", load="torch.load(map_location=device), cold page cache")
        if mount and mount[1] in ("tmpfs", "ramfs"):
            self.extra["note"] = (f"{parent} is on {mount[1]}: the checkpoint lives in RAM, so "
                                  "these figures are memory speed, not storage speed")

    def _save(self) -> None:
        with open(self.path, "wb") as fh:
            torch.save(self.state, fh)
            fh.flush()
            os.fsync(fh.fileno())

    def _save_point(self) -> Point:
        timing = timed_series(self._save, lambda: None, self.ctx.backend.synchronize,
                              self.ctx.rules, self.nbytes)
        return self._point("save", timing)

    def _load_point(self) -> Point:
        evicted: list[bool] = []
        loaded = torch.load(self.path, map_location=self.ctx.device, weights_only=True)
        if loaded.keys() != self.state.keys() or not all(
                torch.equal(loaded[k], v) for k, v in self.state.items()):
            raise RuntimeError(f"the checkpoint read back from {self.path} differs from the "
                               "saved state")
        del loaded
        timing = timed_series(
            lambda: torch.load(self.path, map_location=self.ctx.device, weights_only=True),
            lambda: evicted.append(evict_from_page_cache(self.path)),
            self.ctx.backend.synchronize, self.ctx.rules, self.nbytes)
        self.extra["page_cache_evicted"] = all(evicted)
        return self._point("load", timing)

    def _point(self, which: str, timing: Any) -> Point:
        seconds = timing.seconds_per_call
        rate = formulas.copy_bytes_per_s(self.nbytes, seconds)
        return Point(params={"op": which, "bytes": self.nbytes}, timing=timing, metrics={
            "time_s": metric(seconds, "s"),
            "bytes_per_s": metric(rate, "B/s"),
            "throughput_items_per_s": metric(rate, "B/s"),
        })

    def measure(self) -> RepeatResult:
        backend = self.ctx.backend
        try:
            self.ctx.progress({"phase": "point", "message": "point 1/2: save"})
            save = run_point({"op": "save", "bytes": self.nbytes}, self._save_point, backend)
            points = [save]
            if save.status == "ok":
                self.ctx.progress({"phase": "point", "message": "point 2/2: load"})
                points.append(run_point({"op": "load", "bytes": self.nbytes}, self._load_point,
                                        backend))
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
        metrics = {}
        for p in points:
            if p.status == "ok":
                metrics[f"{p.params['op']}_s"] = dict(p.metrics["time_s"])
                metrics[f"{p.params['op']}_bytes_per_s"] = dict(p.metrics["bytes_per_s"])
        return sweep_measurement(points, save if save.status == "ok" else None, metrics)
