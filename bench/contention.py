"""What else used the machine while a timed window ran, and how much that slowed it.

One measurement, used by the run (each repeat records it: ``bench.runner``) and by the audit
(its re-runs: ``testbed.audit.hostload``). Everything is read from ``/proc`` (or the
directory ``BENCH_PROC_ROOT`` names, where the tests put files of their own):

- **Run-queue wait.** The kernel counts, per thread, the time it ran and the time it was
  ready to run but waited for a CPU (``/proc/<pid>/task/<tid>/schedstat``). A thread that
  lived L seconds of a timed window and waited W of them would have done the same work in
  L - W without the competition, so the load slowed it by at most L / (L - W). The
  **slowdown** of a window is that ratio averaged over the threads of the processes that
  measure (the harness's child per repeat and its workers, not the harness itself with its
  telemetry sampler), weighted by the CPU time each used in the window: the threads that do
  the work decide, a thread that sleeps barely counts. A CPU-bound repeat that gets half the
  CPUs it wants shows 2.0; a workload whose step is a sleep shows about 1.0 on the same
  machine, as it is barely slowed.
- **Other processes' CPU time.** The host's busy CPU time (``/proc/stat``: user, nice,
  system, irq, softirq; guest time is inside user) across the window, less the CPU time of
  the benchmark's own threads (the harness and its children): what every other process used,
  as CPUs kept busy on average.
- **Steal.** The CPU time a hypervisor gave to other guests (``/proc/stat`` steal), as CPUs.
- For the reader: the load average (``/proc/loadavg``) and the CPU pressure (PSI,
  ``/proc/pressure/cpu``) at their highest.

The monitor samples ten times a second in a thread; the process tree under its roots is
looked up at every reading until it has a process that measures, then once a second (a
worker started later is found within a second; a repeat's child spends longer than that
importing before its first timed window). Its own CPU time is recorded: it
is the harness's, so it counts as the benchmark's own and never as another process's.

``judge`` turns the figures of an entry's repeats into its ``disturbed`` record by the
thresholds of ``bench.rules.QuietRules``.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.documents import (
    Contention,
    DeviceProcesses,
    Disturbed,
    DisturbedReason,
    Info,
    RerunHost,
    ThrottleRecord,
)
from bench.rules import QuietRules

PROC_ENV = "BENCH_PROC_ROOT"
PERIOD_S = 0.1
TREE_EVERY_S = 1.0
PROBE_EVERY_S = 1.0
MAX_SLOWDOWN = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# /proc/stat's columns after "cpu": user nice system idle iowait irq softirq steal ...
BUSY_COLUMNS = (0, 1, 2, 5, 6)
STEAL_COLUMN = 7
METHOD = ("per-thread run and run-queue wait times (/proc/<pid>/task/<tid>/schedstat) of the "
          "processes that measure (the harness's children) during the timed window; slowdown = "
          "CPU-time-weighted life / (life - wait); other processes' CPU = the host's busy CPU "
          "time (/proc/stat) less the benchmark's own threads'")

Point = tuple[float, float, float]  # (monotonic s, run s, wait s) of one thread
HostPoint = tuple[float, float, float | None]  # (monotonic s, busy CPU s, steal CPU s)


def proc_root() -> Path:
    return Path(os.environ.get(PROC_ENV) or "/proc")


# -- reading /proc -----------------------------------------------------------------------------
@dataclass(frozen=True)
class HostCpu:
    """Cumulative CPU time of the whole host since boot, in CPU seconds."""

    busy_s: float
    steal_s: float | None  # None: the kernel's line has no steal column
    cpus: int


def read_host_cpu(proc: Path) -> HostCpu | None:
    """The host's busy and steal CPU time from ``/proc/stat`` (None where unreadable)."""
    try:
        lines = (proc / "stat").read_text().splitlines()
        total = next(line for line in lines if line.startswith("cpu "))
        ticks = [int(x) for x in total.split()[1:]]
        busy = sum(ticks[i] for i in BUSY_COLUMNS)
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    steal = ticks[STEAL_COLUMN] / CLOCK_TICKS if len(ticks) > STEAL_COLUMN else None
    return HostCpu(busy / CLOCK_TICKS, steal, max(cpus, 1))


