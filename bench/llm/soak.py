"""The stability soak of a training workload (run rule ``soak_s``; docs/scorecard.md).

The evaluation template trains for 72 hours and counts what goes wrong. Here a supervisor
(``run_soak``, in the harness's child process) starts the training process
(``bench.llm.soak_worker``), which trains one device continuously, appends every step to
``steps.jsonl`` and checkpoints every K steps. When the training process dies (a signal, an
out-of-memory error, a NaN/Inf loss, any other error) or hangs (no step for ``hang_s``: the
watchdog kills it; setup before a process's first step gets ``startup_s`` more), the
supervisor records the crash (time, class, message, step) and starts it again from the last
checkpoint; the recovery time R runs from the crash to the first step completed after
resuming. The soak ends at ``soak_s`` (or after ``max_steps``), and records the crash count
C, the mean R, the longest failure-free stretch h and the loss of every step (a step redone
after a restart replaces the first try, so the curve is the one the model followed).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.documents import ProgressEvent

STEPS_FILE = "steps.jsonl"
CRASH_FILE = "crash.json"
LATEST_FILE = "latest.json"
DATA_FILE = "data.json"
LOG_FILE = "worker.log"
CRASH_CLASSES = ("signal", "oom", "nan", "hang", "error")


@dataclass(frozen=True)
class SoakSettings:
    soak_s: float
    checkpoint_every: int
    hang_s: float
    max_steps: int | None = None
    max_restarts: int = 1000
    # before a (re)started process's first step: setup (imports, building and loading the
    # model, resuming) gets this much on top of hang_s
    startup_s: float = 600.0
    poll_s: float = 0.1


@dataclass
class Crash:
    t_s: float  # since the soak started
    kind: str  # one of CRASH_CLASSES
    message: str
    step: int | None  # the step it was on (the last completed + 1)
    recovered_s: float | None = None  # first completed step after the restart
    recovery_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["class"] = out.pop("kind")
        return out


@dataclass
class SoakRecord:
    window_s: float
    start_wall: float
    end_wall: float
    start_mono: float
    end_mono: float
    crashes: list[Crash]
    losses: dict[int, float]  # step -> loss of its last try
    grad_norms: dict[int, float]
    step_s: list[float]  # every completed step's time, redone steps included
    steps: list[tuple[float, int]]  # (time since start, step) of every completed step
    starts: int
    checkpoints: int
    checkpoint_save_s: list[float] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def last_step(self) -> int:
        return max(self.losses, default=0)

    def loss_curve(self) -> list[float | None]:
        return [self.losses.get(s) for s in range(1, self.last_step + 1)]

    def grad_curve(self) -> list[float | None]:
        return [self.grad_norms.get(s) for s in range(1, self.last_step + 1)]

    @property
    def recovery_times(self) -> list[float]:
        return [c.recovery_s for c in self.crashes if c.recovery_s is not None]

    @property
    def failure_free_s(self) -> float:
        return longest_failure_free_s(0.0, self.window_s,
                                      [(c.t_s, c.recovered_s) for c in self.crashes])


def longest_failure_free_s(start: float, end: float,
                           outages: Iterable[tuple[float, float | None]]) -> float:
    """The longest stretch of [start, end] outside the outages (crash time, time training
    ran again; None: it never did). Outages in any order; they may overlap the ends."""
    best, cursor = 0.0, start
    for down, up in sorted(outages, key=lambda o: o[0]):
        best = max(best, min(down, end) - cursor)
        cursor = max(cursor, end if up is None else up)
        if cursor >= end:
            break
    best = max(best, end - cursor)
    return max(best, 0.0)


def classify_exit(returncode: int, crash: dict[str, Any] | None, log_tail: str
                  ) -> tuple[str, str]:
    """The crash class and message of a training process that exited with ``returncode``:
    what it wrote in its crash file, else the signal that killed it, else its log's tail."""
    if crash and crash.get("class") in CRASH_CLASSES:
        return crash["class"], str(crash.get("message") or crash["class"])
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return "signal", f"killed by {name}"
    tail = log_tail.strip().splitlines()[-1:] if log_tail.strip() else []
    return "error", f"exit code {returncode}" + (f": {tail[0]}" if tail else "")


