"""A /proc of our own: the files bench.contention reads, written by the tests (the lowest
level: the monitor's code that parses them is the real code).

``FakeProc`` writes ``stat`` (the host's CPU times in clock ticks), ``loadavg``,
``pressure/cpu`` and, per process, ``<pid>/stat`` and ``<pid>/task/<tid>/{stat,schedstat}``
in the kernel's formats. ``FakeKernel`` keeps such a tree moving in a thread, as time passes,
for a real run pointed at it with ``BENCH_PROC_ROOT``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from bench.contention import CLOCK_TICKS


def _write(path: Path, text: str) -> None:
    """Whole or not at all: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def stat_line(pid: int, name: str, ppid: int, start: int = 100) -> str:
    """A ``/proc/<pid>/stat`` line: pid (comm) state ppid ... starttime (field 22) ..."""
    fields = ["S", str(ppid), *["0"] * 17, str(start), *["0"] * 30]
    return f"{pid} ({name}) {' '.join(fields)}\n"


class FakeProc:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def host(self, busy_s: float, steal_s: float = 0.0, cpus: int = 2,
             load: float = 0.1, pressure: float = 0.0) -> None:
        """The host's cumulative busy and steal CPU time (user column, steal column)."""
        busy, steal = round(busy_s * CLOCK_TICKS), round(steal_s * CLOCK_TICKS)
        lines = [f"cpu  {busy} 0 0 1000000 0 0 0 {steal} 0 0"]
        lines += [f"cpu{i} 0 0 0 0 0 0 0 0 0 0" for i in range(cpus)]
        _write(self.root / "stat", "\n".join(lines) + "\nintr 0\nctxt 0\n")
        _write(self.root / "loadavg", f"{load:.2f} {load:.2f} {load:.2f} 1/100 999\n")
        _write(self.root / "pressure" / "cpu",
               f"some avg10={pressure * 100:.2f} avg60=0.00 avg300=0.00 total=0\n"
               "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")

    def process(self, pid: int, ppid: int, threads: dict[int, tuple[float, float]],
                name: str = "python", start: int = 100) -> None:
        """A process and its threads' cumulative (run s, wait s)."""
        _write(self.root / str(pid) / "stat", stat_line(pid, name, ppid, start))
        for tid, (run_s, wait_s) in threads.items():
            task = self.root / str(pid) / "task" / str(tid)
            _write(task / "stat", stat_line(tid, name, ppid, start))
            _write(task / "schedstat", f"{round(run_s * 1e9)} {round(wait_s * 1e9)} 7\n")


class FakeKernel:
    """Moves a fake /proc along with the clock: the harness ``pid`` (one thread using
    ``harness_cpus``), below it one process that measures (``child``, a thread running
    ``child_cpus`` and waiting ``child_wait`` per second), and ``other_cpus`` of other
    processes' time on the host."""

    def __init__(self, proc: FakeProc, pid: int, child_cpus: float = 0.9,
                 child_wait: float = 0.0, harness_cpus: float = 0.02, other_cpus: float = 0.0,
                 cpus: int = 2, load: float = 0.2, child: int = 3_999_001) -> None:
        self.proc, self.pid, self.child = proc, pid, child
        self.rates = (child_cpus, child_wait, harness_cpus, other_cpus)
        self.cpus, self.load = cpus, load
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def tick(self) -> None:
        elapsed = time.monotonic() - self._t0
        child, wait, harness, other = (r * elapsed for r in self.rates)
        self.proc.process(self.pid, os.getpid(), {self.pid: (harness, 0.0)})
        self.proc.process(self.child, self.pid, {self.child: (child, wait)})
        self.proc.host(busy_s=child + harness + other, cpus=self.cpus, load=self.load)

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            self.tick()

    def __enter__(self) -> FakeKernel:
        self.tick()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
