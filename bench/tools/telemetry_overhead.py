"""What the telemetry sampler costs the measured workload: interleaved A/B rounds in one run.

The arrangement is the one a benchmark run uses: the workload runs in its own child process
(as ``bench.child`` does) while the parent samples telemetry in a background thread with the
backend's real adapter. One child is kept alive for the whole measurement; each round asks it
to run the workload for a fixed time under every condition, in a shuffled order:

* ``off``: no sampling (the reference), ``off-again``: no sampling either (an A/A control
  that shows the machine's own noise), and ``N Hz``: sampling at each requested rate.

Per round, each condition's throughput is divided by that round's ``off`` throughput; the
median ratio over rounds and its spread are printed, with the sampler thread's own CPU time.
Run it with ``invoke bench-telemetry``; the figure is printed, not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

READY = "@@ready"


# -- child: the workload, run on request ----------------------------------------------------
def child_main(spec: dict[str, Any]) -> int:
    import torch

    from bench.devices import get_backend
    from bench.rules import RunRules
    from bench.workload import WorkloadContext, get_workload

    backend = get_backend(spec["vendor"])
    torch.manual_seed(0)
    cls = get_workload(spec["workload"])
    params = dict(cls.configs[spec["config"]])
    ctx = WorkloadContext(backend=backend, mode=spec["mode"], params=params,
                          precision=cls.default_precision, seed=0, rules=RunRules())
    workload = cls(ctx)
    workload.setup()
    for _ in range(3):
        workload.step()
    backend.synchronize()
    print(READY, flush=True)
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "quit":
            break
        seconds = float(command[1])
        items = 0
        start = time.monotonic()
        while (now := time.monotonic()) - start < seconds:
            items += workload.step()
            backend.synchronize()
        print(json.dumps({"items": items, "duration_s": now - start}), flush=True)
    return 0


class Child:
    """The workload process; ``run(seconds)`` returns its throughput in items/s."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.tools.telemetry_overhead", "--child", json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip() == READY:
                return
        raise RuntimeError(f"the workload process exited with {self.proc.wait()} before "
                           "it was ready")

    def run(self, seconds: float) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"run {seconds}\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        return answer["items"] / answer["duration_s"]

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# -- statistics (pure) ----------------------------------------------------------------------
def bootstrap_median_ci(values: list[float], level: float = 0.95, resamples: int = 2000,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median (seeded: reproducible)."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values)))
                     for _ in range(resamples))
    tail = (1 - level) / 2
    return medians[int(tail * resamples)], medians[min(resamples - 1,
                                                      int((1 - tail) * resamples))]


def ratio_summary(ratios: list[float]) -> dict[str, float]:
    """Median ratio with its 95 % bootstrap interval, quartiles and extremes; ``loss_pct`` is
    100 x (1 - median)."""
    ordered = sorted(ratios)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    median = statistics.median(ordered)
    low, high = bootstrap_median_ci(ordered)
    return {"median": median, "ci95_low": low, "ci95_high": high, "q1": q1, "q3": q3,
            "min": ordered[0], "max": ordered[-1], "loss_pct": 100 * (1 - median),
            "n": len(ordered)}


# -- parent: interleaved rounds -------------------------------------------------------------
def measure(args: argparse.Namespace) -> dict[str, Any]:
    from bench.devices import get_backend
    from bench.telemetry import Sampler, open_adapter

    backend = get_backend(args.device)
    rates = [float(r) for r in args.rates.split(",")]
    adapter, selection = open_adapter(args.adapter or backend.telemetry, [0],
                                      1.0 / max(rates))
    conditions = ["off", "off-again", *[f"{r:g} Hz" for r in rates]]
    rng = random.Random(args.seed)
    spec = {"vendor": backend.vendor, "workload": args.workload, "config": args.config,
            "mode": "infer"}
    child = Child(spec)
    throughput: dict[str, list[float]] = {c: [] for c in conditions}
    cpu_fraction: dict[str, list[float]] = {c: [] for c in conditions[2:]}
    load_before = os.getloadavg()
    try:
        child.run(args.round_s)  # settle caches and clocks before the first counted round
        for n in range(args.rounds):
            order = conditions[:]
            rng.shuffle(order)
            for condition in order:
                if condition.startswith("off"):
                    throughput[condition].append(child.run(args.round_s))
                    continue
                sampler = Sampler(adapter, 1.0 / float(condition.split()[0]))
                sampler.start()
                throughput[condition].append(child.run(args.round_s))
                sampler.stop(close_adapter=False)
                if sampler.overhead()["cpu_fraction"] is not None:
                    cpu_fraction[condition].append(sampler.overhead()["cpu_fraction"])
            print(f"round {n + 1}/{args.rounds}: " + ", ".join(
                f"{c} {throughput[c][-1]:.1f}" for c in conditions), file=sys.stderr)
    finally:
        child.close()
        adapter.close()
    ratios = {c: [a / b for a, b in zip(throughput[c], throughput["off"], strict=True)]
              for c in conditions[1:]}
    return {
        "conditions": {"cpu_count": os.cpu_count(), "load_avg_before": load_before,
                       "load_avg_after": os.getloadavg(), "device": backend.vendor,
                       "workload": f"{args.workload} ({args.config})", "rounds": args.rounds,
                       "round_s": args.round_s, "adapter": selection["used"],
                       "arrangement": "workload in a child process, sampler thread in the "
                                      "parent (as in a benchmark run)"},
        "throughput_items_per_s": {c: statistics.median(v) for c, v in throughput.items()},
        "ratio_to_off": {c: ratio_summary(v) for c, v in ratios.items()},
        "sampler_cpu_fraction": {c: statistics.median(v) if v else None
                                 for c, v in cpu_fraction.items()},
    }