def read_load_avg(proc: Path) -> float | None:
    """The 1-minute load average."""
    try:
        return float((proc / "loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_pressure(proc: Path) -> float | None:
    """System-wide CPU pressure: the share of the last 10 s some task waited for a CPU."""
    try:
        line = (proc / "pressure" / "cpu").read_text().splitlines()[0]
        return float(dict(kv.split("=") for kv in line.split()[1:])["avg10"]) / 100
    except (OSError, ValueError, KeyError, IndexError):
        return None


def _parent(stat: str) -> tuple[int, str] | None:
    """(ppid, start time) from a ``stat`` line; the command name may hold spaces and ')'."""
    fields = stat.rsplit(")", 1)[1].split()
    try:
        return int(fields[1]), fields[19]
    except (IndexError, ValueError):
        return None


def descendants(proc: Path, roots: set[int]) -> set[int]:
    """Every process below ``roots`` (found by each process's parent in ``/proc/<pid>/stat``:
    the ``children`` files need a kernel option many kernels lack)."""
    parents: dict[int, list[int]] = {}
    try:
        names = os.listdir(proc)
    except OSError:
        return set()
    for name in names:
        if not name.isdigit():
            continue
        try:
            found = _parent((proc / name / "stat").read_text())
        except (OSError, IndexError):
            continue
        if found is not None:
            parents.setdefault(found[0], []).append(int(name))
    out: set[int] = set()
    todo = list(roots)
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in out and child not in roots:
                out.add(child)
                todo.append(child)
    return out


def read_threads(proc: Path, pid: int, series: dict[Any, list[Point]], now: float) -> None:
    """Append each thread's (now, run, wait) to its series; a thread is keyed by pid, tid and
    start time, so a reused id is another thread."""
    task_dir = proc / str(pid) / "task"
    try:
        tids = [t for t in os.listdir(task_dir) if t.isdigit()]
    except OSError:
        return
    for tid in tids:
        try:
            run_ns, wait_ns = (task_dir / tid / "schedstat").read_text().split()[:2]
            found = _parent((task_dir / tid / "stat").read_text())
            run_s, wait_s = int(run_ns) / 1e9, int(wait_ns) / 1e9
        except (OSError, ValueError, IndexError):
            continue
        if found is not None:
            series.setdefault((pid, int(tid), found[1]), []).append((now, run_s, wait_s))


# -- the arithmetic ---------------------------------------------------------------------------
def thread_slowdown(threads: list[tuple[float, float, float]]) -> float | None:
    """CPU-time-weighted mean of life / (life - wait) over ``(life, run, wait)`` of each
    thread; None when no thread ran."""
    total = sum(run for _, run, _ in threads)
    if total <= 0:
        return None
    acc = 0.0
    for life, run, wait in threads:
        life = max(life, run + wait, 1e-9)
        acc += run * min(life / max(life - wait, life / MAX_SLOWDOWN), MAX_SLOWDOWN)
    return acc / total


def _bracket(points: Sequence[tuple[Any, ...]], a: float, b: float, margin_s: float
             ) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
    """The last reading at or before ``a`` and the first at or after ``b`` (within
    ``margin_s``; the nearest inside where there is none)."""
    near = [p for p in points if a - margin_s <= p[0] <= b + margin_s]
    if len(near) < 2:
        return None
    before = [p for p in near if p[0] <= a] or near[:1]
    after = [p for p in near if p[0] >= b] or near[-1:]
    first, last = before[-1], after[0]
    return (first, last) if last[0] > first[0] else None


def window_threads(series: dict[Any, list[Point]], a: float, b: float,
                   margin_s: float = PERIOD_S) -> list[tuple[float, float, float]]:
    """(life, run, wait) of each thread over the window ``a``..``b``."""
    out = []
    for points in series.values():
        pair = _bracket(points, a, b, margin_s)
        if pair is not None:
            (t0, r0, w0), (t1, r1, w1) = pair
            out.append((t1 - t0, r1 - r0, w1 - w0))
    return out


def window_slowdown(series: dict[Any, list[Point]], windows: list[tuple[float, float]],
                    margin_s: float = PERIOD_S) -> float | None:
    """The slowdown during the timed windows only (setup, imports and the gaps between
    repeats left out)."""
    return thread_slowdown([t for a, b in windows
                            for t in window_threads(series, a, b, margin_s)])


def window_demand(series: dict[Any, list[Point]], windows: list[tuple[float, float]],
                  margin_s: float = PERIOD_S) -> float | None:
    """The CPUs the measuring threads wanted during the timed windows (ran or waited to run,
    over the windows' length): about 1 per busy thread of a CPU-bound loop, about 0 for a
    loop whose step is a sleep."""
    threads = [t for a, b in windows for t in window_threads(series, a, b, margin_s)]
    length = sum(b - a for a, b in windows)
    if not threads or length <= 0:
        return None
    return sum(run + wait for _, run, wait in threads) / length


def throttle_figures(t: Sequence[float], throttles: Sequence[Sequence[str | None]],
                     start: float, end: float, disturbing: Sequence[str]) -> ThrottleRecord:
    """Clock-throttle reasons the telemetry saw in a window, over the devices the entry used
    (``throttles``: each device's series of '+'-joined reason names, 'none' or null): the
    share of readings that named each reason, and the share that named one of
    ``disturbing`` (thermal slowdowns, a power brake: not the device's own power cap)."""
    readings = 0
    counts: dict[str, int] = {}
    disturbed = 0
    for series in throttles:
        for ti, value in zip(t, series, strict=False):
            if not start <= ti <= end or value is None:
                continue
            readings += 1
            names = [n for n in str(value).split("+") if n and n != "none"]
            for name in names:
                counts[name] = counts.get(name, 0) + 1
            disturbed += any(n in disturbing for n in names)
    if not readings:
        return {"readings": 0, "reasons": {}, "disturbing_share": None}
    return {"readings": readings,
            "reasons": {k: v / readings for k, v in sorted(counts.items())},
            "disturbing_share": disturbed / readings}


# -- the monitor ------------------------------------------------------------------------------
@dataclass
class ContentionMonitor:
    """Samples the host while the benchmark runs: ``with ContentionMonitor(roots) as m: ...``,
    then ``m.window(start, end)`` for a timed window's figures (the run) or
    ``m.report(windows)`` over several (the audit).

    ``roots`` returns the pids of the harness (called every tree look-up, so a container that
    starts later is found); the processes below them are the ones that measure. ``probe``,
    when given, is read once a second beside (the processes on the device: the telemetry
    adapter's ``device_processes``)."""

    roots: Callable[[], list[int]]
    period_s: float = PERIOD_S
    proc: Path = field(default_factory=proc_root)
    probe: Callable[[], Any] | None = None
    # Threads of the processes that measure (the roots' descendants) and of the roots
    # themselves (the harness and its sampler, which use the host but do not set the pace of a
    # timed loop).
    series: dict[Any, list[Point]] = field(default_factory=dict)
    root_series: dict[Any, list[Point]] = field(default_factory=dict)
    host: list[HostPoint] = field(default_factory=list)
    loads: list[tuple[float, float]] = field(default_factory=list)
    pressures: list[tuple[float, float]] = field(default_factory=list)
    probes: list[tuple[float, Any]] = field(default_factory=list)
    pids: set[int] = field(default_factory=set)  # every process of the tree seen
    cpus: int | None = None
    monitor_cpu_s: float = 0.0
    _children: set[int] = field(default_factory=set)
    _roots: set[int] = field(default_factory=set)
    _tree_at: float = -math.inf
    _probe_at: float = -math.inf
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = 0.0
    _result: RerunHost | None = None

    def __enter__(self) -> ContentionMonitor:
        self._t0 = time.monotonic()
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="contention", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        self._result = self._summarise(time.monotonic() - self._t0)

    def _loop(self) -> None:
        cpu0 = time.thread_time()
        while not self._stop.wait(self.period_s):
            self.sample()
            self.monitor_cpu_s = time.thread_time() - cpu0

    def sample(self, now: float | None = None) -> None:
        """One reading of everything (``now``: the monotonic time to record it at, the clock
        the harness times its windows with)."""
        now = time.monotonic() if now is None else now
        cpu = read_host_cpu(self.proc)
        if cpu is not None:
            self.cpus = cpu.cpus
            self.host.append((now, cpu.busy_s, cpu.steal_s))
        load = read_load_avg(self.proc)
        if load is not None:
            self.loads.append((now, load))
        pressure = read_pressure(self.proc)
        if pressure is not None:
            self.pressures.append((now, pressure))
        if not self._children or now - self._tree_at >= TREE_EVERY_S:
            self._tree_at = now
            try:
                self._roots = set(self.roots())
            except Exception:  # a root that cannot be found (a container not yet started)
                self._roots = set()
            self._children = descendants(self.proc, self._roots)
            self.pids |= self._roots | self._children
        for pid in self._roots - self._children:
            read_threads(self.proc, pid, self.root_series, now)
        for pid in self._children - self._roots:
            read_threads(self.proc, pid, self.series, now)
        if self.probe is not None and now - self._probe_at >= PROBE_EVERY_S:
            self._probe_at = now
            try:
                self.probes.append((now, self.probe()))
            except Exception as exc:  # a failed reading is a reason, never the run's end
                self.probes.append((now, {"error": f"{type(exc).__name__}: {exc}"}))

    # -- figures ---------------------------------------------------------------------------
    def window(self, start: float, end: float) -> Contention:
        """The contention during one timed window (monotonic seconds)."""
        margin = self.period_s
        measuring = window_threads(self.series, start, end, margin)
        harness = window_threads(self.root_series, start, end, margin)
        run = sum(r for _, r, _ in measuring)
        wait = sum(w for _, _, w in measuring)
        own = run + sum(r for _, r, _ in harness)
        out: Contention = {
            "window_s": end - start, "cpus": self.cpus, "threads": len(measuring),
            "slowdown": thread_slowdown(measuring),
            "cpu_wait_fraction": wait / (run + wait) if run + wait > 0 else None,
            "bench_cpus": None, "other_cpus": None, "steal_cpus": None,
        }
        pair = _bracket(self.host, start, end, margin)
        if pair is not None:
            (t0, busy0, steal0), (t1, busy1, steal1) = pair
            span = t1 - t0
            out["bench_cpus"] = own / span
            out["other_cpus"] = max(busy1 - busy0 - own, 0.0) / span
            if steal0 is not None and steal1 is not None:
                out["steal_cpus"] = max(steal1 - steal0, 0.0) / span
        near = (start - margin, end + margin)
        loads = [v for t, v in self.loads if near[0] <= t <= near[1]]
        pressures = [v for t, v in self.pressures if near[0] <= t <= near[1]]
        out["load_avg_1m_max"] = max(loads) if loads else None
        out["cpu_pressure_avg10_max"] = max(pressures) if pressures else None
        if self.probe is not None:
            out["device_processes"] = self._device_processes(start, end)
        why = [what for what, ok in (
            ("no thread of the benchmark could be read (/proc/<pid>/task/<tid>/schedstat)",
             measuring),
            ("the host's CPU time could not be read (/proc/stat)", pair is not None)) if not ok]
        if why:
            out["reason"] = "; ".join(why)
        out["monitor_cpu_s"] = self.monitor_cpu_s
        out["method"] = METHOD
        return out

    def _device_processes(self, start: float, end: float) -> DeviceProcesses:
        """Other processes on the device during the window: the probe's readings inside it
        and the nearest on each side. A process is another's when its pid is none of the
        benchmark's; where the device lists pids of another pid namespace (a container) and
        none is the benchmark's, which are its own cannot be told."""
        inside = [(t, v) for t, v in self.probes if start <= t <= end]
        before = [(t, v) for t, v in self.probes if t < start][-1:]
        after = [(t, v) for t, v in self.probes if t > end][:1]
        readings = [v for _, v in (*before, *inside, *after)]
        errors = [v["error"] for v in readings if isinstance(v, dict)]
        lists = [v for v in readings if isinstance(v, list)]
        if not lists:
            return {"other": None, "processes": [],
                    "reason": errors[0] if errors else "no reading of the device's processes "
                                                      "near the window"}
        seen: dict[tuple[Any, Any], Info] = {}
        for listing in lists:
            for p in listing:
                key = (p.get("device"), p.get("pid"))
                mem = p.get("used_memory_bytes")
                if key not in seen or (mem or 0) > (seen[key].get("used_memory_bytes") or 0):
                    seen[key] = dict(p)
        processes = sorted(seen.values(), key=lambda p: (str(p.get("device")), p.get("pid")))
        ours = [p for p in processes if p.get("pid") in self.pids]
        others = [p for p in processes if p.get("pid") not in self.pids]
        for p in processes:
            p["benchmark"] = p.get("pid") in self.pids
        if others and not ours:
            return {"other": None, "processes": processes,
                    "reason": "the device lists processes none of which is the benchmark's "
                              "(pids of another pid namespace, as in a container): which are "
                              "other processes cannot be told"}
        memory = [p.get("used_memory_bytes") for p in others]
        return {"other": len(others), "processes": processes,
                "other_memory_bytes": sum(m for m in memory if m is not None)
                if others and all(m is not None for m in memory) else None}

    def _summarise(self, wall_s: float) -> RerunHost:
        """The host over the monitor's whole life (the audit's record of a re-run)."""
        whole = [(p[-1][0] - p[0][0], p[-1][1] - p[0][1], p[-1][2] - p[0][2])
                 for p in (*self.series.values(), *self.root_series.values())]
        own = sum(run for _, run, _ in whole)
        wait = sum(w for _, _, w in whole)
        busy = None
        if len(self.host) >= 2 and self.host[-1][0] > self.host[0][0]:
            busy = max(self.host[-1][1] - self.host[0][1], 0.0)
        loads = [v for _, v in self.loads]
        return {
            "cpus": self.cpus or os.cpu_count() or 1, "duration_s": wall_s,
            "load_avg_1m": {"start": loads[0], "max": max(loads), "end": loads[-1]}
            if loads else None,
            "cpu_pressure_avg10_max": max((v for _, v in self.pressures), default=None),
            "busy_cpus_mean": busy / wall_s if busy is not None and wall_s > 0 else None,
            "rerun_cpus_mean": own / wall_s if whole and wall_s > 0 else None,
            "other_cpus_mean": max(busy - own, 0.0) / wall_s
            if whole and busy is not None and wall_s > 0 else None,
            "rerun_threads": len(whole),
            "cpu_wait_fraction": wait / (own + wait) if own + wait > 0 else None,
            "slowdown": None,
            "method": METHOD,
            **({} if whole else {"reason": "no thread of the re-run could be read"}),
        }

    def report(self, windows: dict[str, list[tuple[float, float]]]) -> RerunHost:
        """The host's load over the monitor's life, and the slowdown during each entry's timed
        windows (``entry id -> [(start, end)]`` in monotonic seconds) and over all of them."""
        assert self._result is not None, "report() after the with block"
        per_entry = {e: window_slowdown(self.series, w, self.period_s)
                     for e, w in windows.items()}
        every = [w for ws in windows.values() for w in ws]
        return {**self._result, "slowdown": window_slowdown(self.series, every, self.period_s),
                "entry_slowdown": per_entry,
                "entry_cpu_demand": {e: window_demand(self.series, w, self.period_s)
                                     for e, w in windows.items()}}


# -- the judgment -----------------------------------------------------------------------------
def _reason(code: str, figure: float | None, threshold: float | None, unit: str | None,
            message: str) -> DisturbedReason:
    return {"code": code, "figure": figure, "threshold": threshold, "unit": unit,
            "message": message}


def _worst(records: Sequence[Contention], key: str) -> tuple[float | None, int | None]:
    """The highest figure over the repeats and the repeat (1-based) it came from."""
    best: tuple[float | None, int | None] = (None, None)
    for i, rec in enumerate(records, 1):
        value = rec.get(key)
        if isinstance(value, int | float) and (best[0] is None or value > best[0]):
            best = (float(value), i)
    return best


def _of(i: int | None, n: int) -> str:
    return f" (repeat {i} of {n})" if n > 1 and i else ""


def judge(records: Sequence[Contention | None], cv: float | None, rules: QuietRules,
          require_quiet: bool = False) -> Disturbed:
    """An entry's ``disturbed`` record from its repeats' contention figures (``records``,
    None for a repeat without a timed window) and its throughput's repeat CV: false, true with
    every reason (its figure, the threshold, the unit and the fix in one sentence), or null
    when nothing could be judged."""
    measured = [r for r in records if r]
    n = len(records)
    reasons = []
    unjudged = []
    cpus = next((r["cpus"] for r in measured if r.get("cpus")), None)
    other, i = _worst(measured, "other_cpus")
    if other is not None and cpus:
        limit = rules.max_other_cpu_share * cpus
        if other > limit:
            reasons.append(_reason(
                "host_cpu", round(other, 3), round(limit, 3), "CPUs",
                f"other processes used {other:.1f} of {cpus} CPUs during the timed window"
                f"{_of(i, n)}, above {limit:.2g}: re-run on a quiet machine"))
    slow, i = _worst(measured, "slowdown")
    if slow is not None and slow > rules.max_slowdown:
        reasons.append(_reason(
            "slowdown", round(slow, 3), rules.max_slowdown, "x",
            f"the benchmark's threads waited for a CPU: the host's load slowed the timed window"
            f"{_of(i, n)} x{slow:.2f}, above x{rules.max_slowdown:g}: re-run on a quiet machine"))
    if other is None and slow is None:
        why = next((r.get("reason") for r in measured if r.get("reason")), None)
        unjudged.append("the host's contention was not measured"
                        + (f" ({why})" if why else " (no timed window)"))
    steal, i = _worst(measured, "steal_cpus")
    if steal is not None and cpus and steal > rules.max_steal_share * cpus:
        limit = rules.max_steal_share * cpus
        reasons.append(_reason(
            "steal", round(steal, 3), round(limit, 3), "CPUs",
            f"the hypervisor gave {steal:.2f} of {cpus} CPUs to other guests (steal) during the "
            f"timed window{_of(i, n)}, above {limit:.2g}: run on a dedicated host or VM"))
    throttled = [(j, (r.get("throttle") or {})) for j, r in enumerate(records, 1) if r]
    share, i = _worst([t for _, t in throttled], "disturbing_share")
    if share is not None and share > rules.max_throttled_share:
        which = sorted({name for _, t in throttled for name, s in (t.get("reasons") or {}).items()
                        if name in rules.throttle_reasons and s > 0})
        reasons.append(_reason(
            "throttle", round(share * 100, 1), rules.max_throttled_share * 100, "%",
            f"the device slowed its clocks ({', '.join(which)}) in {share:.0%} of the readings "
            f"of the timed window{_of(i, n)}, above {rules.max_throttled_share:.0%}: let it "
            "cool, check its cooling and power, then re-run"))
    procs = [(j, r.get("device_processes")) for j, r in enumerate(records, 1)
             if r and r.get("device_processes")]
    counts = [(p["other"], j, p) for j, p in procs if isinstance(p.get("other"), int)]
    if counts:
        count, j, p = max(counts, key=lambda c: c[0])
        if count > rules.max_other_device_processes:
            shown = ", ".join(
                f"pid {q.get('pid')}" + (f" ({q['used_memory_bytes'] / 2**30:.2f} GiB)"
                                         if q.get("used_memory_bytes") is not None else "")
                for q in p["processes"] if not q.get("benchmark"))
            reasons.append(_reason(
                "device_processes", count, rules.max_other_device_processes, "processes",
                f"{count} other process(es) used the device during the timed window{_of(j, n)} "
                f"({shown}): stop them and re-run"))
    if cv is not None and cv > rules.max_cv:
        reasons.append(_reason(
            "spread", round(cv * 100, 1), rules.max_cv * 100, "%",
            f"the repeats' throughput spread CV {cv:.1%}, above {rules.max_cv:.0%}: the result "
            "may be unstable; re-run on a quiet machine, or with longer timed windows "
            "(rules.min_duration_s) and more repeats"))
    out: Disturbed = {"value": bool(reasons), "thresholds": rules.to_dict(),
                           "require_quiet": require_quiet}
    if reasons:
        out["reasons"] = reasons
    elif unjudged and cv is None:
        out["value"] = None
    if unjudged:
        out["unjudged"] = unjudged
    return out


def combine_disturbed(records: Sequence[tuple[str, Disturbed | None]]
                      ) -> Disturbed | None:
    """One multi-node entry's record from each node's (``(node name, record)``): disturbed
    when any node was, with every node's reasons named by node; unknown when a node cannot
    say and none was disturbed; None when no node recorded one (results before the record)."""
    known = [(node, r) for node, r in records if isinstance(r, dict)]
    if not known:
        return None
    out = {k: v for k, v in known[0][1].items() if k not in ("value", "reasons", "unjudged")}
    reasons = [{**reason, "message": f"node {node}: {reason['message']}"}
               for node, r in known for reason in r.get("reasons") or []]
    values = [r.get("value") for _, r in known]
    unjudged = [f"node {node}: {u}" for node, r in known for u in r.get("unjudged") or []]
    unjudged += [f"node {node}: no record" for node, r in records if not isinstance(r, dict)]
    if reasons or True in values:
        out.update(value=True, reasons=reasons)
    elif None in values or len(known) < len(records):
        out["value"] = None
    else:
        out["value"] = False
    if unjudged:
        out["unjudged"] = unjudged
    return out


def warning_text(entry_id: str, disturbed: Disturbed) -> str:
    """The terminal's line for a disturbed entry."""
    reasons = disturbed.get("reasons") or []
    return f"{entry_id} was disturbed while it measured: " + "; ".join(
        r["message"] for r in reasons)
