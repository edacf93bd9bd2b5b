"""Container overhead: a suite natively and in the cpu image, interleaved A/B, figures printed.

    python -m testbed.images.overhead [--suite smoke] [--rounds 1]

Both sides go through the user's path (`invoke bench --native` / `invoke bench --vendor cpu`,
host validation included, no report), alternating which runs first each round so a drifting
machine load does not favour one side. Prints wall time per run, the container/native ratio,
and each workload's throughput on both sides.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testbed.images.spec import REPO_DIR

INVOKE = str(Path(sys.executable).with_name("invoke"))


def ratio(container_s: float, native_s: float) -> float:
    """Container time over native time (1.0 = no overhead)."""
    return container_s / native_s


def run_once(side: str, suite: str, out: Path) -> float:
    where = ["--native"] if side == "native" else ["--vendor", "cpu"]
    start = time.monotonic()
    proc = subprocess.run([INVOKE, "bench", *where, "--suite", suite, "--out", str(out),
                           "--no-report"], cwd=REPO_DIR, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{side} run failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return seconds


def throughputs(out: Path) -> dict[str, float]:
    values = {}
    for path in sorted(out.glob("*.json")):
        doc = json.loads(path.read_text())
        if doc.get("kind") != "bench.manifest" and path.name != "manifest.json":
            values[path.stem] = doc["metrics"]["throughput_items_per_s"]["value"]
    return values


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="smoke")
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="overhead-") as tmp:
        print(f"{'round':>5} {'native s':>9} {'container s':>12} {'ratio':>6}")
        for r in range(args.rounds):
            order = ("native", "container") if r % 2 == 0 else ("container", "native")
            seconds, rates = {}, {}
            for side in order:
                out = Path(tmp) / f"{side}-{r}"
                seconds[side] = run_once(side, args.suite, out)
                rates[side] = throughputs(out)
            print(f"{r + 1:>5} {seconds['native']:>9.1f} {seconds['container']:>12.1f} "
                  f"{ratio(seconds['container'], seconds['native']):>6.2f}")
            for entry, native in rates["native"].items():
                inside = rates["container"].get(entry)
                if inside:
                    print(f"      {entry:<14} throughput native {native:.4g}/s, container "
                          f"{inside:.4g}/s (ratio {inside / native:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
