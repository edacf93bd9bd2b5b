"""How loaded the host was while a re-run ran, and how much that load could have slowed it.

A re-run on a shared machine competes with other processes for the CPUs. The kernel counts,
per thread, the time it ran and the time it was ready to run but waited for a CPU
(``/proc/<pid>/task/<tid>/schedstat``). A thread that lived L seconds of a timed window and
waited W of them would have done the same work in L - W without the competition, so the load
slowed it by at most L / (L - W). The re-run's slowdown is that ratio averaged over the
threads of the processes that measure (the harness's child per repeat and its workers, not the
harness itself with its telemetry sampler), weighted by the CPU time each used in the windows:
the threads that do the work decide, a thread that sleeps barely counts. A CPU-bound re-run
that gets half the CPUs it wants shows 2.0; a workload whose step is a sleep shows about 1.0
on the same machine, as it is barely slowed.

The host's load average, CPU pressure (PSI) and the CPUs busy with other processes are
recorded beside it, for the reader. Sampled ten times a second in a thread; the roots are
the harness process (a native re-run: the audit's own child) or the re-run's container.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

PERIOD_S = 0.1
MAX_SLOWDOWN = 20.0
# Host CPU time spent running something (psutil's guest time is already in user, steal is
# the hypervisor's).
BUSY = ("user", "nice", "system", "irq", "softirq")


Point = tuple[float, float, float]  # (monotonic s, run s, wait s) of one thread


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


def window_slowdown(series: dict[Any, list[Point]], windows: list[tuple[float, float]],
                    margin_s: float = PERIOD_S) -> float | None:
    """The slowdown during the timed windows only (setup, imports and the gaps between
    repeats left out): each thread's last reading at or before a window's start and first at
    or after its end (within ``margin_s``; the nearest inside where there is none)."""
    return thread_slowdown(window_threads(series, windows, margin_s))


def window_demand(series: dict[Any, list[Point]], windows: list[tuple[float, float]],
                  margin_s: float = PERIOD_S) -> float | None:
    """The CPUs the measuring threads wanted during the timed windows (ran or waited to run,
    over the windows' length): about 1 per busy thread of a CPU-bound loop, about 0 for a
    loop whose step is a sleep."""
    threads = window_threads(series, windows, margin_s)
    length = sum(b - a for a, b in windows)
    if not threads or length <= 0:
        return None
    return sum(run + wait for _, run, wait in threads) / length


def window_threads(series: dict[Any, list[Point]], windows: list[tuple[float, float]],
                   margin_s: float = PERIOD_S) -> list[tuple[float, float, float]]:
    """(life, run, wait) of every thread over every window."""
    threads = []
    for a, b in windows:
        for points in series.values():
            near = [p for p in points if a - margin_s <= p[0] <= b + margin_s]
            if len(near) < 2:
                continue
            before = [p for p in near if p[0] <= a] or near[:1]
            after = [p for p in near if p[0] >= b] or near[-1:]
            (t0, r0, w0), (t1, r1, w1) = before[-1], after[0]
            if t1 > t0:
                threads.append((t1 - t0, r1 - r0, w1 - w0))
    return threads


def _read_threads(pid: int, series: dict[Any, list[Point]], now: float) -> None:
    """Append each thread's (now, run, wait) to its series; a thread is keyed by pid, tid and
    start time, so a reused id is another thread."""
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tids = [int(t) for t in os.listdir(task_dir)]
    except OSError:
        return
    for tid in tids:
        try:
            run_ns, wait_ns = (task_dir / str(tid) / "schedstat").read_text().split()[:2]
            stat = (task_dir / str(tid) / "stat").read_text()
            start = stat.rsplit(")", 1)[1].split()[19]
        except (OSError, ValueError, IndexError):
            continue
        series.setdefault((pid, tid, start), []).append((now, int(run_ns) / 1e9,
                                                         int(wait_ns) / 1e9))


def _pressure() -> float | None:
    """System-wide CPU pressure: the share of the last 10 s some task waited for a CPU."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(dict(kv.split("=") for kv in line.split()[1:])["avg10"]) / 100
    except (OSError, ValueError, KeyError, IndexError):
        return None


@dataclass
class HostMonitor:
    """Samples the host while a re-run runs: ``with HostMonitor(roots) as m: ...; m.report()``.

    ``roots`` returns the pids whose process trees are the re-run (called every sample, so a
    container that starts later is found); their descendants are included."""

    roots: Callable[[], list[int]]
    period_s: float = PERIOD_S
    # Threads of the processes that measure (the roots' descendants: the harness's child per
    # repeat and its workers) and of the roots themselves (the harness and its telemetry
    # sampler, which use the host but do not set the pace of a timed loop).
    series: dict[Any, list[Point]] = field(default_factory=dict)
    root_series: dict[Any, list[Point]] = field(default_factory=dict)
    loads: list[float] = field(default_factory=list)
    pressures: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = 0.0
    _cpu0: Any = None
    _result: dict[str, Any] | None = None

    def __enter__(self) -> HostMonitor:
        self._t0 = time.monotonic()
        self._cpu0 = psutil.cpu_times()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="audit-hostload", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._result = self._summarise(time.monotonic() - self._t0, psutil.cpu_times())

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self._sample()

    def _sample(self) -> None:
        self.loads.append(os.getloadavg()[0])
        pressure = _pressure()
        if pressure is not None:
            self.pressures.append(pressure)
        now = time.monotonic()  # the clock the harness times its windows with
        roots, pids = set(), set()
        try:
            for root in self.roots():
                roots.add(root)
                pids.update(c.pid for c in psutil.Process(root).children(recursive=True))
        except (psutil.Error, OSError):
            pass
        for pid in roots - pids:
            _read_threads(pid, self.root_series, now)
        for pid in pids - roots:
            _read_threads(pid, self.series, now)

    def _summarise(self, wall_s: float, cpu1: Any) -> dict[str, Any]:
        cpus = psutil.cpu_count() or 1
        busy = max(sum(getattr(cpu1, f, 0.0) - getattr(self._cpu0, f, 0.0) for f in BUSY), 0.0)
        whole = [(p[-1][0] - p[0][0], p[-1][1] - p[0][1], p[-1][2] - p[0][2])
                 for p in (*self.series.values(), *self.root_series.values())]
        own = sum(run for _, run, _ in whole)
        wait = sum(w for _, _, w in whole)
        return {
            "cpus": cpus, "duration_s": wall_s,
            "load_avg_1m": {"start": self.loads[0], "max": max(self.loads),
                            "end": os.getloadavg()[0]} if self.loads else None,
            "cpu_pressure_avg10_max": max(self.pressures) if self.pressures else None,
            "busy_cpus_mean": busy / wall_s if wall_s > 0 else None,
            "rerun_cpus_mean": own / wall_s if whole and wall_s > 0 else None,
            "other_cpus_mean": max(busy - own, 0.0) / wall_s if whole and wall_s > 0
            else None,
            "rerun_threads": len(whole),
            "cpu_wait_fraction": wait / (own + wait) if own + wait > 0 else None,
            "slowdown": None,
            "method": "per-thread run and run-queue wait times (/proc/<pid>/task/<tid>/schedstat) "
                      "of the processes that measure (the harness's children) during the timed "
                      "windows; slowdown = CPU-time-weighted life / (life - wait)",
            **({} if whole else {"reason": "no thread of the re-run could be read"}),
        }

    def report(self, windows: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
        """The host's load over the re-run, and the slowdown during each entry's timed
        windows (``entry id -> [(start, end)]`` in monotonic seconds) and over all of them."""
        assert self._result is not None, "report() after the with block"
        per_entry = {e: window_slowdown(self.series, w, self.period_s)
                     for e, w in windows.items()}
        every = [w for ws in windows.values() for w in ws]
        return {**self._result, "slowdown": window_slowdown(self.series, every, self.period_s),
                "entry_slowdown": per_entry,
                "entry_cpu_demand": {e: window_demand(self.series, w, self.period_s)
                                     for e, w in windows.items()}}


def timed_windows(doc: dict[str, Any]) -> list[tuple[float, float]]:
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
