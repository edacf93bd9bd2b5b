"""Harness overhead of a whole measurement: ``python -m bench run`` against a bare loop of the
same model, interleaved A B A B.

    python -m bench.overhead [--models resnet,bert,qwen2-0.5b] [--rounds 7] [--seconds 3]
                             [--threads N] [--markdown FILE]

Side A is a real run: ``python -m bench run`` of a one-entry suite (the workload's small
config, fp32, one repeat, a timed window of ``--seconds``), with everything a run has: the
child process per repeat, the telemetry sampler at 10 Hz in the parent, a synchronisation and
two clock readings per iteration. Its figure is the result's ``throughput_items_per_s``.
Side B builds the same workload in a fresh process (the workload's own ``setup``: the same
model, inputs and seed), warms it up the same number of iterations and then calls the model
(``model(x)``, or ``model.generate`` for the LLM) in a plain loop for as long, timed around the
whole loop with one synchronisation at its end. Both get the same threads.

Each round runs both sides once per model, A first in even rounds and B first in odd ones, so
load on a shared machine lands on both; the ratio A/B per round, its median and a 95 %
interval of the median (``bench.llm.overhead.summary``) are printed, with the machine and its
load average. A ratio of 1 means the harness costs nothing; above 1 would mean the bare loop
was slower (noise).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from bench.documents import JsonObject, Params
from bench.llm.overhead import summary

MODELS = ("resnet", "bert", "qwen2-0.5b")
WARMUP = 3
LLM_POINT = {"batch": 1, "input_tokens": 32, "output_tokens": 32}


def entry_params(model: str) -> Params:
    """Parameters beyond the small config: the LLM's grid cut to one point."""
    if model.startswith(("qwen2", "llama3", "glm4")):
        return {"batch_sizes": [LLM_POINT["batch"]],
                "io_tokens": [[LLM_POINT["input_tokens"], LLM_POINT["output_tokens"]]],
                "reference_point": dict(LLM_POINT)}
    return {}


def suite_doc(model: str, seconds: float) -> JsonObject:
    return {"name": "overhead", "seed": 0,
            "rules": {"warmup_iters": WARMUP, "min_iters": 3, "min_duration_s": seconds,
                      "repeats": 1, "timeout_s": 600},
            "telemetry": {"interval_s": 0.1, "idle_s": 0.2},
            "entries": [{"id": "m", "workload": model, "mode": "infer", "config": "small",
                         "precision": "fp32", "params": entry_params(model)}]}


