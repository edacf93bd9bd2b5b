"""A soak training process that hangs (test-only, no torch): it appends steps to
steps.jsonl as bench.llm.soak_worker does, and on its first start sleeps after step 2 as a
deadlocked collective would, so the supervisor's watchdog must kill and restart it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    out, max_steps = Path(sys.argv[2]), int(sys.argv[4])
    marker = out / "hung-once"
    done = sum(1 for line in (out / "steps.jsonl").open() if line.strip()) \
        if (out / "steps.jsonl").exists() else 0
    for step in range(done + 1, max_steps + 1):
        if step == 3 and not marker.exists():
            marker.touch()
            time.sleep(3600)
        with (out / "steps.jsonl").open("a") as f:
            f.write(json.dumps({"step": step, "loss": 1 / step, "grad_norm": 1.0,
                                "t": time.time(), "dt": 0.01}) + "\n")
