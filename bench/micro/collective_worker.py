"""One rank of the collectives benchmark, started by torchrun (never run by hand).

    python -m torch.distributed.run --standalone --nproc_per_node N \\
        -m bench.micro.collective_worker SPEC.json OUT_DIR

(started by ``bench.launch.launch_ranks``, which also joins several nodes).

torchrun (PyTorch's own launcher, which also does multi-node rendezvous) sets RANK, WORLD_SIZE
and LOCAL_RANK. Each rank binds its local device, joins the process group of the vendor's
backend (nccl, cncl, gloo) and runs every (op, size) point in lockstep: a correctness check,
warm-up calls, one calibration block, then a number of timed blocks that all ranks agree on
(the maximum any rank needs to reach ``min_duration_s``), so no rank ever waits for a
collective the others skipped. After each point the ranks agree (all_reduce MAX) on the slowest
rank's time per call and on the worst status, so local rank 0's file holds the whole job's
figures even when the other ranks live on other nodes. The file is rewritten after every
point, so a crash keeps what was measured.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

STATUS_CODES = {"ok": 0, "unsupported": 1, "oom": 2, "error": 3}
STATUS_NAMES = {v: k for k, v in STATUS_CODES.items()}


def make_op(dist: Any, torch: Any, op: str, elements: int, dtype: Any, device: Any, rank: int,
            world: int) -> tuple[Callable[[], None], Callable[[], bool], Callable[[], None]]:
    """(call, check, reset) of one collective on freshly allocated buffers.

    ``check`` verifies the first call's result (each rank contributes rank + 1), so a
    collective that silently does nothing cannot produce a bandwidth. ``reset`` zeroes the
    buffers before timing (an all_reduce repeated in place would otherwise overflow).
    """
    def full(n: int, value: float) -> Any:
        return torch.full((n,), value, dtype=dtype, device=device)

    if op == "all_reduce":
        buf = full(elements, rank + 1)
        return (lambda: dist.all_reduce(buf),
                lambda: bool((buf == world * (world + 1) // 2).all()),
                buf.zero_)
    if op == "all_gather":
        share = elements // world
        inp, out = full(share, rank + 1), full(elements, 0)
        gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
        expected = torch.arange(1, world + 1, device=device).repeat_interleave(share).to(dtype)
        return (lambda: gather(out, inp), lambda: bool((out == expected).all()), out.zero_)
    if op == "all_to_all":
        share = elements // world
        inp, out = full(elements, rank + 1), full(elements, 0)
        expected = torch.arange(1, world + 1, device=device).repeat_interleave(share).to(dtype)
        return (lambda: dist.all_to_all_single(out, inp), lambda: bool((out == expected).all()),
                out.zero_)
    if op == "broadcast":
        buf = full(elements, rank + 1)
        return (lambda: dist.broadcast(buf, src=0), lambda: bool((buf == 1).all()), lambda: None)
    if op == "p2p":
        send, recv = full(elements, rank + 1), full(elements, 0)
        nxt, prv = (rank + 1) % world, (rank - 1) % world

        def exchange() -> None:
            for req in dist.batch_isend_irecv([dist.P2POp(dist.isend, send, nxt),
                                               dist.P2POp(dist.irecv, recv, prv)]):
                req.wait()

        return exchange, lambda: bool((recv == prv + 1).all()), recv.zero_
    raise ValueError(f"unknown collective {op!r}")


def main(argv: list[str]) -> int:
    import torch
    import torch.distributed as dist

    from bench.devices import get_backend
    from bench.distributed import this_node
    from bench.events import emit_progress
    from bench.jsonio import atomic_write_json, sanitize
    from bench.micro.formulas import collective_elements, size_label
    from bench.micro.precision import DTYPES
    from bench.micro.sweep import failure_class
    from bench.rules import RunRules
    from bench.timing import timed_loop

    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    out_dir = Path(argv[1])
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    backend = get_backend(spec["vendor"])
    if backend.device_type != "cpu":
        backend.module.set_device(local_rank)
    device = backend.device(local_rank)
    dist.init_process_group(backend=spec["dist_backend"],
                            timeout=timedelta(seconds=spec["timeout_s"]))
    nodes: list[Any] = [None] * world  # which node each rank runs on, for the result
    dist.all_gather_object(nodes, spec.get("node") or this_node())
    torch.manual_seed(spec["seed"])
    rules = RunRules.from_dict(spec["rules"])
    dtype = DTYPES[spec["precision"]]
    elem = torch.empty((), dtype=dtype).element_size()

    def sync() -> None:
        if backend.device_type != "cpu":
            backend.synchronize(local_rank)

    def agree_max(*values: float) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [float(v) for v in t.tolist()]

    records: list[dict[str, Any]] = []
    path = out_dir / f"local_rank{local_rank}.json"
    grid = [(op, n) for op in spec["ops"] for n in spec["sizes_bytes"]]
    for i, (op, nbytes) in enumerate(grid):
        if local_rank == 0:
            emit_progress({"phase": "point", "message":
                           f"point {i + 1}/{len(grid)}: {op} {size_label(nbytes)} x{world}"})
        record: dict[str, Any] = {"op": op, "bytes": nbytes, "ranks": world, "status": "ok",
                                  "error": None}
        seconds = -1.0
        # Buffers first, then agree: a rank that cannot allocate must not leave the others
        # waiting inside the collective (every rank takes the same branch below).
        try:
            elements = collective_elements(op, nbytes, elem, world)
            record["bytes"] = elements * elem
            call, check, reset = make_op(dist, torch, op, elements, dtype, device, rank, world)
        except Exception as exc:
            record["status"] = failure_class(exc, backend.is_oom)
            record["error"] = {"type": type(exc).__name__,
                               "message": (str(exc) or type(exc).__name__)[:2000]}
        (setup_worst,) = agree_max(STATUS_CODES[record["status"]])
        if setup_worst:
            if record["status"] == "ok":
                record["status"] = STATUS_NAMES[int(setup_worst)]
                record["error"] = {"type": "OtherRank", "message": "another rank recorded "
                                   f"{STATUS_NAMES[int(setup_worst)]} allocating its buffers"}
            record["seconds_max"] = None
            records.append(record)
            atomic_write_json(path, sanitize({"rank": rank, "world": world, "nodes": nodes,
                                              "points": records}))
            continue
        try:
            call()
            sync()
            if not check():
                raise RuntimeError(f"{op} returned a wrong result on rank {rank}")
            reset()
            for _ in range(rules.warmup_iters):
                call()
            per_block = max(1, rules.min_iters)

            def block(call: Callable[[], None] = call, per_block: int = per_block) -> int:
                for _ in range(per_block):
                    call()
                return per_block

            sync()
            t0 = time.monotonic()
            block()
            sync()
            first = time.monotonic() - t0
            (blocks,) = agree_max(max(1, math.ceil(rules.min_duration_s / max(first, 1e-9))))
            loop = timed_loop(block, sync, RunRules(warmup_iters=0, min_iters=int(blocks),
                                                    min_duration_s=0.0)).as_dict()
            seconds = loop["window"]["duration_s"] / loop["items"]
            loop["latencies_s"] = [t / per_block for t in loop["latencies_s"]]
            record["loop"] = loop
            record["seconds_rank"] = seconds
        except Exception as exc:
            record["status"] = failure_class(exc, backend.is_oom)
            record["error"] = {"type": type(exc).__name__,
                               "message": (str(exc) or type(exc).__name__)[:2000]}
        slowest, worst = agree_max(seconds, STATUS_CODES[record["status"]])
        if worst and record["status"] == "ok":
            record["status"] = STATUS_NAMES[int(worst)]
            record["error"] = {"type": "OtherRank",
                               "message": f"another rank recorded {STATUS_NAMES[int(worst)]}"}
        record["seconds_max"] = slowest if record["status"] == "ok" else None
        records.append(record)
        atomic_write_json(path, sanitize({"rank": rank, "world": world, "nodes": nodes,
                                              "points": records}))
        if backend.device_type != "cpu":
            backend.module.empty_cache()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