def read_steps(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Whole lines appended to ``path`` since ``offset`` (a line being written waits)."""
    if not path.exists():
        return [], offset
    with path.open("rb") as f:
        f.seek(offset)
        chunk = f.read()
    end = chunk.rfind(b"\n")
    if end < 0:
        return [], offset
    lines = [json.loads(line) for line in chunk[:end].splitlines() if line.strip()]
    return lines, offset + end + 1


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace")
                         .splitlines()[-lines:])
    except OSError:
        return ""


def run_soak(spec_path: Path, out: Path, settings: SoakSettings, worker_module: str,
             progress: Callable[[ProgressEvent], None] | None = None) -> SoakRecord:
    """Supervise the training process until ``soak_s`` (or ``max_steps``); see the module."""
    report = progress or (lambda _e: None)
    out.mkdir(parents=True, exist_ok=True)
    steps_path = out / STEPS_FILE
    start_wall, start_mono = time.time(), time.monotonic()
    deadline = start_mono + settings.soak_s
    crashes: list[Crash] = []
    losses: dict[int, float] = {}
    grads: dict[int, float] = {}
    step_s: list[float] = []
    timeline: list[tuple[float, int]] = []
    saves: list[float] = []
    offset, starts, last_step = 0, 0, 0
    done = False

    def elapsed() -> float:
        return time.monotonic() - start_mono

    while not done and time.monotonic() < deadline and starts <= settings.max_restarts:
        (out / CRASH_FILE).unlink(missing_ok=True)
        starts += 1
        cmd = [sys.executable, "-m", worker_module, str(spec_path), str(out),
               repr(start_wall + settings.soak_s),
               str(settings.max_steps or 0), str(settings.checkpoint_every)]
        with (out / LOG_FILE).open("ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                    start_new_session=True)
        last_progress = time.monotonic()
        allowance = settings.hang_s + settings.startup_s
        hung = False
        while True:
            rc = proc.poll()
            lines, offset = read_steps(steps_path, offset)
            for ev in lines:
                if ev.get("kind") == "checkpoint":
                    saves.append(float(ev["save_s"]))
                    continue
                step = int(ev["step"])
                t = float(ev["t"]) - start_wall
                losses[step], grads[step] = float(ev["loss"]), float(ev["grad_norm"])
                step_s.append(float(ev["dt"]))
                timeline.append((t, step))
                last_step, last_progress = step, time.monotonic()
                allowance = settings.hang_s
                if crashes and crashes[-1].recovered_s is None:
                    crashes[-1].recovered_s = t
                    crashes[-1].recovery_s = t - crashes[-1].t_s
            if rc is not None:
                break
            if (out / CRASH_FILE).exists():  # it has failed: let it exit, unwatched
                try:
                    rc = proc.wait(timeout=settings.hang_s + 30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    rc = proc.wait()
                break
            if time.monotonic() - last_progress > allowance:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                hung, rc = True, proc.returncode
                break
            if time.monotonic() > deadline + settings.hang_s:
                os.killpg(proc.pid, signal.SIGKILL)  # the worker ignores its deadline
                proc.wait()
                rc = 0
                break
            time.sleep(settings.poll_s)
        if rc == 0 and not hung:
            done = True
            break
        crash_doc = None
        if (out / CRASH_FILE).exists():
            crash_doc = json.loads((out / CRASH_FILE).read_text(encoding="utf-8"))
        if hung:
            kind, message = "hang", (f"no step for {settings.hang_s:g} s: the watchdog "
                                     "killed the training process")
        else:
            kind, message = classify_exit(rc, crash_doc, _tail(out / LOG_FILE))
        step = (crash_doc or {}).get("step") or last_step + 1
        crashes.append(Crash(elapsed(), kind, message, step))
        report({"phase": "point", "message": f"soak: {kind} at step {step} ({message}); "
                                             f"restarting from the last checkpoint"})
    end_wall, end_mono = time.time(), time.monotonic()
    data = {}
    if (out / DATA_FILE).exists():
        data = json.loads((out / DATA_FILE).read_text(encoding="utf-8"))
    if not losses:
        why = crashes[-1].message if crashes else "the training process stopped"
        raise RuntimeError(f"the soak completed no training step: {why} "
                           f"(log: {_tail(out / LOG_FILE, 3)})")
    return SoakRecord(window_s=end_mono - start_mono, start_wall=start_wall, end_wall=end_wall,
                      start_mono=start_mono, end_mono=end_mono, crashes=crashes,
                      losses=losses, grad_norms=grads, step_s=step_s, steps=timeline,
                      starts=starts, checkpoints=len(saves), checkpoint_save_s=saves,
                      data=data)


def thin(points: list[tuple[float, int]], limit: int = 400) -> list[tuple[float, int]]:
    """At most ``limit`` points of a timeline, evenly spaced, the last one kept."""
    if len(points) <= limit:
        return list(points)
    stride = math.ceil(len(points) / limit)
    return points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])
