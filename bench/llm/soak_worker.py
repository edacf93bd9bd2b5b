"""The training process of a stability soak, started (and restarted) by ``bench.llm.soak``'s
supervisor, never by hand:

    python -m bench.llm.soak_worker SPEC.json OUT_DIR DEADLINE_WALL MAX_STEPS EVERY

It resumes from ``OUT_DIR/latest.json``'s checkpoint when there is one (model, optimiser,
step and random state), then trains one device step after step until the wall-clock
``DEADLINE_WALL`` (or step ``MAX_STEPS``; 0: none), appends each step to ``steps.jsonl`` and
checkpoints every ``EVERY`` steps (the pointer ``latest.json`` is replaced only once the
checkpoint is whole). An error is written to ``crash.json`` (class oom, nan or error, the
message and the step) before the process exits with code 3.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.llm.soak import CRASH_FILE, DATA_FILE, LATEST_FILE, STEPS_FILE


def _append(path: Path, doc: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(doc) + "\n")
        f.flush()
        os.fsync(f.fileno())


def save(session: Any, out: Path) -> float:
    """Checkpoint the session under ``out/ckpt/step-N``; point ``latest.json`` at it."""
    import torch
    import torch.distributed.checkpoint as dcp

    from bench.jsonio import atomic_write_json

    t0 = time.monotonic()
    directory = out / "ckpt" / f"step-{session.step_no}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    dcp.save(session._state(), checkpoint_id=str(directory))
    torch.save({"step": session.step_no, "rng": session._rng_state()}, directory / "meta.pt")
    atomic_write_json(out / LATEST_FILE, {"step": session.step_no, "dir": directory.name})
    for old in (out / "ckpt").iterdir():
        if old.name != directory.name:
            shutil.rmtree(old, ignore_errors=True)
    return time.monotonic() - t0


def resume(session: Any, out: Path) -> int:
    """Load the last whole checkpoint, if any; the step it was taken at (0: none)."""
    import torch
    import torch.distributed.checkpoint as dcp

    latest = out / LATEST_FILE
    if not latest.exists():
        return 0
    pointer = json.loads(latest.read_text(encoding="utf-8"))
    directory = out / "ckpt" / pointer["dir"]
    state = session._state()
    dcp.load(state, checkpoint_id=str(directory))
    session._load_state(state)
    meta = torch.load(directory / "meta.pt", weights_only=False)
    session.step_no = int(meta["step"])
    session._set_rng_state(meta["rng"])
    return session.step_no


def classify(exc: BaseException, backend: Any) -> str:
    from bench.llm.trainer import NonFiniteLoss

    if isinstance(exc, NonFiniteLoss):
        return "nan"
    if backend.is_oom(exc):
        return "oom"
    return "error"


def main(argv: list[str], session_class: Any = None) -> int:
    from bench.devices import get_backend
    from bench.jsonio import atomic_write_json, sanitize
    from bench.llm.trainer import TrainSession, TrainSpec

    spec = TrainSpec.from_dict(json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    out, deadline = Path(argv[1]), float(argv[2])
    max_steps, every = int(argv[3]), int(argv[4])
    backend = get_backend(spec.vendor)
    session = (session_class or TrainSession)(spec, backend)
    attempting = 0  # the step being trained when something fails
    try:
        session.setup()
        if not (out / DATA_FILE).exists():
            atomic_write_json(out / DATA_FILE, sanitize(session.data_info))
        resume(session, out)
        steps = out / STEPS_FILE
        while time.time() < deadline and not (max_steps and session.step_no >= max_steps):
            t0 = time.monotonic()
            attempting = session.step_no + 1
            session.step()
            session._sync()
            dt = time.monotonic() - t0
            _append(steps, {"step": session.step_no, "loss": session.local_losses[-1],
                            "grad_norm": session.grad_norms[-1], "t": time.time(), "dt": dt})
            if session.step_no % every == 0:
                _append(steps, {"kind": "checkpoint", "step": session.step_no,
                                "save_s": save(session, out)})
    except BaseException as exc:  # the supervisor restarts from the last checkpoint
        atomic_write_json(out / CRASH_FILE, sanitize({
            "class": classify(exc, backend), "type": type(exc).__name__,
            "message": f"{type(exc).__name__}: {exc}", "step": attempting or None}))
        sys.stdout.flush()
        os._exit(3)  # no interpreter teardown: a dead training process, restarted at once
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
