"""The native launcher: ``python -m bench run`` in this Python environment, in a child process.

The bench writes its progress straight to this terminal (the child inherits it, so the
display rewrites its line in place), and every result is validated here when it ends.
"""

from __future__ import annotations

import os
import subprocess
import sys

from bench.errors import EXIT_USAGE
from bench.paths import REPO_DIR
from testbed.launch.base import Launcher, RunOutcome, RunRequest


class NativeLauncher(Launcher):
    name = "native"

    def launch(self, request: RunRequest) -> RunOutcome:
        from bench.devices import detect
        from bench.validate import expand, validate_file

        vendor = detect() if request.vendor == "auto" else request.vendor
        run_id, out = self.run_dir(request, vendor)
        extra: tuple[str, ...] = ("--out", str(out))
        if request.devices is not None:
            extra += ("--devices", ",".join(str(d) for d in request.devices))
        argv = request.bench_args(vendor, run_id, extra=extra)
        if request.name:
            print(f"run ({request.name}): python -m bench {' '.join(argv)}", flush=True)
        proc = subprocess.run([sys.executable, "-m", "bench", *argv], cwd=REPO_DIR,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False)
        code = proc.returncode
        if code == EXIT_USAGE:
            return RunOutcome(out, code, error="`python -m bench run` refused the run "
                                               "(message above)")
        invalid = [f"{path}: {'; '.join(str(p) for p in report.problems[:3])}"
                   for path in expand([out]) if not (report := validate_file(path)).ok]
        if invalid:
            return RunOutcome(out, EXIT_USAGE, error="results failed validation: "
                              + " | ".join(invalid))
        print(f"validated: every result in {out} matches schemas/result.schema.json")
        error = None if code == 0 else f"`python -m bench run` exited with code {code}"
        return RunOutcome(out, code, interrupted=code == 130, error=error)