def harness_side(model: str, seconds: float, threads: int | None, work: Path) -> float:
    """Throughput a real ``python -m bench run`` reports."""
    suite = work / f"{model}.yaml"
    suite.write_text(yaml.safe_dump(suite_doc(model, seconds)), encoding="utf-8")
    out = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    out.rmdir()
    cmd = [sys.executable, "-m", "bench", "run", "--suite", str(suite), "--device", "cpu",
           "--out", str(out), "--quiet"]
    if threads:
        cmd += ["--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    result = out / "m.json"
    if proc.returncode != 0 or not result.exists():
        raise RuntimeError(f"bench run of {model} failed ({proc.returncode}): "
                           f"{proc.stderr[-1500:]}")
    doc = json.loads(result.read_text(encoding="utf-8"))
    return float(doc["metrics"]["throughput_items_per_s"]["value"])


def bare_side(model: str, seconds: float, threads: int | None) -> float:
    """Throughput of a plain loop of the same model, in a fresh process."""
    cmd = [sys.executable, "-m", "bench.overhead", "--bare", model, "--seconds", str(seconds)]
    if threads:
        cmd += ["--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bare loop of {model} failed: {proc.stderr[-1500:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["items_per_s"])


def bare_call(workload: Any) -> tuple[Callable[[], Any], int]:
    """The model call a user would time by hand, and the items it processes."""
    import torch

    p = workload.params
    if hasattr(workload, "prompt_rows"):  # an LLM: generate, greedy, fixed length
        n_in, n_out, b = LLM_POINT["input_tokens"], LLM_POINT["output_tokens"], LLM_POINT["batch"]
        ids = torch.tensor(workload.prompt_rows[n_in][:b], dtype=torch.long,
                           device=workload.ctx.device)
        mask = torch.ones_like(ids)
        config = workload.generation_config(n_out)
        return (lambda: workload.model.generate(input_ids=ids, attention_mask=mask,
                                                generation_config=config)), b * n_out
    if hasattr(workload, "images"):
        return (lambda: workload.model(workload.images)), p["batch_size"]
    if hasattr(workload, "batch"):
        from bench.workloads.bert import MODEL_INPUTS

        inputs = {k: workload.batch[k] for k in MODEL_INPUTS}
        return (lambda: workload.model(**inputs)), p["batch_size"]
    raise ValueError(f"no bare loop for workload {workload.name}")


def run_bare(model: str, seconds: float, threads: int | None) -> dict[str, float]:
    """Side B, in this (fresh) process."""
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(threads)
    import torch

    if threads:
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)
    from bench.config import RunRules
    from bench.devices import get_backend
    from bench.workload import WorkloadContext, get_workload

    cls = get_workload(model)
    backend = get_backend("cpu")
    params = {**cls.configs["small"], **entry_params(model)}
    torch.manual_seed(0)
    workload = cls(WorkloadContext(backend=backend, mode="infer", params=params,
                                   precision="fp32", seed=0, rules=RunRules()))
    workload.setup()
    call, items = bare_call(workload)
    with torch.inference_mode():
        for _ in range(WARMUP):
            call()
        n = 0
        start = time.perf_counter()
        while True:
            call()
            n += 1
            if time.perf_counter() - start >= seconds and n >= 3:
                break
        backend.synchronize()
        elapsed = time.perf_counter() - start
    return {"items_per_s": n * items / elapsed, "iterations": n}


def machine() -> str:
    from bench.devices.cpu import cpu_model_name

    return (f"{cpu_model_name()}, {os.cpu_count()} logical CPUs, {platform.system()} "
            f"{platform.release()}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=3.0,
                    help="timed window of each side per round")
    ap.add_argument("--threads", type=int, default=0, help="torch threads of both sides "
                    "(0: torch's default)")
    ap.add_argument("--markdown", help="also write the table (Markdown) to this file")
    ap.add_argument("--bare", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    threads = args.threads or None
    if args.bare:
        print(json.dumps(run_bare(args.bare, args.seconds, threads)))
        return 0
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    started = datetime.now(tz=timezone.utc)
    print(f"{machine()}; {args.rounds} rounds of {args.seconds:g} s per side, threads "
          f"{threads or 'default'}, started {started:%Y-%m-%d %H:%M} UTC", flush=True)
    ratios: dict[str, list[float]] = {m: [] for m in models}
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        work = Path(tmp)
        for r in range(args.rounds):
            for model in models:
                loads.append(os.getloadavg()[0])
                if r % 2 == 0:
                    a = harness_side(model, args.seconds, threads, work)
                    b = bare_side(model, args.seconds, threads)
                else:
                    b = bare_side(model, args.seconds, threads)
                    a = harness_side(model, args.seconds, threads, work)
                ratios[model].append(a / b)
                print(f"round {r + 1:2d} {model:<11} bench run {a:12.4g}  bare loop {b:12.4g}"
                      f"  ratio {a / b:.4f}  (load {loads[-1]:.1f})", flush=True)
    rows = ["| model (small config, fp32) | median ratio bench run / bare loop | 95 % "
            "interval of the median | min .. max | rounds |", "|---|---:|---:|---:|---:|"]
    for model in models:
        s = summary(ratios[model])
        low, high = 1 - s["overhead_high"], 1 - s["overhead_low"]
        rows.append(f"| {model} | {s['median']:.3f} | {low:.3f} .. {high:.3f} | "
                    f"{s['min']:.3f} .. {s['max']:.3f} | {len(ratios[model])} |")
    load = statistics.mean(loads) if loads else float("nan")
    footer = (f"{started:%Y-%m-%d}, {machine()}, threads {threads or 'default'}, "
              f"{args.seconds:g} s windows; load average during the rounds {load:.1f} "
              f"(min {min(loads):.1f}, max {max(loads):.1f}).")
    text = "\n".join([*rows, "", footer])
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
