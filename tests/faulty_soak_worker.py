"""A soak's training process with faults injected at the lowest level (test-only): the
environment variable BENCH_TEST_SOAK_FAULTS lists ``kind@step`` (kill, nan, oom, hang), each
fired once, in the training step, before that step's optimiser update. Which have fired is
kept in marker files beside the soak's steps, so a restarted process that redoes the step
goes on. Started by the ``test-soak-faults`` workload (tests/faulty_workloads.py) in place of
``bench.llm.soak_worker``."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from bench.llm import soak_worker
from bench.llm.trainer import TrainSession

FAULTS = "BENCH_TEST_SOAK_FAULTS"


class FaultySession(TrainSession):
    marker_dir: Path

    def _fault(self) -> str | None:
        for item in filter(None, os.environ.get(FAULTS, "").split(",")):
            kind, _, step = item.partition("@")
            marker = self.marker_dir / f"fault-{kind}-{step}"
            if int(step) == self.step_no + 1 and not marker.exists():
                marker.touch()
                return kind
        return None

    def step(self) -> int:
        import torch

        kind = self._fault()
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "oom":
            raise torch.OutOfMemoryError("injected: out of memory (test fault)")
        if kind == "hang":
            time.sleep(3600)
        if kind == "nan":
            self._poison = True
        return super().step()

    def _loss(self, batch, arrays):
        loss = super()._loss(batch, arrays)
        if getattr(self, "_poison", False):
            self._poison = False
            return loss * float("nan")
        return loss


if __name__ == "__main__":
    FaultySession.marker_dir = Path(sys.argv[2])
    raise SystemExit(soak_worker.main(sys.argv[1:], session_class=FaultySession))