def report(result: dict[str, Any]) -> str:
    cond = result["conditions"]
    lines = [f"telemetry overhead: {cond['workload']} on {cond['device']}, adapter "
             f"{cond['adapter']}, {cond['rounds']} interleaved rounds of {cond['round_s']:g} s "
             "per condition",
             f"  {cond['arrangement']}",
             f"  {cond['cpu_count']} CPUs, load average {cond['load_avg_before'][0]:.2f} "
             f"before, {cond['load_avg_after'][0]:.2f} after",
             f"  {'condition':<10} {'items/s':>9} {'ratio':>7} {'95% CI':>15} {'IQR':>15} "
             f"{'loss':>7} {'sampler CPU':>12}",
             f"  {'off':<10} {result['throughput_items_per_s']['off']:>9.2f} {'1':>7}"]
    for c, s in result["ratio_to_off"].items():
        cpu = result["sampler_cpu_fraction"].get(c)
        cpu_text = f"{100 * cpu:.2f} %" if cpu is not None else "-"
        lines.append(f"  {c:<10} {result['throughput_items_per_s'][c]:>9.2f} "
                     f"{s['median']:>7.4f} {s['ci95_low']:>7.4f}..{s['ci95_high']:<6.4f} "
                     f"{s['q1']:>7.4f}..{s['q3']:<6.4f} {s['loss_pct']:>6.2f}% {cpu_text:>12}")
    lines.append("  ratio: median over rounds of the condition's throughput / the same round's "
                 "'off'; 'off-again' is an A/A control (no sampling on either side)")
    cpus = cond["cpu_count"] or 1
    for c, cpu in result["sampler_cpu_fraction"].items():
        if cpu is not None:
            lines.append(f"  {c}: the sampler thread used {100 * cpu:.2f} % of one core = "
                         f"{100 * cpu / cpus:.2f} % of the machine's {cpus} CPU(s), the most it "
                         "can take from a workload that keeps every core busy")
    lines.append(verdict(result))
    return "\n".join(lines)


def verdict(result: dict[str, Any], target_pct: float = 1.0) -> str:
    """The 10 Hz figure against the target, saying when noise hides it."""
    s = result["ratio_to_off"].get("10 Hz")
    if s is None:
        return "  (10 Hz not measured)"
    cpu = result["sampler_cpu_fraction"].get("10 Hz")
    bound = 100 * cpu / (result["conditions"]["cpu_count"] or 1) if cpu is not None else None
    ci_loss = (100 * (1 - s["ci95_high"]), 100 * (1 - s["ci95_low"]))
    aa = result["ratio_to_off"]["off-again"]
    text = (f"  10 Hz: median throughput loss {s['loss_pct']:.2f} % (95 % CI "
            f"{ci_loss[0]:.2f}..{ci_loss[1]:.2f} %); A/A control {aa['loss_pct']:.2f} %")
    if ci_loss[1] <= target_pct:
        return text + f" -> within the {target_pct:g} % target"
    if ci_loss[0] > target_pct:
        return text + f" -> ABOVE the {target_pct:g} % target"
    resolved = (f"; the CPU-time bound is {bound:.2f} %" if bound is not None else "")
    return (text + f" -> this run cannot resolve {target_pct:g} % (the interval spans it)"
            + resolved)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tools.telemetry_overhead",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--adapter", default=None,
                        help="telemetry backend (default: the device backend's)")
    parser.add_argument("--workload", default="resnet",
                        help="a workload measured step by step (default resnet, infer mode)")
    parser.add_argument("--config", default="small")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--round-s", type=float, default=0.3)
    parser.add_argument("--rates", default="10,100", help="sampling rates in Hz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.child:
        return child_main(json.loads(args.child))
    result = measure(args)
    print(report(result))
    if args.out:
        from bench.jsonio import atomic_write_json

        atomic_write_json(args.out, result)
        print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
