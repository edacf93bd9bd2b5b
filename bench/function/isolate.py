"""Run cases in worker processes so that a crash loses nothing else.

One worker (``bench.function.worker`` for operator cases, ``bench.function.probe`` for the
catalogue's probes) takes every remaining item. It writes an event per pass (``start``, then
``row``); this side reads them as they come (progress, and a watchdog: no event for
``timeout_s`` means the pass hangs and the worker is stopped). When a worker dies, the pass
it had started is recorded as a crash with the exit signal or code and the last lines it wrote
to stderr, and a new worker continues with the items after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.documents import CaseItem, JsonObject, WorkerRow

# The worker's exit code when the device stopped answering (bench.function.worker): the rest
# of the cases run in a fresh process. Defined here, where it is read, so the worker imports
# this module and not the other way round.
EXIT_DEVICE_LOST = 3
POLL_S = 0.1
STDERR_LINES = 8


@dataclass
class IsolatedRun:
    """Every pass's row, and how the workers fared."""

    rows: list[WorkerRow] = field(default_factory=list)
    workers: int = 0
    crashes: int = 0


def _describe_exit(code: int | None, timed_out: bool, timeout_s: float) -> str:
    if timed_out:
        return f"no result within {timeout_s:g} s: the worker was stopped (hang)"
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"the worker process died of {signal.Signals(-code).name}"
    if code == EXIT_DEVICE_LOST:
        return "the device was unusable after this pass"
    return f"the worker process exited with code {code}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def case_crash_rows(case: CaseItem, which: str, message: str, stderr: list[str]
                    ) -> list[WorkerRow]:
    """The rows of an operator-function pass that crashed (and its backward, not run)."""
    base = {"case": case["id"], "op": case["op"], "call": case["call"],
            "variant": case["variant"], "seconds": None}
    rows = [{**base, "pass": which, "class": "crash", "message": message, "stderr": stderr}]
    if which == "forward":
        rows.append({**base, "pass": "backward", "class": "skipped",
                     "message": "not run: the forward pass crashed", "only_if_backward": True})
    return rows


def run_isolated(items: Sequence[JsonObject], worker: str, spec: JsonObject,
                 timeout_s: float,
                 crash_rows: Callable[[Any, str, str, list[str]],
                                      list[WorkerRow]] = case_crash_rows,
                 progress: Callable[[int, int, JsonObject], None]
                 = lambda done, total, item: None) -> IsolatedRun:
    """Run ``items`` (dicts with an ``id``) through ``python -m <worker> SPEC OUT`` (see the
    module docstring); ``spec`` is passed on with the items still to run. Every item gets its
    rows, come what may: a pass that crashed gets ``crash_rows(item, pass, why, stderr)``."""
    result = IsolatedRun()
    by_id = {c["id"]: c for c in items}
    remaining = list(items)
    done_items: set[int] = set()
    with tempfile.TemporaryDirectory(prefix="bench-isolated-") as tmp:
        while remaining:
            result.workers += 1
            spec_path = Path(tmp) / f"spec-{result.workers}.json"
            out = Path(tmp) / f"rows-{result.workers}.jsonl"
            err = Path(tmp) / f"stderr-{result.workers}.txt"
            spec_path.write_text(json.dumps({**spec, "items": remaining}), encoding="utf-8")
            out.touch()
            in_flight: tuple[int, str] | None = None
            timed_out = False
            with open(err, "wb") as stderr:
                proc = subprocess.Popen(
                    [sys.executable, "-m", worker, str(spec_path), str(out)],
                    stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
                offset, last = 0, time.monotonic()
                try:
                    while True:
                        code = proc.poll()
                        with open(out, encoding="utf-8") as fh:
                            fh.seek(offset)
                            chunk = fh.read()
                        complete = chunk[:chunk.rfind("\n") + 1] if "\n" in chunk else ""
                        offset += len(complete.encode("utf-8"))
                        for line in complete.splitlines():
                            event = json.loads(line)
                            last = time.monotonic()
                            if event["event"] == "start":
                                in_flight = (event["case"], event["pass"])
                                if event["case"] not in done_items:
                                    progress(len(done_items), len(items), by_id[event["case"]])
                            else:
                                row = event["row"]
                                result.rows.append(row)
                                in_flight = None
                                done_items.add(row["case"])
                        if code is not None:
                            break
                        if time.monotonic() - last > timeout_s:
                            timed_out = True
                            _stop(proc)
                            break
                        time.sleep(POLL_S)
                except BaseException:
                    _stop(proc)
                    raise
            code = proc.returncode
            finished = {r["case"] for r in result.rows}
            if in_flight is None and code == 0:
                break
            tail = [ln for ln in err.read_text(encoding="utf-8", errors="replace")
                    .splitlines() if ln.strip()][-STDERR_LINES:]
            crashed_id, which = in_flight if in_flight else (None, "forward")
            if crashed_id is None:
                # died between items: the first item without a row is the one it was on
                crashed_id = next((c["id"] for c in remaining if c["id"] not in finished),
                                  None)
                if crashed_id is None:
                    break
            result.crashes += 1
            message = _describe_exit(code, timed_out, timeout_s)
            result.rows += crash_rows(by_id[crashed_id], which, message, tail)
            done_items.add(crashed_id)
            position = next(i for i, c in enumerate(remaining) if c["id"] == crashed_id)
            remaining = remaining[position + 1:]
    return result
