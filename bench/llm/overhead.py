"""Harness overhead of the LLM measurement: our grid point vs a bare ``generate`` loop.

    python -m bench.llm.overhead [--model qwen2-0.5b] [--architecture reduced] ...

Both sides use the same model object and the same prompt tensor. Side A is the workload's own
grid-point path (``LlmWorkload.run_grid_point``: the protocol's generation config, a streamer
that syncs and timestamps every token, the point's metrics), reporting its output tokens/s.
Side B is ``model.generate`` with the same greedy fixed-length settings and nothing else,
timed around the call. Rounds interleave the sides (A B, then B A, ...) so drift on a shared
machine hits both; the ratio A/B per round, its median and spread are printed. The target is
an overhead (1 - median ratio) of at most 2 %.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from typing import Any

from bench.rules import RunRules

TARGET_OVERHEAD = 0.02


def bare_tokens_per_s(model: Any, ids: Any, mask: Any, output_tokens: int, config: Any,
                      synchronize: Any, iterations: int) -> float:
    """Plain ``generate`` with the same greedy fixed-length config, timed around the calls."""
    import torch

    synchronize()
    start = time.monotonic()
    with torch.inference_mode():
        for _ in range(iterations):
            model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    synchronize()
    return ids.shape[0] * output_tokens * iterations / (time.monotonic() - start)


def summary(ratios: list[float]) -> dict[str, float]:
    """Median ratio (harness / bare), its spread, and the overhead with a 95 % interval.

    The interval of the median uses the normal approximation: standard error 1.2533 x sigma /
    sqrt(n), with sigma estimated robustly as IQR / 1.349 (a noisy round does not dominate).
    """
    n = len(ratios)
    q = statistics.quantiles(ratios, n=4) if n >= 2 else [ratios[0]] * 3
    med = statistics.median(ratios)
    half = 1.96 * 1.2533 * ((q[2] - q[0]) / 1.349) / math.sqrt(n)
    return {"median": med, "min": min(ratios), "max": max(ratios), "q1": q[0], "q3": q[2],
            "overhead": 1.0 - med, "overhead_low": 1.0 - med - half,
            "overhead_high": 1.0 - med + half}


def verdict(s: dict[str, float], target: float = TARGET_OVERHEAD) -> str:
    """Within / over the target only when the whole 95 % interval says so."""
    if s["overhead_high"] <= target:
        return "within"
    if s["overhead_low"] > target:
        return "OVER"
    return "inconclusive for"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.llm.overhead", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2-0.5b", choices=["qwen2-0.5b", "llama3-8b",
                                                              "glm4-9b"])
    ap.add_argument("--architecture", default="reduced", choices=["reduced", "published"])
    ap.add_argument("--device", default="auto", help="vendor backend (default: detected)")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--input-tokens", type=int, default=64)
    ap.add_argument("--output-tokens", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=3, help="generations per side per round")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (0: torch's default). On a shared, oversubscribed "
                         "CPU, 1 thread avoids OpenMP barrier stalls that swamp the figure")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from bench.devices import detect, get_backend
    from bench.workload import WorkloadContext, get_workload

    vendor = detect() if args.device == "auto" else args.device
    backend = get_backend(vendor)
    cls = get_workload(args.model)
    point = {"batch": args.batch, "input_tokens": args.input_tokens,
             "output_tokens": args.output_tokens}
    params = {**cls.configs["small"], "architecture": args.architecture,
              "batch_sizes": [args.batch], "io_tokens": [[args.input_tokens,
                                                          args.output_tokens]],
              "reference_point": point}
    rules = RunRules(warmup_iters=0, min_iters=args.iterations, min_duration_s=0.0, repeats=1)
    ctx = WorkloadContext(backend=backend, mode="infer", params=params,
                          precision=args.precision, seed=0, rules=rules)
    workload = cls(ctx)
    workload.setup()
    ids = torch.tensor(workload.prompt_rows[args.input_tokens][:args.batch],
                       dtype=torch.long, device=ctx.device)
    mask = torch.ones_like(ids)
    config = workload.generation_config(args.output_tokens)

    def harness() -> float:
        result = workload.run_grid_point(point)
        return result.metrics["output_tokens_per_s"]["value"]

    def bare() -> float:
        return bare_tokens_per_s(workload.model, ids, mask, args.output_tokens, config,
                                 backend.synchronize, args.iterations)

    print(f"{args.model} ({args.architecture}, {workload.extra['parameters']:,} parameters, "
          f"{workload.precision_used}) on {backend.device_name()} [{vendor}]; point batch "
          f"{args.batch}, {args.input_tokens} in, {args.output_tokens} out; "
          f"{args.iterations} generations per side, {args.rounds} rounds, "
          f"{torch.get_num_threads()} CPU thread(s)")
    harness()
    bare()  # warm-up of both paths, not counted
    ratios = []
    for r in range(args.rounds):
        if r % 2 == 0:
            a = harness()
            b = bare()
        else:
            b = bare()
            a = harness()
        ratios.append(a / b)
        print(f"round {r + 1:2d}: harness {a:10.1f} tokens/s   bare generate {b:10.1f} "
              f"tokens/s   ratio {a / b:.4f}")
    s = summary(ratios)
    print(f"ratio harness/bare: median {s['median']:.4f} (IQR {s['q1']:.4f}..{s['q3']:.4f}, "
          f"min {s['min']:.4f}, max {s['max']:.4f})")
    print(f"harness overhead: {s['overhead'] * 100:+.2f} % of tokens/s, 95 % interval "
          f"{s['overhead_low'] * 100:+.2f}..{s['overhead_high'] * 100:+.2f} % "
          f"({verdict(s)} the {TARGET_OVERHEAD * 100:g} % target"
          + ("; more rounds or a quieter machine narrow it" if verdict(s).startswith("incon")
             else "") + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
