"""One rank of a training job, started by the launcher (``bench.launch``), never by hand:

    python -m torch.distributed.run --standalone --nproc_per_node N \\
        -m bench.llm.train_worker SPEC.json OUT_DIR

Each rank binds its local device, joins the process group and runs the same
``TrainSession`` as a one-device run. Local rank 0 of every node writes the job's record
(every rank's view combined inside the job: the slowest rank's step times, every rank's peak
memory, the global loss; the timed window on its own node's clock, which that node's
telemetry is aligned by) to ``OUT_DIR/record.json``. A rank that raises writes
``OUT_DIR/rank<R>.error.json`` (its exception, the step it was on) before it exits, so the
workload can say which rank failed and why; one killed outright is named by torchrun's
report instead.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

ERROR_FILE = "rank{rank}.error.json"
RECORD_FILE = "record.json"


def main(argv: list[str], session_class: Any = None) -> int:
    from bench.devices import get_backend
    from bench.events import emit_progress
    from bench.jsonio import atomic_write_json, sanitize
    from bench.llm.trainer import RankEnv, TrainSession, TrainSpec, init_process_group
    from bench.rules import RunRules

    spec = TrainSpec.from_dict(json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    out_dir = Path(argv[1])
    env = RankEnv(rank=int(os.environ["RANK"]), world=int(os.environ["WORLD_SIZE"]),
                  local_rank=int(os.environ["LOCAL_RANK"]))
    backend = get_backend(spec.vendor)
    session = None
    try:
        init_process_group(spec, backend, env)
        session = (session_class or TrainSession)(
            spec, backend, env, progress=emit_progress if env.local_rank == 0 else None)
        session.setup()
        record = session.run(RunRules(**spec.rules))
        if env.local_rank == 0:
            atomic_write_json(out_dir / RECORD_FILE, sanitize(record.as_dict()))
    except BaseException as exc:
        atomic_write_json(out_dir / ERROR_FILE.format(rank=env.rank), sanitize({
            "rank": env.rank, "local_rank": env.local_rank, "type": type(exc).__name__,
            "message": str(exc) or type(exc).__name__,
            "step": getattr(exc, "step", None) or (session.step_no if session else None),
            "oom": bool(backend.is_oom(exc)),
            "traceback": "".join(traceback.format_exception(exc)).splitlines()[-20:],
            "loss": session.local_losses[:spec.loss_steps] if session else []}))
        raise
    import torch.distributed as dist

    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
