"""Collective communication: all_reduce, all_gather, all_to_all, broadcast, point-to-point.

Launched with torchrun (``python -m torch.distributed.run``, PyTorch's launcher for multi-device
and multi-node jobs; this file only starts it) over the vendor's distributed backend: nccl on
NVIDIA, cncl on Cambricon, gloo on the cpu reference (several processes on loopback). Every
(op, size) point reports the duration of one call (the slowest rank's), the algorithm bandwidth
(size / duration) and the bus bandwidth (algorithm bandwidth x 2(n-1)/n for all_reduce,
(n-1)/n for all_gather and all_to_all, 1 for broadcast and p2p: bench.micro.formulas), with
sizes in the nccl-tests convention. Bus bandwidth is compared with the spec sheet's
device-to-device link bandwidth where the sheet has one.

Ranks: one per device visible to the run (``nproc: auto``; ``--devices`` decides which are
visible; two processes on the cpu), or the launcher's ``--nproc-per-node``. Several nodes: the
launcher places the entry on every node at once (``invoke bench --slurm``, or ``bench run
--nnodes N --node-rank R --rdzv-endpoint HOST:PORT`` by hand); torchrun's c10d rendezvous on the
first node joins them (``bench.launch``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import launch
from bench.documents import Params, RepeatResult
from bench.errors import Unsupported, UserError
from bench.launch import process_group_timeout_s
from bench.micro import formulas
from bench.micro.peaks import device_peaks, pct_metric
from bench.micro.precision import DTYPES
from bench.micro.sweep import Point, PointTiming, best_point, sweep_measurement
from bench.results import metric
from bench.workload import Workload, register

KiB, MiB = 2**10, 2**20
CPU_RANKS = 2  # gloo processes on the cpu reference, which has one "device"
WORKER = "bench.micro.collective_worker"


def ranks_per_node(nproc: int | str | None, launcher_nproc: int | None, vendor: str,
                   device_count: Callable[[], int]) -> int:
    """Ranks on this node: the launcher's ``--nproc-per-node``, else the entry's ``nproc``,
    where null (or ``auto``) is one rank per visible device (two processes on the cpu)."""
    if launcher_nproc is not None:
        return launcher_nproc
    if nproc not in (None, "auto"):
        return int(nproc)
    return CPU_RANKS if vendor == "cpu" else device_count()


@register
class CollectivesWorkload(Workload):
    name = "collectives"
    description = "all_reduce/all_gather/all_to_all/broadcast/p2p over torchrun: alg/bus bandwidth"
    group = "micro"
    modes = ("infer",)
    item_unit = "B"
    distributed = True
    configs = {
        "small": {"ops": list(formulas.COLLECTIVES), "sizes_bytes": [4 * KiB, 256 * KiB, 4 * MiB],
                  "nproc": None, "nnodes": None},
        "full": {"ops": list(formulas.COLLECTIVES),
                 "sizes_bytes": [KiB * 4**i for i in range(11)],  # 1 KiB .. 1 GiB
                 "nproc": None, "nnodes": None},
    }

    @classmethod
    def places_on_every_node(cls, params: Params) -> bool:
        # nnodes null: every node of the run; 1: the first node alone; N: exactly N nodes.
        return params.get("nnodes") != 1

    @classmethod
    def validate_params(cls, params: Params) -> None:
        nnodes = params.get("nnodes")
        if nnodes is not None and not (isinstance(nnodes, int) and nnodes >= 1):
            raise UserError(f"collectives: nnodes={nnodes!r} is not a number of nodes.",
                            "Give a positive integer, or null for every node of the run.")
        nproc = params.get("nproc")
        if nproc not in (None, "auto") and not (isinstance(nproc, int) and nproc >= 1):
            raise UserError(f"collectives: nproc={nproc!r} is not a number of ranks.",
                            "Give a positive integer, or null for one rank per device.")

    def setup(self) -> None:
        p = self.params
        unknown = set(p["ops"]) - set(formulas.COLLECTIVES)
        if unknown or not p["ops"]:
            raise ValueError(f"collectives: ops must be among {', '.join(formulas.COLLECTIVES)}, "
                             f"got {p['ops']!r}")
        if self.ctx.precision not in DTYPES:
            raise Unsupported(f"collectives: no dtype for precision {self.ctx.precision}")
        backend = self.ctx.backend
        placement = self.ctx.placement
        if p.get("nnodes") is not None and p["nnodes"] != placement.nnodes:
            raise Unsupported(f"this entry measures {p['nnodes']} node(s) but was placed on "
                              f"{placement.nnodes}: run it with invoke bench --slurm --nodes "
                              f"{p['nnodes']} (docs/cluster.md)")
        self.nproc = ranks_per_node(p["nproc"], placement.nproc_per_node, backend.vendor,
                                    backend.device_count)
        world = self.nproc * placement.nnodes
        if world < 2:
            raise Unsupported(f"a collective needs at least 2 ranks; nproc={p['nproc']} gives "
                              f"{self.nproc} on {placement.nnodes} node(s) "
                              f"({backend.device_count()} {backend.vendor} device(s) here)")
        if backend.vendor != "cpu" and self.nproc > backend.device_count():
            raise Unsupported(f"nproc={self.nproc} ranks but only {backend.device_count()} "
                              f"{backend.vendor} device(s): one rank per device")
        if backend.vendor != "cpu":
            self.devices_used = list(range(self.nproc))
        self.peaks = device_peaks(backend)
        self.extra.update(reference=self.peaks.info(), dist_backend=backend.dist_backend,
                          world_size=world, launcher=launch.LAUNCHER,
                          size_convention="nccl-tests: all_reduce/broadcast/p2p buffer, "
                          "all_gather output, all_to_all per-rank buffer")

    def _run_torchrun(self, tmp: Path) -> tuple[list[dict[str, Any]], str | None]:
        """Start the job; returns local rank 0's records and why the job failed (or None)."""
        out_dir = tmp / "ranks"
        out_dir.mkdir()
        spec = tmp / "spec.json"
        spec.write_text(json.dumps({
            "vendor": self.ctx.backend.vendor, "dist_backend": self.ctx.backend.dist_backend,
            "ops": self.params["ops"], "sizes_bytes": self.params["sizes_bytes"],
            "precision": self.ctx.precision, "seed": self.ctx.seed,
            "rules": self.ctx.rules.to_dict(),
            "timeout_s": process_group_timeout_s(self.ctx.rules.timeout_s),
            "node": self.ctx.placement.node,
        }), encoding="utf-8")
        args = [str(spec), str(out_dir)]
        cmd = launch.torchrun_command(self.ctx.placement, self.nproc, WORKER, args)
        self.extra["command"] = ["python", *cmd[1:-2], "SPEC.json", "OUT_DIR"]
        outcome = launch.launch_ranks(self.ctx.placement, self.nproc, WORKER, args,
                                      self.ctx.progress, store_timeout_s=self.ctx.rules.timeout_s)
        path = out_dir / "local_rank0.json"
        ranks = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        if ranks.get("nodes"):
            self.extra["rank_nodes"] = ranks["nodes"]
        return ranks.get("points", []), outcome.describe_failure()

    def _point(self, rec: dict[str, Any]) -> Point:
        params = {"op": rec["op"], "bytes": rec["bytes"], "ranks": rec["ranks"]}
        if rec["status"] != "ok":
            return Point(params=params, status=rec["status"], error=rec["error"])
        seconds, op, n = rec["seconds_max"], rec["op"], rec["bytes"]
        algbw = formulas.algbw_bytes_per_s(n, seconds)
        busbw = formulas.busbw_bytes_per_s(op, n, seconds, rec["ranks"])
        message = formulas.deepspeed_message_bytes(op, n, rec["ranks"])
        peak, reason = self.peaks.peak("interconnect_bytes_per_s")
        loop = rec["loop"]
        return Point(params=params, timing=PointTiming(loop=loop, calls=int(loop["items"])),
                     metrics={
            "time_s": metric(seconds, "s"),
            "algbw_bytes_per_s": metric(algbw, "B/s"),
            "busbw_bytes_per_s": metric(busbw, "B/s"),
            "bus_factor": metric(formulas.bus_factor(op, rec["ranks"]), "1"),
            "deepspeed_bits_per_s": metric(
                formulas.deepspeed_bits_per_s(op, message, seconds, rec["ranks"]), "bit/s",
                message_bytes=message,
                definition="DeepSpeed's communication benchmark: all_reduce 2 x size / time, "
                           "all_gather world x size / time, others size / time"),
            "pct_of_peak": pct_metric(busbw, peak, reason),
            "throughput_items_per_s": metric(algbw, "B/s"),
        })

    def measure(self) -> RepeatResult:
        with tempfile.TemporaryDirectory(prefix="bench-collectives-") as tmp:
            records, failure = self._run_torchrun(Path(tmp))
        points = []
        for rec in records:
            point = self._point(rec)
            if point.timing is not None:
                # the harness counts items in bytes: one call moves the op's buffer
                point.timing.loop["items"] = point.timing.loop["items"] * rec["bytes"]
                point.timing.loop["throughput_items_per_s"] = (
                    point.timing.loop["items"] / point.timing.loop["window"]["duration_s"])
            points.append(point)
        # the ranks write after every point, in grid order: what is missing never ran
        grid = [(op, n) for op in self.params["ops"] for n in self.params["sizes_bytes"]]
        for op, n in grid[len(records):]:
            points.append(Point(params={"op": op, "bytes": n, "ranks": self.extra["world_size"]},
                                status="error", error={
                                    "type": "TorchrunFailed",
                                    "message": failure or "the job wrote no result"}))
        if failure and not any(p.status == "ok" for p in points):
            raise RuntimeError(failure)
        peak, reason = self.peaks.peak("interconnect_bytes_per_s")
        metrics = {"peak_interconnect_bytes_per_s": metric(peak, "B/s", reason)}
        for op in self.params["ops"]:
            best = best_point([p for p in points if p.params["op"] == op], "busbw_bytes_per_s")
            if best is None:
                why = next((p.error["message"] for p in points
                            if p.params["op"] == op and p.error), "no point ran")
                metrics[f"{op}_busbw_bytes_per_s"] = metric(None, "B/s", why)
                continue
            metrics[f"{op}_busbw_bytes_per_s"] = dict(best.metrics["busbw_bytes_per_s"])
            metrics[f"{op}_algbw_bytes_per_s"] = dict(best.metrics["algbw_bytes_per_s"])
            metrics[f"{op}_deepspeed_bits_per_s"] = dict(best.metrics["deepspeed_bits_per_s"])
        headline = (best_point([p for p in points if p.params["op"] == "all_reduce"],
                               "busbw_bytes_per_s") or best_point(points, "busbw_bytes_per_s"))
        return sweep_measurement(points, headline, metrics)
