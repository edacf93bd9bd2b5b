"""Multi-rank entries: where this process's part of an entry runs, and how its ranks start.

A launcher (``invoke bench`` natively, in a container, or as a Slurm job) places each entry:
one node, or several nodes joined by torchrun's c10d rendezvous on the first node. The
``Placement`` record carries that from the command line through the runner and the child to
the workload, and into the result (``placement``), so a result names the nodes and ranks it
ran on. Workloads that run many ranks (``Workload.distributed``) start them with
``launch_ranks``: PyTorch's own launcher, torchrun, once per node.

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
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import timedelta
from typing import Any

LAUNCHERS = ("native", "container", "slurm")
OUTPUT_TAIL_LINES = 30
# How long the first node keeps the rendezvous store for nodes still finishing.
STORE_LINGER_S = 60.0
DEFAULT_RDZV_PORT = 29400


def this_node() -> str:
    """The node's name as the scheduler knows it (Slurm's, else the short host name)."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname().split(".")[0]


@dataclass(frozen=True)
class Placement:
    """Where this process's part of an entry runs, as its launcher placed it.

    ``nproc_per_node`` None lets the workload use every device visible to it (``--devices``
    decides which are visible). With ``nnodes`` > 1 every node runs the same entry at the
    same time and the ranks meet at ``rdzv_endpoint`` (host:port on the first node).
    """

    launcher: str = "native"
    node: str = ""
    node_rank: int = 0
    nnodes: int = 1
    nproc_per_node: int | None = None
    rdzv_endpoint: str | None = None
    rdzv_id: str | None = None
    job_id: str | None = None
    # One node's run of an entry that runs on every node separately (a per-node sweep).
    per_node: bool = False

    def __post_init__(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"launcher must be one of {', '.join(LAUNCHERS)}, "
                             f"got {self.launcher!r}")
        if self.nnodes < 1 or not 0 <= self.node_rank < self.nnodes:
            raise ValueError(f"node rank {self.node_rank} is not in 0..{self.nnodes - 1}")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError("several nodes need a rendezvous endpoint (host:port of the "
                             "first node)")
        if self.nproc_per_node is not None and self.nproc_per_node < 1:
            raise ValueError(f"processes per node must be at least 1, got "
                             f"{self.nproc_per_node}")
        if not self.node:
            object.__setattr__(self, "node", this_node())

    @property
    def multi_node(self) -> bool:
        return self.nnodes > 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Placement:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def parse_devices(text: str | None) -> list[int] | None:
    """``"0,1"`` -> [0, 1]; None or "" -> None (all devices)."""
    if not text:
        return None
    from bench.errors import UserError

    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise UserError(f"--devices {text!r}: {part!r} is not a device index.",
                            "Give comma-separated indices, e.g. --devices 0,1.")
        if int(part) in out:
            raise UserError(f"--devices {text!r} names device {part} twice.",
                            "Name each device once.")
        out.append(int(part))
    return out


def rdzv_host_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"rendezvous endpoint {endpoint!r} is not host:port")
    return host, int(port)


def torchrun_command(placement: Placement, nproc: int, module: str,
                     args: list[str]) -> list[str]:
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


@dataclass
class RanksOutcome:
    """How a node's torchrun ended: its exit code and the last lines it printed."""

    returncode: int
    tail: list[str]

    def failure(self) -> str | None:
        if self.returncode == 0:
            return None
        return f"torchrun exited with code {self.returncode}: " + " | ".join(self.tail[-8:])


def launch_ranks(placement: Placement, nproc: int, module: str, args: list[str],
                 on_progress: Callable[[dict[str, Any]], None],
                 store_timeout_s: float = 300.0) -> RanksOutcome:
    """Run ``nproc`` ranks of ``module`` on this node under torchrun (joining the other nodes
    of ``placement``); progress lines the ranks print are passed to ``on_progress``."""
    from bench.events import relay

    cmd = torchrun_command(placement, nproc, module, args)
    tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
    with rendezvous_store(placement, store_timeout_s) as ended:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert proc.stdout is not None
        relay(proc.stdout, on_progress, tail.append)
        code = proc.wait()
        ended()
    return RanksOutcome(code, list(tail))
