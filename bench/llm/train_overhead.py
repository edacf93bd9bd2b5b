"""Harness overhead of the training measurement: the workload's step under the harness's timed
loop vs a bare PyTorch training loop of the same model and batch.

    python -m bench.llm.train_overhead [--model llama3-8b] [--architecture reduced] ...

Both sides train the same model object with the same optimiser. Side A is what
``llm-pretrain`` times: ``TrainSession.step`` (learning rate from the schedule, this step's
batch from the data source, the loss normalised by the global token count, gradient clipping
with its norm read back, the loss read back and checked for NaN) inside ``bench.timing``'s
timed loop (a device synchronisation and a clock reading around every step). Side B is the
loop a person would write: zero_grad, forward with the labels on one fixed batch, backward,
clipping, optimiser step, one synchronisation at the end. Rounds interleave the sides (A B,
then B A, ...) so drift on a shared machine hits both; the ratio of tokens/s A/B per round,
its median and its 95 % interval are printed against the 2 % target.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from bench.llm.overhead import TARGET_OVERHEAD, summary, verdict
from bench.rules import RunRules


def bare_tokens_per_s(session: Any, batch: dict[str, Any], steps: int
                      ) -> tuple[float, float]:
    """A plain training loop on one fixed batch, timed around all its steps: tokens per
    second of wall time and of this thread's CPU time."""
    import torch

    model, optimizer, params = session.model, session.optimizer, session.params
    clip = session.spec.clip_grad_norm
    session._sync()
    start, cpu = time.monotonic(), time.thread_time()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        with session._autocast():
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
    session._sync()
    tokens = steps * session.spec.tokens_per_step
    return tokens / (time.monotonic() - start), tokens / (time.thread_time() - cpu)


def harness_tokens_per_s(session: Any, steps: int) -> tuple[float, float]:
    """The workload's steps in the harness's timed loop: tokens per second of the timed
    window and of this thread's CPU time."""
    from bench.timing import timed_loop

    cpu = time.thread_time()
    loop = timed_loop(session.step, session._sync,
                      RunRules(warmup_iters=0, min_iters=steps, min_duration_s=0.0))
    return loop.items / loop.duration_s, loop.items / (time.thread_time() - cpu)


def host_work_s(session: Any, reps: int = 200) -> float:
    """Median time of the host work the harness's step adds around the model's step: the
    learning rate from the schedule, this step's rows of the global batch built from the data
    pool and moved to the device. A figure that machine noise hardly moves, unlike the A/B
    ratio of two whole training loops."""
    import statistics

    import torch

    times = []
    for i in range(reps):
        t0 = time.perf_counter()
        lr = session.schedule.lr(i + 1)
        for group in session.optimizer.param_groups:
            group["lr"] = lr
        arrays = session.source.batch(i, session.rows)
        {k: torch.from_numpy(v).to(session.device, non_blocking=True) for k, v in arrays.items()}
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    from bench.llm.train_models import TRAIN_MODELS

    ap = argparse.ArgumentParser(prog="python -m bench.llm.train_overhead", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="llama3-8b",
                    choices=[m for m, t in TRAIN_MODELS.items() if t.objective == "causal"])
    ap.add_argument("--architecture", default="reduced", choices=["reduced", "published"])
    ap.add_argument("--device", default="auto", help="vendor backend (default: detected)")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4, help="global batch (one device)")
    ap.add_argument("--steps", type=int, default=10, help="training steps per side per round")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (0: torch's default). On a shared, oversubscribed "
                         "CPU, 1 thread avoids OpenMP barrier stalls that swamp the figure")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from bench.devices import detect, get_backend
    from bench.llm.trainer import TrainSession, TrainSpec

    vendor = detect() if args.device == "auto" else args.device
    backend = get_backend(vendor)
    spec = TrainSpec(task="pretrain", model=args.model, architecture=args.architecture,
                     seq_len=args.seq_len, global_batch=args.batch, precision=args.precision,
                     strategy="none", activation_checkpointing=False, lr=1e-4,
                     warmup_steps=1, decay_steps=10**9, vendor=vendor)
    session = TrainSession(spec, backend)
    session.setup()
    arrays = session.source.batch(0, session.rows)
    batch = {k: torch.from_numpy(v).to(session.device) for k, v in arrays.items()}
    print(f"{args.model} ({args.architecture}, {session.shape.parameters:,} parameters, "
          f"{args.precision}) on {backend.device_name()} [{vendor}]; batch {args.batch} x "
          f"{args.seq_len} tokens; {args.steps} steps per side, {args.rounds} rounds, "
          f"{torch.get_num_threads()} CPU thread(s)")
    harness_tokens_per_s(session, 2)
    bare_tokens_per_s(session, batch, 2)  # warm-up of both paths, not counted
    ratios, cpu_ratios, bare_rates = [], [], []
    for r in range(args.rounds):
        if r % 2 == 0:
            (a, a_cpu), (b, b_cpu) = (harness_tokens_per_s(session, args.steps),
                                      bare_tokens_per_s(session, batch, args.steps))
        else:
            (b, b_cpu), (a, a_cpu) = (bare_tokens_per_s(session, batch, args.steps),
                                      harness_tokens_per_s(session, args.steps))
        ratios.append(a / b)
        cpu_ratios.append(a_cpu / b_cpu)
        bare_rates.append(b)
        print(f"round {r + 1:2d}: harness {a:10.1f} tokens/s   bare loop {b:10.1f} tokens/s   "
              f"ratio {a / b:.4f}   (CPU time {a_cpu / b_cpu:.4f})")
    host = host_work_s(session)
    bare_step = session.spec.tokens_per_step / statistics.median(bare_rates)
    print(f"host work the harness adds per step (schedule, batch from the pool, to the device): "
          f"median {host * 1e6:.0f} us = {host / bare_step * 100:.2f} % of a bare step "
          f"({bare_step * 1e3:.1f} ms median)")
    if vendor == "cpu":
        c = summary(cpu_ratios)
        print(f"ratio of tokens per CPU second of this thread (steadier where other processes "
              f"share the cores): median {c['median']:.4f}, overhead {c['overhead'] * 100:+.2f} "
              f"%, 95 % interval {c['overhead_low'] * 100:+.2f}..{c['overhead_high'] * 100:+.2f}"
              " %")
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
