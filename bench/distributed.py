"""Multi-rank entries: where this process's part of an entry runs, and how its ranks start.

A launcher (``invoke bench`` natively, in a container, or as a Slurm job) places each entry:
one node, or several nodes joined by torchrun's c10d rendezvous on the first node. The
``Placement`` record carries that from the command line through the runner and the child to
the workload, and into the result (``placement``), so a result names the nodes and ranks it
ran on. Workloads that run many ranks (``Workload.distributed``) start them with
``bench.launch.launch_ranks``: PyTorch's own launcher, torchrun, once per node.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass, fields
from typing import Any

LAUNCHERS = ("native", "container", "slurm")


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
