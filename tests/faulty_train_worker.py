"""A training rank that dies: rank 1 kills itself with SIGKILL (as the kernel's OOM killer
would) before its third step. Started by torchrun in place of ``bench.llm.train_worker`` by
the ``test-train-dies`` workload (tests/faulty_workloads.py)."""

from __future__ import annotations

import os
import signal
import sys

from bench.llm import train_worker
from bench.llm.trainer import TrainSession


class DyingSession(TrainSession):
    def step(self) -> int:
        if self.env.rank == 1 and self.step_no == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().step()


if __name__ == "__main__":
    raise SystemExit(train_worker.main(sys.argv[1:], session_class=DyingSession))
