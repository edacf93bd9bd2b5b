"""Launching the ranks of a multi-device workload: one function, used by every such workload.

Today the ranks are started by torchrun (``python -m torch.distributed.run``, PyTorch's own
launcher, which also does the multi-node c10d rendezvous); a cluster launcher (Slurm) can
produce the same command per node and reuse ``run_ranks``. The workload's rank module is
started on each rank with RANK, WORLD_SIZE and LOCAL_RANK set. Progress lines a rank prints
(``bench.child.PROGRESS_PREFIX``) are passed on; the last lines of the output are kept for
the error message; when the job fails, torchrun's "Root Cause" report names the rank that
failed first, its exit code or signal, and that is what the workload's error says.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.child import PROGRESS_PREFIX

OUTPUT_TAIL_LINES = 40
LAUNCHER = "torch.distributed.run (torchrun)"


def process_group_timeout_s(repeat_timeout_s: float) -> float:
    """A hung collective must fail well inside the repeat's timeout, so the launcher exits and
    what was measured before it is kept (the harness would kill the whole job instead)."""
    return max(30.0, repeat_timeout_s / 3)


def torchrun_command(module: str, args: Sequence[str], nproc: int, nnodes: int = 1,
                     rdzv_endpoint: str | None = None) -> list[str]:
    """The torchrun command line that starts ``python -m module args...`` on every rank."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    if nnodes == 1:
        cmd.append("--standalone")
    else:
        cmd += ["--nnodes", str(nnodes), "--rdzv_backend", "c10d",
                "--rdzv_endpoint", str(rdzv_endpoint)]
    return [*cmd, "-m", module, *args]


@dataclass
class RankFailure:
    """The first rank that failed, as torchrun's root-cause report gives it."""

    rank: int | None
    local_rank: int | None = None
    exitcode: int | None = None
    detail: str = ""

    def describe(self) -> str:
        who = f"rank {self.rank}" if self.rank is not None else "a rank"
        if self.local_rank is not None and self.local_rank != self.rank:
            who += f" (local rank {self.local_rank})"
        how = ""
        if self.exitcode is not None:
            how = (f" was killed by signal {-self.exitcode}" if self.exitcode < 0
                   else f" exited with code {self.exitcode}")
        return who + (how or " failed") + (f": {self.detail}" if self.detail else "")


@dataclass
class LaunchResult:
    returncode: int
    tail: list[str] = field(default_factory=list)
    failure: RankFailure | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0


_ROOT = re.compile(r"Root Cause.*?rank\s*:\s*(\d+)\s*\(local_rank:\s*(\d+)\)\s*"
                   r"exitcode\s*:\s*(-?\d+)(?:.*?traceback\s*:\s*([^\n]*))?", re.DOTALL)


def root_cause(output: str) -> RankFailure | None:
    """The failed rank from torchrun's error summary (None when there is none)."""
    m = _ROOT.search(output)
    if not m:
        return None
    detail = (m.group(4) or "").strip()
    if detail.startswith("To enable traceback"):
        detail = ""
    return RankFailure(int(m.group(1)), int(m.group(2)), int(m.group(3)), detail)


def run_ranks(cmd: Sequence[str], progress: Callable[[dict[str, Any]], None],
              env: dict[str, str] | None = None) -> LaunchResult:
    """Run the launcher command to its end, forwarding the ranks' progress events."""
    tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
    everything: list[str] = []
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1",
                                            **(env or {})})
    assert proc.stdout is not None
    for line in proc.stdout:
        at = line.find(PROGRESS_PREFIX)
        if at >= 0:
            try:
                progress(json.loads(line[at + len(PROGRESS_PREFIX):]))
                continue
            except ValueError:
                pass
        tail.append(line.rstrip("\n"))
        if "Root Cause" in line or everything:
            everything.append(line)
    code = proc.wait()
    return LaunchResult(code, list(tail), root_cause("".join(everything)) if code else None)
