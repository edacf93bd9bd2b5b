"""What one synchronisation per call would cost: the micro-benchmarks' timing rule, A/B.

    python -m bench.micro.overhead [--device auto] [--sizes 256,1024,4096] [--rounds 5]

For each GEMM size (bf16 where the device has it, else fp32) it times the same GEMM two ways,
interleaved round by round so clock and thermal drift hit both alike:

  A  synchronise after every call (the generic harness loop),
  B  queue ``--block`` calls, synchronise once (bench.micro.sweep.time_calls),

and prints the median per-call time of each and A's excess over B. On an accelerator the
excess is the host's share that the micro-benchmarks keep out of their figures; on the cpu
backend synchronisation is a no-op, so the two agree within noise.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.devices import get_backend
from bench.micro.sweep import time_calls
from bench.rules import RunRules


def per_call_synced(fn, sync, calls: int) -> float:
    sync()
    total = 0.0
    for _ in range(calls):
        t0 = time.monotonic()
        fn()
        sync()
        total += time.monotonic() - t0
    return total / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", default="256,1024,4096")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block", type=int, default=20)
    args = parser.parse_args(argv)
    backend = get_backend(args.device)
    dev = backend.device(0)
    dtype = torch.bfloat16 if backend.supports_precision("bf16") else torch.float32
    print(f"device: {backend.vendor} {backend.device_name(0)}, {dtype}, block {args.block}, "
          f"{args.rounds} interleaved rounds")
    print(f"{'n':>6} {'A sync/call (s)':>16} {'B block (s)':>12} {'A excess':>9}")
    rules = RunRules(warmup_iters=3, min_iters=args.block, min_duration_s=0.0)
    for n in (int(s) for s in args.sizes.split(",")):
        a_mat = torch.randn(n, n, dtype=dtype, device=dev)
        b_mat = torch.randn(n, n, dtype=dtype, device=dev)
        out = torch.empty_like(a_mat)

        def gemm(a_mat=a_mat, b_mat=b_mat, out=out) -> None:
            torch.matmul(a_mat, b_mat, out=out)

        a_times, b_times = [], []
        for _ in range(args.rounds):
            a_times.append(per_call_synced(gemm, backend.synchronize, args.block))
            b_times.append(time_calls(gemm, backend.synchronize, rules).seconds_per_call)
        a, b = statistics.median(a_times), statistics.median(b_times)
        print(f"{n:>6} {a:>16.3e} {b:>12.3e} {(a - b) / b * 100:>8.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
