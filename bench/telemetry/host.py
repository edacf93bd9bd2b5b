"""Host telemetry for the CPU reference: psutil, and Intel/AMD RAPL energy where readable.

The device of a cpu run is the share of the host its benchmark processes may use, so the
device fields measure that share and nothing else: ``util_pct`` is the CPU time of the
repeat's process tree (the child, its data-loader workers, ranks and compile workers) over
the logical CPUs it may run on (its affinity), ``mem_used_bytes`` that tree's resident
memory. Between repeats there is no benchmark process and both are null. Whole-host figures,
other processes included, are kept under host names (``host_util_pct``,
``host_mem_used_bytes``).

RAPL exposes a cumulative energy counter per package (``energy_uj``) that wraps at
``max_energy_range_uj``. Power is the counter's rate between two readings. In a VM or without
permission the counter is absent: power is then null with the reason, never zero. RAPL power
is the whole package's: its scope says so.
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.documents import Info
from bench.telemetry.base import Sample, TelemetryAdapter

RAPL_ROOT = Path(os.environ.get("BENCH_RAPL_ROOT", "/sys/class/powercap"))
TEMPERATURE_SENSORS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "acpitz")


@dataclass
class RaplDomain:
    path: Path
    max_range_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def find_rapl_domains(root: Path | None = None) -> tuple[list[RaplDomain], str | None]:
    """Package-level RAPL domains (``intel-rapl:N``, not sub-zones), or why there are none."""
    root = root or RAPL_ROOT
    paths = sorted(Path(p) for p in glob.glob(str(root / "intel-rapl:*"))
                   if ":" in Path(p).name and Path(p).name.count(":") == 1)
    if not paths:
        return [], f"no RAPL package domains under {root} (VM, non-x86 host or no powercap driver)"
    domains = []
    for path in paths:
        try:
            max_range = int((path / "max_energy_range_uj").read_text().strip())
            domain = RaplDomain(path, max_range)
            domain.read_uj()
        except (OSError, ValueError) as exc:
            return [], f"RAPL counter {path}/energy_uj not readable: {exc}"
        domains.append(domain)
    return domains, None


def counter_delta(before: int, after: int, max_range: int) -> int:
    """Difference of a wrapping counter."""
    return after - before if after >= before else after + max_range - before


def share_pct(cpu_s: float, wall_s: float, cpus: int) -> float | None:
    """CPU seconds used over ``wall_s`` as % of ``cpus`` logical CPUs, clamped to [0, 100]
    (two readings taken microseconds apart can push a fully busy tree a little over)."""
    if wall_s <= 0 or cpus <= 0 or cpu_s < 0:
        return None
    return max(0.0, min(100.0, cpu_s / (wall_s * cpus) * 100.0))


@dataclass(frozen=True)
class TreeUsage:
    """One reading of a process tree: cumulative CPU seconds, resident bytes, allowed CPUs."""

    cpu_s: float
    rss_bytes: int
    cpus: int
    processes: int


def tree_usage(root: psutil.Process) -> TreeUsage:
    """CPU time and RSS of ``root`` and every live descendant.

    A live process's ``children_*`` times hold its reaped children's, so a worker that has
    exited is still counted, once. RSS is summed (pages shared between the processes count
    in each: an upper bound of the tree's own memory).
    """
    cpu = 0.0
    rss = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        procs = [root]
    counted = 0
    for proc in procs:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                rss += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        counted += 1
        cpu += times.user + times.system + getattr(times, "children_user", 0.0) + \
            getattr(times, "children_system", 0.0)
    try:
        allowed = len(root.cpu_affinity())
    except (psutil.Error, AttributeError):
        allowed = psutil.cpu_count(logical=True) or 1
    return TreeUsage(cpu, rss, allowed, counted)


class ProcessTree:
    """Successive readings of the benchmark's process tree, as a CPU share and RSS."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        # The first reading is compared with the process's start (zero CPU time then).
        started = self.proc.create_time()
        self._last = (time.monotonic() - max(0.0, time.time() - started), 0.0)

    def read(self) -> tuple[float | None, int | None]:
        now = time.monotonic()
        usage = tree_usage(self.proc)
        if not usage.processes:
            return None, None
        t0, cpu0 = self._last
        self._last = (now, usage.cpu_s)
        # A worker that has exited but is not yet reaped is in no one's times for a moment.
        share = share_pct(usage.cpu_s - cpu0, now - t0, usage.cpus) \
            if usage.cpu_s >= cpu0 else None
        return share, usage.rss_bytes


class HostAdapter(TelemetryAdapter):
    name = "host"
    measures = "host"

    def __init__(self, device_indices: list[int] | None = None) -> None:
        super().__init__(device_indices or [0])
        psutil.cpu_percent(interval=None)  # prime: the first call has no reference point
        self.domains, self._rapl_reason = find_rapl_domains()
        reader = getattr(psutil, "sensors_temperatures", None)
        self._has_sensor = bool(reader) and any(reader().get(k) for k in TEMPERATURE_SENSORS)
        self._energy_uj = 0
        self._last: tuple[float, list[int]] | None = None
        self._tree: ProcessTree | None = None
        self.scope = {
            "util_pct": "CPU time of the benchmark's process tree (the repeat's child and its "
                        "descendants) over the logical CPUs it may run on (its affinity)",
            "mem_used_bytes": "resident memory (RSS) of the benchmark's process tree",
            "mem_total_bytes": "host memory",
            "power_w": "sum of the RAPL package domains (CPU sockets; not DRAM, not the board)",
            "energy_j": "RAPL package counters accumulated since the adapter opened",
            "host_util_pct": "all logical CPUs of the host, other processes included "
                             "(psutil.cpu_percent)",
            "host_mem_used_bytes": "host memory in use (total - available), other processes "
                                   "included",
        }

    def track(self, pid: int | None) -> None:
        try:
            self._tree = ProcessTree(pid) if pid is not None else None
        except psutil.Error:
            self._tree = None

    def _rapl(self) -> tuple[float | None, float | None]:
        if not self.domains:
            self.missing("power_w", str(self._rapl_reason))
            self.missing("energy_j", str(self._rapl_reason))
            return None, None
        now = time.monotonic()
        values = [d.read_uj() for d in self.domains]
        power = None
        if self._last is not None:
            t0, before = self._last
            delta = sum(counter_delta(b, a, d.max_range_uj)
                        for b, a, d in zip(before, values, self.domains, strict=True))
            self._energy_uj += delta
            if now > t0:
                power = delta / 1e6 / (now - t0)
        else:
            self.field_misses["power_w"] += 1  # the first reading has no reference point
        self._last = (now, values)
        return power, self._energy_uj / 1e6

    def _temperature(self) -> float | None:
        if not self._has_sensor:  # checked once: scanning hwmon costs more than the rest
            return self.missing("temp_c", "no CPU temperature sensor visible to psutil")
        temps = psutil.sensors_temperatures()
        for key in TEMPERATURE_SENSORS:
            entries = temps.get(key) if temps else None
            if entries:
                return max(e.current for e in entries)
        return self.missing("temp_c", "the CPU temperature sensor gave no reading")

    def _clock(self) -> float | None:
        try:
            freq = psutil.cpu_freq()
        except (OSError, NotImplementedError):
            freq = None
        if freq is None or not freq.current:
            return self.missing("clock_hz", "psutil.cpu_freq() unavailable")
        return freq.current * 1e6

    def read(self) -> list[Sample]:
        vm = psutil.virtual_memory()
        power, energy = self._rapl()
        tree = self._tree
        share, rss = tree.read() if tree is not None else (None, None)
        sample = Sample(
            util_pct=share,
            mem_used_bytes=None if rss is None else float(rss),
            mem_total_bytes=float(vm.total),
            host_util_pct=psutil.cpu_percent(interval=None),
            host_mem_used_bytes=float(vm.total - vm.available),
            power_w=power,
            temp_c=self._temperature(),
            clock_hz=self._clock(),
            energy_j=energy,
        )
        self.missing("throttle", "the host API reports no throttle state")
        return [sample for _ in self.device_indices]

    def describe(self) -> Info:
        return {
            "backend": self.name,
            "source": "psutil" + (" + RAPL" if self.domains else ""),
            "rapl_domains": [str(d.path) for d in self.domains],
            "scope": "the benchmark's process tree (utilisation, memory) and the whole host "
                     "(host_* fields, RAPL power)",
            "field_scope": self.scope,
        }
