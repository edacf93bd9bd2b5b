"""Typed telemetry samples in SI units, and the adapter interface every vendor implements.

An adapter reads one sample per device from the vendor's management API (or, as a fallback,
its command-line tool). A field it cannot read is ``None`` and the adapter says why in
``unavailable`` (never a zero that looks real); ``scope`` says what a field measures where
that is not obvious (a whole card, the board input rail, the whole host).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from bench.documents import Info

# Field name -> unit. The names carry their units (units in names).
SAMPLE_FIELDS: dict[str, str] = {
    "util_pct": "%",
    "mem_used_bytes": "B",
    "mem_total_bytes": "B",
    "power_w": "W",
    "temp_c": "degC",
    "clock_hz": "Hz",
    "energy_j": "J",
    "throttle": "reasons",
    # Whole-host figures beside a device's own (the cpu reference, where the device is a
    # share of the host): other processes included, so never reported as the device's.
    "host_util_pct": "%",
    "host_mem_used_bytes": "B",
}

MIB = 2**20
T = TypeVar("T")


class AdapterUnavailable(Exception):
    """The adapter cannot open here (no library, no tool, no device): the next one is tried."""


def c_function(lib: Any, name: str) -> Any:
    """``lib.name`` returning a C int status, or None where the library lacks it (older
    versions of a vendor library miss newer calls)."""
    try:
        fn = getattr(lib, name)
    except AttributeError:
        return None
    fn.restype = ctypes.c_int
    return fn


def error_string_function(lib: Any, name: str) -> Any:
    """The library's ``const char *name(int status)``, or None where it has none."""
    fn = c_function(lib, name)
    if fn is not None:
        fn.restype = ctypes.c_char_p
        fn.argtypes = [ctypes.c_int]
    return fn


def load_first_library(name: str, paths: list[str], opener: Callable[[str], T]) -> T:
    """The first of ``paths`` that ``opener`` can load; otherwise why none could."""
    tried = []
    for path in paths:
        try:
            return opener(path)
        except OSError as exc:
            tried.append(f"{path} ({exc})")
    raise AdapterUnavailable(f"{name} not loadable: " + "; ".join(tried))


@dataclass
class Sample:
    """One reading of one device. ``energy_j`` is a cumulative counter where the device has one."""

    util_pct: float | None = None
    mem_used_bytes: float | None = None
    mem_total_bytes: float | None = None
    power_w: float | None = None
    temp_c: float | None = None
    clock_hz: float | None = None
    energy_j: float | None = None
    throttle: str | None = None
    host_util_pct: float | None = None
    host_mem_used_bytes: float | None = None

    def values(self) -> dict[str, float | str | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class TelemetryAdapter(ABC):
    """Reads the devices a run uses. Subclasses are small: one vendor API each.

    ``measures`` is ``"device"`` for an accelerator's own API and ``"host"`` for psutil/RAPL:
    host readings are never reported as an accelerator's utilisation or power.
    """

    name: ClassVar[str]
    measures: ClassVar[str] = "device"

    def __init__(self, device_indices: list[int]) -> None:
        self.device_indices = device_indices
        self.unavailable: dict[str, str] = {}
        self.scope: dict[str, str] = {}
        self.field_misses: Counter[str] = Counter()
        self.power_shared: set[int] = set()

    def missing(self, field: str, reason: str) -> None:
        """Record that ``field`` could not be read in this sample, and why (first reason kept)."""
        self.unavailable.setdefault(field, reason)
        self.field_misses[field] += 1
        return None

    @abstractmethod
    def read(self) -> list[Sample]:
        """One sample per device in ``device_indices``; raises on a failed reading."""

    def track(self, pid: int | None) -> None:  # noqa: B027 - optional hook
        """The runner names the repeat's child process (None when it has ended): an adapter
        whose device is a share of the host measures that process tree's own use."""

    # Why this adapter cannot list the processes on its devices (None: it can).
    processes_unavailable: str | None = "this telemetry adapter does not list device processes"

    def device_processes(self) -> list[Info]:
        """The processes using the devices of ``device_indices`` now: ``{"device": index,
        "pid": pid, "used_memory_bytes": bytes or None}`` each (``bench.contention`` tells
        the benchmark's own from the others). Raises where the reading fails."""
        raise NotImplementedError(self.processes_unavailable)

    def describe(self) -> Info:
        """Source and device names for the result (called once, after the first read)."""
        return {"backend": self.name}

    def power_counted_elsewhere(self) -> set[int]:
        """Indices (of ``device_indices``) whose power this adapter reports on another device
        on purpose (a card of two devices read once), so that a sum counts it once."""
        return set(self.power_shared)

    def share_power(self, physical: list[int], elsewhere: frozenset[int]) -> None:
        """Record which devices' power is counted on another (``elsewhere``: physical indices,
        ``physical``: those of ``device_indices`` in the same order)."""
        self.power_shared = {logical for logical, p in zip(self.device_indices, physical,
                                                           strict=False) if p in elsewhere}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the management API."""


class ToolError(Exception):
    """A vendor command-line tool failed (missing, non-zero exit, timeout)."""


def run_tool(argv: list[str], timeout_s: float = 5.0) -> str:
    """Run a vendor CLI (``cnmon``, ``ixsmi``) once and return its stdout.

    Output is decoded leniently (a stray byte must not lose the whole reading); the locale is
    pinned so numbers are printed the way the parsers expect.
    """
    env = {**os.environ, "LC_ALL": "C"}
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout_s, env=env, check=False)
    except FileNotFoundError as exc:
        raise ToolError(f"{argv[0]} not found on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"{argv[0]} did not answer within {timeout_s:g} s") from exc
    out = proc.stdout.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", errors="replace").strip() or out.strip()
        raise ToolError(f"{' '.join(argv[:2])} exited with {proc.returncode}: "
                        f"{err.splitlines()[-1] if err else 'no message'}")
    return out


def physical_indices(logical: list[int], visible: str | None) -> list[int]:
    """Management APIs ignore ``*_VISIBLE_DEVICES``: map the framework's indices to theirs.

    Only integer lists are mapped; UUIDs or MIG ids are left to the API's order
    [documented limit].
    """
    if not visible:
        return logical
    parts = [p.strip() for p in visible.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        return logical
    return [int(parts[i]) for i in logical if i < len(parts)]
