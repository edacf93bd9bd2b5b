"""Children die with their parent, even when the parent is killed with ``kill -9``.

A repeat runs in a child process in its own process group (``start_new_session``), so Ctrl-C
in the terminal reaches only the parent, which stops the child itself. A parent killed with
SIGKILL stops nothing: a hung child would run on past its ``timeout_s`` and its scratch
directory (``/tmp/bench-child-*``) would stay. Two guards close that gap:

- the child asks the kernel to SIGKILL it when its parent dies (``PR_SET_PDEATHSIG``,
  ``die_with_parent``), immediately and whatever the child is doing;
- one watchdog process per run (``python -m bench.watchdog``, in its own session) holds a pipe
  from the parent and is told each child's process group and scratch directory. When the pipe
  closes while children are still registered (the parent died), it kills those groups (the
  child's own children, e.g. torchrun's workers, with it) and removes the directories.

A parent that ends normally unregisters every child first, so the watchdog then just exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

PARENT_PID_ENV = "BENCH_PARENT_PID"
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child: be killed when the parent named by ``$BENCH_PARENT_PID`` dies; exit now if
    it already has (the parent may die between the fork and this call)."""
    expected = os.environ.get(PARENT_PID_ENV)
    if not expected:
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if str(os.getppid()) != expected:
        os._exit(1)


class Watchdog:
    """The parent's side: start the watchdog, register and unregister children."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Watchdog:
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.watchdog"], stdin=subprocess.PIPE, text=True,
                start_new_session=True, stdout=subprocess.DEVNULL)
        except OSError:
            self.proc = None  # no second guard then; PR_SET_PDEATHSIG still stands
        return self

    def _send(self, line: str) -> None:
        if self.proc is None or self.proc.stdin is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()

    def watch(self, pgid: int, scratch: Path) -> None:
        self._send(f"add {pgid} {scratch}")

    def release(self, pgid: int) -> None:
        self._send(f"del {pgid}")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def serve(lines: list[str] | None = None) -> list[tuple[int, str]]:
    """Read ``add PGID DIR`` / ``del PGID`` lines until the pipe closes; then kill what is
    still registered and remove its directories. Returns what it cleaned up."""
    registered: dict[int, str] = {}
    for line in lines if lines is not None else sys.stdin:
        parts = line.rstrip("\n").split(" ", 2)
        with contextlib.suppress(ValueError, IndexError):
            if parts[0] == "add":
                registered[int(parts[1])] = parts[2]
            elif parts[0] == "del":
                registered.pop(int(parts[1]), None)
    for pgid, scratch in registered.items():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        shutil.rmtree(scratch, ignore_errors=True)
    return list(registered.items())


def main() -> int:
    # Ctrl-C and SIGTERM go to the parent, which stops its children itself; the watchdog
    # waits for the pipe to close either way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
