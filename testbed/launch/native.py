"""The native launcher: ``python -m bench run`` in this Python environment, in a child process.

The bench writes its progress straight to this terminal (the child inherits it, so the
display rewrites its line in place); the results are accepted by the launchers' one policy
when it ends (``base.accept_results``).
"""

from __future__ import annotations

import os
import subprocess
import sys

from bench.errors import EXIT_USAGE
from bench.paths import REPO_DIR
from testbed.launch.base import Launcher, Plan, Ran


class NativeLauncher(Launcher):
    name = "native"
    detects = True  # vendor "auto": what this machine has

    def execute(self, plan: Plan) -> Ran:
        request = plan.request
        extra: tuple[str, ...] = ("--out", str(plan.out_dir))
        if request.devices is not None:
            extra += ("--devices", ",".join(str(d) for d in request.devices))
        argv = request.bench_args(plan.vendor, plan.run_id, extra=extra)
        if request.name:
            print(f"run ({request.name}): python -m bench {' '.join(argv)}", flush=True)
        proc = subprocess.run([sys.executable, "-m", "bench", *argv], cwd=REPO_DIR,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False)
        code = proc.returncode
        if code == EXIT_USAGE:
            return Ran(code, error="`python -m bench run` refused the run (message above)")
        return Ran(code, interrupted=code == 130, error=None if code == 0 else
                   f"`python -m bench run` exited with code {code}")
