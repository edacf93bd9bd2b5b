"""Starting the ranks of a multi-rank workload: one place, used by every such workload.

The ranks are started by torchrun (``python -m torch.distributed.run``, PyTorch's own
launcher), once per node. Where the entry runs comes from its ``Placement``
(``bench.distributed``), which the launcher (``invoke bench`` natively, in a container or as
a Slurm job) decided: one node (``--standalone``), or several nodes joined by torchrun's c10d
rendezvous on the first node. The workload's rank module is started on each rank with RANK,
WORLD_SIZE and LOCAL_RANK set. Progress lines a rank prints (``bench.events``) are passed on;
the last lines of the output are kept for the error message; when the job fails, torchrun's
"Root Cause" report names the rank that failed first, its exit code or signal, and that is
what the workload's error says.

The c10d store that the nodes' torchrun agents rendezvous through is hosted here, by the
first node's process, not by its torchrun agent: an agent that hosts the store closes it when
it exits, and agents on other nodes still shutting down then fail with a connection error
although every rank finished. Hosting it outside the agents, and keeping it until every node
has said its torchrun ended, removes that teardown race.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from bench.distributed import Placement, rdzv_host_port
from bench.documents import ProgressEvent
from bench.events import relay

OUTPUT_TAIL_LINES = 40
LAUNCHER = "torch.distributed.run (torchrun)"
# How long the first node keeps the rendezvous store for nodes still finishing.
STORE_LINGER_S = 60.0


def process_group_timeout_s(repeat_timeout_s: float) -> float:
    """A hung collective must fail well inside the repeat's timeout, so the launcher exits and
    what was measured before it is kept (the harness would kill the whole job instead)."""
    return max(30.0, repeat_timeout_s / 3)


def torchrun_command(placement: Placement, nproc: int, module: str,
                     args: Sequence[str]) -> list[str]:
    """The torchrun command line that starts ``nproc`` ranks of ``module`` on this node."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    if not placement.multi_node:
        cmd.append("--standalone")
    else:
        cmd += ["--nnodes", str(placement.nnodes), "--node_rank", str(placement.node_rank),
                "--rdzv_backend", "c10d", "--rdzv_endpoint", str(placement.rdzv_endpoint),
                "--rdzv_id", placement.rdzv_id or "bench",
                # The store is ours (rendezvous_store): no agent hosts it.
                "--rdzv_conf", "is_host=false"]
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
    """How a node's torchrun ended: its exit code, its last lines, the rank that failed."""

    returncode: int
    tail: list[str] = field(default_factory=list)
    failure: RankFailure | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe_failure(self) -> str | None:
        """Why the job failed, in one line (None when it did not)."""
        if self.ok:
            return None
        return (f"torchrun exited with code {self.returncode}"
                + (f" ({self.failure.describe()})" if self.failure else "")
                + ": " + " | ".join(self.tail[-8:]))


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


def run_ranks(cmd: Sequence[str], progress: Callable[[ProgressEvent], None],
              env: dict[str, str] | None = None) -> LaunchResult:
    """Run the launcher command to its end, forwarding the ranks' progress events."""
    tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
    everything: list[str] = []

    def keep(line: str) -> None:
        tail.append(line)
        if "Root Cause" in line or everything:
            everything.append(line + "\n")

    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1",
                                            **(env or {})})
    assert proc.stdout is not None
    relay(proc.stdout, progress, keep)
    code = proc.wait()
    return LaunchResult(code, list(tail), root_cause("".join(everything)) if code else None)


@contextlib.contextmanager
def rendezvous_store(placement: Placement, timeout_s: float) -> Iterator[Callable[[], None]]:
    """Host the c10d store on the first node for as long as any node's torchrun runs.

    Yields ``ended``, to call when this node's torchrun has exited. The first node then waits
    (at most ``STORE_LINGER_S``) until every node has said so before closing the store; the
    other nodes say so and leave. On one node nothing is hosted."""
    if not placement.multi_node:
        yield lambda: None
        return
    from torch.distributed import TCPStore

    host, port = rdzv_host_port(str(placement.rdzv_endpoint))
    key = f"bench/{placement.rdzv_id or 'bench'}/ended/"
    if placement.node_rank != 0:
        def said() -> None:
            with contextlib.suppress(Exception):  # the first node may be gone: nothing to tell
                TCPStore(host, port, is_master=False,
                         timeout=timedelta(seconds=30)).set(f"{key}{placement.node_rank}", "1")
        yield said
        return
    try:
        store = TCPStore(host, port, is_master=True, wait_for_workers=False,
                         timeout=timedelta(seconds=timeout_s))
    except Exception as exc:
        raise RuntimeError(f"cannot host the rendezvous store on {host}:{port} ({exc}); "
                           "is the port in use? (invoke bench --slurm --rdzv-port PORT)") from exc

    def all_ended() -> None:
        keys = [f"{key}{r}" for r in range(1, placement.nnodes)]
        deadline = time.monotonic() + STORE_LINGER_S
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if store.check(keys):
                    return
            time.sleep(0.2)

    yield all_ended  # the store closes when this generator's frame is released


def launch_ranks(placement: Placement, nproc: int, module: str, args: Sequence[str],
                 progress: Callable[[ProgressEvent], None], store_timeout_s: float = 300.0,
                 env: dict[str, str] | None = None) -> LaunchResult:
    """Run ``nproc`` ranks of ``module`` on this node under torchrun, joining the other nodes
    of ``placement`` (the first node hosts their rendezvous store)."""
    cmd = torchrun_command(placement, nproc, module, args)
    with rendezvous_store(placement, store_timeout_s) as ended:
        result = run_ranks(cmd, progress, env)
        ended()
    return result
