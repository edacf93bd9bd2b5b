"""Large-model training and fine-tuning: ``llm-pretrain`` and ``llm-finetune`` (docs/training.md).

``llm-pretrain`` trains Llama-3-8B, an InternLM-7B-class model, GPT-3 XL (GPT-2 architecture)
or BERT-base (masked LM + next sentence) from the workload's deterministic initialisation;
``llm-finetune`` trains a Llama-architecture model on Alpaca-format instruction records,
through LoRA (peft; Alpaca-LoRA's r 8, alpha 16, dropout 0.05 on q_proj and v_proj) or in
full. Both: AdamW, mixed precision by autocast (bf16, or fp16 with loss scaling) where the
device has it, gradient clipping, a fixed learning-rate schedule, learnable synthetic data by
default (``bench.llm.train_data``) or local data.

One device trains in the harness's own process. Several (``nproc`` per node, ``nnodes``)
are started by ``bench.launch`` (torchrun, on every node the launcher placed the entry on:
``invoke bench --slurm --nodes N``) over the vendor's collective backend
(gloo on the CPU): DDP for models whose whole training state fits a device, FSDP
(``fully_shard``) with activation checkpointing for those that do not. The harness's timed
loop (``bench.timing``) runs in every rank; the ranks agree when to stop; the result combines
them (the slowest rank's step time, each rank's peak memory, the global loss).

Metrics: TGS (tokens per device per second), iteration time mean/p50/p99/CV, model FLOPs per
token, FLOP/s and MFU against the spec sheet's peak at the precision used, the loss and
gradient norm of the first ``loss_steps`` steps (``repeats[].series``), the final loss, and
the checkpoint round trip (save, its blocking part, load, bytes). A NaN or infinite loss is
an error naming the step; a rank that dies takes the entry down as an error naming the rank.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import tempfile
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from bench import launch
from bench.documents import Info, Metrics, Params, RepeatResult
from bench.errors import Unsupported, UserError
from bench.function.model import CHECK_BATCH, ModelProbe
from bench.launch import process_group_timeout_s
from bench.llm import train_formulas as tf
from bench.llm.memory import FALLBACKS
from bench.llm.train_models import FINETUNE_MODELS, TRAIN_MODELS
from bench.micro.peaks import device_peaks
from bench.results import metric
from bench.rules import RunRules
from bench.workload import Workload, register

# Run rule of the chip evaluation template: fewer than 50 warm-up iterations.
MAX_WARMUP_ITERS = 49
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
STRATEGIES = ("auto", "none", "ddp", "fsdp")
WORKER = "bench.llm.train_worker"
SOAK_WORKER = "bench.llm.soak_worker"

_COMMON = {
    "architecture": "reduced", "nproc": 1, "nnodes": 1,
    "strategy": "auto", "activation_checkpointing": None, "weight_decay": 0.1,
    "betas": [0.9, 0.95], "eps": 1e-8, "min_lr_ratio": 0.1, "clip_grad_norm": 1.0,
    "data_path": None, "tokenizer": None, "weights": None, "loss_steps": 100,
    "checkpoint": True, "checkpoint_dir": None, "memory_budget_bytes": None,
    # the stability soak (run rule soak_s > 0; docs/scorecard.md)
    "soak_checkpoint_every": 10, "soak_hang_s": 300.0, "soak_max_steps": None,
}
PRETRAIN_CONFIGS = {
    "small": {**_COMMON, "model": "llama3-8b", "seq_len": 64, "global_batch": 4, "lr": 1e-3,
              "warmup_steps": 5, "decay_steps": 200},
    "full": {**_COMMON, "model": "llama3-8b", "architecture": "published", "seq_len": 4096,
             "global_batch": 16, "nproc": "auto", "lr": 3e-4, "warmup_steps": 20,
             "decay_steps": 2000},
}
_LORA = {"method": "lora", "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05,
         "lora_targets": ["q_proj", "v_proj"]}
FINETUNE_CONFIGS = {
    "small": {**PRETRAIN_CONFIGS["small"], **_LORA, "seq_len": 128, "weight_decay": 0.0,
              "betas": [0.9, 0.999]},
    "full": {**PRETRAIN_CONFIGS["full"], **_LORA, "seq_len": 512, "global_batch": 128,
             "weight_decay": 0.0, "betas": [0.9, 0.999], "lr": 3e-4, "warmup_steps": 100},
}


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def validate_train_params(params: Params, task: str) -> None:
    """Refuse parameters that make the measurement meaningless, before anything runs."""
    models = FINETUNE_MODELS if task == "finetune" else tuple(TRAIN_MODELS)
    if params["model"] not in models:
        raise UserError(f"model is {params['model']!r}.", f"Use one of: {', '.join(models)}.")
    if params["architecture"] not in ("published", "reduced"):
        raise UserError(f"architecture is {params['architecture']!r}.",
                        "Use published or reduced.")
    for name in ("seq_len", "global_batch", "nnodes", "loss_steps", "decay_steps"):
        if not _positive_int(params[name]):
            raise UserError(f"{name} must be a positive integer, got {params[name]!r}.",
                            f"Give e.g. {name}: {PRETRAIN_CONFIGS['small'][name]}.")
    nproc = params["nproc"]
    if nproc != "auto" and not _positive_int(nproc):
        raise UserError(f"nproc must be a positive integer or auto, got {nproc!r}.",
                        "Give the number of devices per node, or auto (all of them).")
    if isinstance(nproc, int) and params["global_batch"] % (nproc * params["nnodes"]):
        raise UserError(f"global_batch {params['global_batch']} does not divide over "
                        f"{nproc * params['nnodes']} ranks.",
                        "Make the global batch a multiple of nproc x nnodes.")
    if params["strategy"] not in STRATEGIES:
        raise UserError(f"strategy is {params['strategy']!r}.",
                        f"Use one of: {', '.join(STRATEGIES)}.")
    ac = params["activation_checkpointing"]
    if ac is not None and not isinstance(ac, bool):
        raise UserError(f"activation_checkpointing is {ac!r}.",
                        "Use true, false or null (auto: on with FSDP).")
    if not (isinstance(params["lr"], int | float) and params["lr"] > 0):
        raise UserError(f"lr must be positive, got {params['lr']!r}.", "Give e.g. lr: 3e-4.")
    if not (isinstance(params["warmup_steps"], int) and 0 <= params["warmup_steps"]
            < params["decay_steps"]):
        raise UserError("warmup_steps must be >= 0 and below decay_steps.",
                        "Give e.g. warmup_steps: 20, decay_steps: 2000.")
    betas = params["betas"]
    if not (isinstance(betas, list) and len(betas) == 2
            and all(isinstance(b, int | float) and 0 <= b < 1 for b in betas)):
        raise UserError(f"betas must be two numbers in [0, 1), got {betas!r}.",
                        "Give e.g. betas: [0.9, 0.95].")
    if not (isinstance(params["clip_grad_norm"], int | float) and params["clip_grad_norm"] > 0):
        raise UserError("clip_grad_norm must be positive.", "Give e.g. clip_grad_norm: 1.0.")
    if task == "finetune":
        if params["method"] not in ("lora", "full"):
            raise UserError(f"method is {params['method']!r}.", "Use lora or full.")
        if not (_positive_int(params["lora_r"]) and _positive_int(params["lora_alpha"])
                and 0 <= params["lora_dropout"] < 1 and params["lora_targets"]):
            raise UserError("lora_r and lora_alpha must be positive, lora_dropout in [0, 1) "
                            "and lora_targets non-empty.",
                            "Alpaca-LoRA: r 8, alpha 16, dropout 0.05, [q_proj, v_proj].")
    if not _positive_int(params["soak_checkpoint_every"]):
        raise UserError(f"soak_checkpoint_every must be a positive integer, got "
                        f"{params['soak_checkpoint_every']!r}.", "Give e.g. 10 (steps).")
    if not (isinstance(params["soak_hang_s"], int | float) and params["soak_hang_s"] > 0):
        raise UserError(f"soak_hang_s must be positive, got {params['soak_hang_s']!r}.",
                        "Give the seconds without a step after which the watchdog kills "
                        "the training process, e.g. 300.")
    if params["soak_max_steps"] is not None and not _positive_int(params["soak_max_steps"]):
        raise UserError(f"soak_max_steps must be a positive integer or null, got "
                        f"{params['soak_max_steps']!r}.", "Give e.g. 100, or null (soak_s only).")
    for key in ("data_path", "tokenizer", "weights"):
        if params[key] is not None and not Path(params[key]).expanduser().exists():
            raise UserError(f"{key} {params[key]!r} does not exist.",
                            f"Point {key} at a local path; nothing is ever downloaded.")
    if params["weights"] is not None and not Path(params["weights"]).is_dir():
        raise UserError(f"weights {params['weights']!r} is not a directory.",
                        "Give a transformers model directory (config.json + safetensors).")


def choose_train_precision(requested: str, supported: list[str]) -> tuple[str, str | None]:
    """The requested precision where the device has it, else the first it has of the
    inference fallbacks (bf16 -> fp16) and finally fp32, with the reason."""
    if requested in supported:
        return requested, None
    for p in (*FALLBACKS.get(requested, ()), "fp32"):
        if p in supported:
            return p, f"the device does not support {requested}: fell back to {p}"
    raise Unsupported(f"the device supports none of {requested}, fp32")


def iteration_stats(latencies: list[float]) -> dict[str, float | None]:
    """Mean, p50, p99 (nearest rank) and coefficient of variation of step times."""
    from bench.stats import percentile

    mean = math.fsum(latencies) / len(latencies)
    cv = statistics.stdev(latencies) / mean if len(latencies) > 1 and mean > 0 else None
    return {"mean": mean, "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "cv": cv}


class TrainWorkload(Workload):
    group = "llm"
    modes = ("train",)
    item_unit = "tokens"
    default_precision = "bf16"
    task: ClassVar[str]
    worker_module: ClassVar[str] = WORKER
    soak_worker_module: ClassVar[str] = SOAK_WORKER
    distributed = True

    @classmethod
    def places_on_every_node(cls, params: Params) -> bool:
        # The entry says how many nodes it trains on; one node's ranks start there alone.
        return int(params.get("nnodes", 1)) > 1

    @classmethod
    def validate_params(cls, params: Params) -> None:
        validate_train_params(params, cls.task)

    @classmethod
    def validate_rules(cls, rules: RunRules) -> None:
        if rules.warmup_iters > MAX_WARMUP_ITERS:
            raise UserError(f"warmup_iters is {rules.warmup_iters}; the training protocol "
                            f"allows fewer than 50 warm-up iterations.",
                            f"Set rules.warmup_iters to at most {MAX_WARMUP_ITERS}.")
        if rules.soak_s > 0 and rules.timeout_s <= rules.soak_s:
            raise UserError(f"timeout_s ({rules.timeout_s:g}) must exceed soak_s "
                            f"({rules.soak_s:g}): the harness would stop the soak.",
                            f"Set rules.timeout_s to e.g. {rules.soak_s + 600:g}.")
        if rules.soak_s > 0 and rules.repeats != 1:
            raise UserError(f"a soak runs once; repeats is {rules.repeats}.",
                            "Set rules.repeats: 1 for a soak entry.")

    # -- setup ---------------------------------------------------------------------------
    def setup(self) -> None:
        from bench.llm.trainer import (
            RankEnv,
            TrainSession,
            TrainSpec,
            fsdp_fully_shard,
            meta_shape,
        )

        p, backend = self.params, self.ctx.backend
        validate_train_params(p, self.task)
        if self.ctx.precision not in PRECISIONS:
            raise Unsupported(f"precision {self.ctx.precision} is not implemented for training "
                              f"(use one of {', '.join(PRECISIONS)})")
        supported = [q for q in PRECISIONS if backend.supports_precision(q)]
        self.precision_used, self.precision_reason = choose_train_precision(
            self.ctx.precision, supported)
        self.extra["tf32"] = backend.set_tf32(self.precision_used == "tf32")
        placement = self.ctx.placement
        self.nproc = ((placement.nproc_per_node or backend.device_count())
                      if p["nproc"] == "auto" else int(p["nproc"]))
        self.nnodes = int(p["nnodes"])
        if self.nnodes != placement.nnodes:
            raise Unsupported(
                f"this entry trains on {self.nnodes} node(s) but was placed on "
                f"{placement.nnodes}: run it with invoke bench --slurm --nodes {self.nnodes} "
                f"(docs/cluster.md), or set nnodes: {placement.nnodes}")
        if self.nnodes > 1 and p["checkpoint"] and not p["checkpoint_dir"]:
            raise Unsupported("a multi-node checkpoint needs checkpoint_dir on a file system "
                              "every node shares: set it, or checkpoint: false")
        self.world = self.nproc * self.nnodes
        if backend.vendor != "cpu" and self.nproc > backend.device_count():
            raise Unsupported(f"nproc={self.nproc} ranks but only {backend.device_count()} "
                              f"{backend.vendor} device(s) here: one rank per device")
        if backend.vendor != "cpu":
            self.devices_used = list(range(self.nproc))  # telemetry samples each of them
        if p["global_batch"] % self.world:
            raise Unsupported(f"global batch {p['global_batch']} does not divide over "
                              f"{self.world} ranks")
        method = p.get("method", "full")
        base = TrainSpec(
            task=self.task, model=p["model"], architecture=p["architecture"],
            seq_len=p["seq_len"], global_batch=p["global_batch"], precision=self.precision_used,
            strategy="none", activation_checkpointing=False, method=method,
            lora_r=p.get("lora_r", 8), lora_alpha=p.get("lora_alpha", 16),
            lora_dropout=p.get("lora_dropout", 0.05),
            lora_targets=tuple(p.get("lora_targets", ("q_proj", "v_proj"))),
            lr=float(p["lr"]), weight_decay=float(p["weight_decay"]),
            betas=(float(p["betas"][0]), float(p["betas"][1])), eps=float(p["eps"]),
            warmup_steps=p["warmup_steps"], decay_steps=p["decay_steps"],
            min_lr_ratio=float(p["min_lr_ratio"]), clip_grad_norm=float(p["clip_grad_norm"]),
            data_path=p["data_path"], tokenizer=p["tokenizer"], weights=p["weights"],
            loss_steps=p["loss_steps"], seed=self.ctx.seed, vendor=backend.vendor,
            dist_backend=backend.dist_backend, rules=self.ctx.rules.to_dict(),
            timeout_s=process_group_timeout_s(self.ctx.rules.timeout_s))
        self.shape = meta_shape(base)
        strategy, ac, estimate, why = self._plan()
        if strategy == "fsdp" and fsdp_fully_shard() is None:
            import torch

            raise Unsupported(f"FSDP (fully_shard) needs torch >= 2.4; this build is "
                              f"{torch.__version__}: use strategy ddp")
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-train-",
                                             dir=p["checkpoint_dir"] or None))
        self.spec = TrainSpec(**{**base.as_dict(), "strategy": strategy,
                                 "activation_checkpointing": ac,
                                 "checkpoint_dir": self._checkpoint_dir()
                                 if p["checkpoint"] else None})
        self.peaks = device_peaks(backend)
        self._record_info(strategy, ac, estimate, why)
        self.session = None
        self.soak = self.ctx.rules.soak_s > 0
        if self.soak:
            if self.world != 1:
                raise Unsupported(f"the stability soak trains one device; this entry has "
                                  f"{self.world} ranks (set nproc: 1)")
            self.extra["soak"] = {
                "soak_s": self.ctx.rules.soak_s,
                "checkpoint_every": p["soak_checkpoint_every"], "hang_s": p["soak_hang_s"],
                "max_steps": p["soak_max_steps"], "worker": self.soak_worker_module}
        elif self.world == 1:
            try:
                self.session = TrainSession(self.spec, backend, RankEnv(), self.ctx.progress)
                self.session.setup()
            except BaseException:
                shutil.rmtree(self.workdir, ignore_errors=True)
                raise
            self.extra["data"] = self.session.data_info
        self.probe_session = self.session  # kept after the run for the model-function check

    def _plan(self) -> tuple[str, bool, tf.TrainMemory, str]:
        """Strategy and activation checkpointing: as asked, or (auto) DDP when the whole
        training state and activations fit a device, else FSDP with checkpointing."""
        p, s = self.params, self.shape
        budget = p["memory_budget_bytes"] or self.ctx.backend.memory_stats().total_bytes or 0
        compute = 4 if self.precision_used in ("fp32", "tf32") else 2
        frozen = compute if p.get("method") == "lora" else 4

        def estimate(strategy: str, ac: bool) -> tf.TrainMemory:
            return tf.training_memory(
                s.parameters, s.trainable, self.world, strategy, s.layers, s.hidden, s.vocab,
                p["global_batch"] // self.world, p["seq_len"], compute, ac,
                frozen_bytes_per_param=frozen)

        if self.world == 1:
            if p["strategy"] not in ("auto", "none"):
                why = f"strategy {p['strategy']} needs several ranks: one device, none used"
            else:
                why = "one device"
            ac = bool(p["activation_checkpointing"])
            return "none", ac, estimate("none", ac), why
        if p["strategy"] != "auto":
            strategy = p["strategy"]
            if strategy == "none":
                raise UserError(f"strategy none on {self.world} ranks.",
                                "Use ddp or fsdp (or auto) with several ranks.")
            ac = p["activation_checkpointing"] if p["activation_checkpointing"] is not None \
                else strategy == "fsdp"
            return strategy, ac, estimate(strategy, ac), "as the entry asks"
        ddp = estimate("ddp", bool(p["activation_checkpointing"]))
        if not budget or tf.fits(ddp, budget):
            return "ddp", bool(p["activation_checkpointing"]), ddp, (
                f"the whole training state fits a device ({ddp.describe()} of "
                f"{budget / 2**30:.1f} GiB)")
        ac = True if p["activation_checkpointing"] is None else p["activation_checkpointing"]
        return "fsdp", ac, estimate("fsdp", ac), (
            f"DDP would need {ddp.describe()} per device, more than "
            f"{tf.USABLE_FRACTION:.0%} of {budget / 2**30:.1f} GiB: sharded")

    def _checkpoint_dir(self) -> str:
        """One node: beside the job's files. Several: one directory every node names alike
        (the job's rendezvous id under the shared ``checkpoint_dir``), since each node's
        ranks write their shards of one checkpoint."""
        placement = self.ctx.placement
        if not placement.multi_node:
            return str(self.workdir / "checkpoint")
        return str(Path(self.params["checkpoint_dir"])
                   / f"bench-train-{placement.rdzv_id or 'bench'}-checkpoint")

    def _record_info(self, strategy: str, ac: bool, estimate: tf.TrainMemory,
                     why: str) -> None:
        from bench.llm.train_models import TRAIN_MODELS

        s, spec, tm = self.shape, self.spec, TRAIN_MODELS[self.params["model"]]
        self.flop_per_token = tf.train_flop_per_token(
            s.matmul_params, s.layers, s.attention_width, spec.seq_len, s.frozen_matmul_params)
        self.extra.update({
            "model": tm.name, "model_class": tm.arch.model_class,
            "architecture": spec.architecture, "architecture_source": tm.arch.source,
            "parameters": s.parameters, "reference_parameters": tm.arch.reference_parameters,
            "trainable_parameters": s.trainable, "matmul_parameters": s.matmul_params,
            "objective": "alpaca instruction tuning" if self.task == "finetune"
            else tm.objective,
            "method": spec.method,
            "world_size": self.world, "nproc": self.nproc, "nnodes": self.nnodes,
            "devices": self.world, "strategy": strategy, "strategy_reason": why,
            "activation_checkpointing": ac,
            "launcher": "in-process (one device)" if self.world == 1 else launch.LAUNCHER,
            "dist_backend": self.ctx.backend.dist_backend if self.world > 1 else None,
            "tokens_per_sample": spec.seq_len, "global_batch": spec.global_batch,
            "micro_batch": spec.global_batch // self.world,
            "mixed_precision": ("autocast " + self.precision_used + (
                " with loss scaling" if self.precision_used == "fp16" else "")
                + ", fp32 master weights") if self.precision_used in ("bf16", "fp16")
            else self.precision_used,
            "optimizer": {"name": "AdamW", "lr": spec.lr, "betas": list(spec.betas),
                          "eps": spec.eps, "weight_decay": spec.weight_decay,
                          "clip_grad_norm": spec.clip_grad_norm},
            "lr_schedule": {"kind": "linear warm-up, cosine decay, floor",
                            "warmup_steps": spec.warmup_steps, "decay_steps": spec.decay_steps,
                            "min_ratio": spec.min_lr_ratio},
            "initialisation": "deterministic per parameter on the host (bench.llm."
                              "train_models)" if not spec.weights
            else f"local weights {spec.weights}",
            "dropout": "off" + (f" (LoRA dropout {spec.lora_dropout})"
                                if spec.method == "lora" else ""),
            "flop_per_token_formula": "6 x trained + 4 x frozen matrix weights + 12 x layers "
                                      "x attention width x seq_len",
            "memory_estimate_bytes": {"total": estimate.total_bytes,
                                      "states": estimate.states_bytes,
                                      "activations": estimate.activation_bytes,
                                      "logits": estimate.logits_bytes},
            "loss_curve": {"series": "repeats[].series.loss and .grad_norm",
                           "first_step": 1, "steps_kept": spec.loss_steps,
                           "warmup_included": True, "unit": "nat per predicted token"},
            "reference": self.peaks.info(),
        })
        if spec.method == "lora":
            self.extra["lora"] = {"r": spec.lora_r, "alpha": spec.lora_alpha,
                                  "dropout": spec.lora_dropout,
                                  "targets": list(spec.lora_targets), "library": "peft"}
        if tm.arch.note:
            self.extra["parameters_note"] = tm.arch.note

    # -- measurement ---------------------------------------------------------------------
    def measure(self) -> RepeatResult:
        try:
            record = self._run()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.record = record
        self.series = {"loss": list(record["loss"]), "grad_norm": list(record["grad_norm"])}
        w = record["window"]
        window = {**w, "duration_s": w["end_mono"] - w["start_mono"]}
        loop = {"window": window, "iterations": record["iterations"], "items": record["items"],
                "latencies_s": record["latencies_s"],
                "throughput_items_per_s": record["items"] / window["duration_s"]}
        self.extra.update(steps=record["steps"], threads_per_rank=record["threads"],
                          peak_mem_bytes_per_rank=record["peak_mem_bytes"])
        if record.get("nodes"):
            self.extra["rank_nodes"] = record["nodes"]  # the result's placement names them
        self.extra.setdefault("data", record["data"])
        loop["metrics"] = self.metrics(loop)
        return loop

    def _run(self) -> RepeatResult:
        if self.soak:
            return self._soak()
        if self.session is not None:
            session, self.session = self.session, None
            try:
                return session.run(self.ctx.rules).as_dict()
            except BaseException:
                keep = self.spec.loss_steps  # the curve up to the failure stays in the result
                self.series = {"loss": session.local_losses[:keep],
                               "grad_norm": session.grad_norms[:keep]}
                raise
        out = self.workdir / "ranks"
        out.mkdir()
        spec_path = self.workdir / "spec.json"
        spec_path.write_text(json.dumps(self.spec.as_dict()), encoding="utf-8")
        args = [str(spec_path), str(out)]
        cmd = launch.torchrun_command(self.ctx.placement, self.nproc, self.worker_module, args)
        self.extra["command"] = ["python", *cmd[1:-2], "SPEC.json", "OUT_DIR"]
        result = launch.launch_ranks(self.ctx.placement, self.nproc, self.worker_module, args,
                                     self.ctx.progress, store_timeout_s=self.ctx.rules.timeout_s)
        record_path = out / "record.json"
        if result.ok and record_path.exists():
            return json.loads(record_path.read_text(encoding="utf-8"))
        raise job_failure(result, out)

    def _soak(self) -> RepeatResult:
        """The stability soak (bench.llm.soak): a supervised training process, restarted
        from its last checkpoint after every crash, for soak_s seconds."""
        import torch

        from bench.llm import soak

        p, rules = self.params, self.ctx.rules
        spec_path = self.workdir / "spec.json"
        spec_path.write_text(json.dumps(self.spec.as_dict()), encoding="utf-8")
        settings = soak.SoakSettings(soak_s=rules.soak_s,
                                     checkpoint_every=p["soak_checkpoint_every"],
                                     hang_s=float(p["soak_hang_s"]),
                                     max_steps=p["soak_max_steps"])
        rec = soak.run_soak(spec_path, self.workdir / "soak", settings,
                            self.soak_worker_module, self.ctx.progress)
        self.soak_record = rec
        keep = self.spec.loss_steps
        losses = rec.loss_curve()
        self.extra["soak"].update({
            "window_s": rec.window_s, "starts": rec.starts, "steps_completed": rec.last_step,
            "checkpoints": rec.checkpoints,
            "checkpoint_save_mean_s": (sum(rec.checkpoint_save_s) / len(rec.checkpoint_save_s)
                                       if rec.checkpoint_save_s else None),
            "crashes": [c.as_dict() for c in rec.crashes],
            "crash_classes": {k: sum(c.kind == k for c in rec.crashes)
                              for k in sorted({c.kind for c in rec.crashes})},
            "steps": [list(x) for x in soak.thin(rec.steps)],
            "ended": "max_steps" if p["soak_max_steps"] and rec.last_step
                     >= p["soak_max_steps"] else "soak_s"})
        tokens = self.spec.tokens_per_step
        return {
            "loss": losses[:keep], "grad_norm": rec.grad_curve()[:keep],
            "final_loss": losses[-1],
            "window": {"start_mono": rec.start_mono, "end_mono": rec.end_mono,
                       "start_wall": rec.start_wall, "end_wall": rec.end_wall},
            "iterations": len(rec.step_s), "items": len(rec.step_s) * tokens,
            "latencies_s": rec.step_s, "steps": rec.last_step, "threads": torch.get_num_threads(),
            "peak_mem_bytes": [None], "checkpoint": None, "data": rec.data,
        }

    def _soak_metrics(self) -> Metrics:
        rec = self.soak_record
        rts = rec.recovery_times
        return {
            "soak_duration_s": metric(rec.window_s, "s"),
            "soak_crashes": metric(len(rec.crashes), "count"),
            "soak_recovery_mean_s": metric(sum(rts) / len(rts) if rts else None, "s",
                                           "no crash was recovered from" if rec.crashes
                                           else "no crash", n=len(rts)),
            "soak_failure_free_s": metric(rec.failure_free_s, "s",
                                          definition="longest stretch without a crash or "
                                                     "recovery in the soak's window"),
            "soak_steps": metric(rec.last_step, "steps"),
        }

    def metrics(self, loop: RepeatResult) -> Metrics:
        rec, spec = self.record, self.spec
        it = iteration_stats(loop["latencies_s"])
        tgs = tf.tgs(spec.seq_len, spec.global_batch, it["mean"], self.world)
        flop_per_s = self.flop_per_token * tgs * self.world
        peak, why = self.peaks.peak_flops(self.precision_used)
        out = {
            "tgs_tokens_per_s": metric(tgs, "tokens/s", per="device",
                                       definition="tokens per sample x global batch / "
                                                  "(mean iteration time x devices)"),
            "iteration_time_mean_s": metric(it["mean"], "s"),
            "iteration_time_p50_s": metric(it["p50"], "s"),
            "iteration_time_p99_s": metric(it["p99"], "s"),
            "iteration_time_cv": metric(it["cv"], "1", "fewer than two timed iterations"),
            "flop_per_item": metric(self.flop_per_token, "FLOP/tokens",
                                    method="6N + attention term (workload's own count)"),
            "flop_per_s": metric(flop_per_s, "FLOP/s", devices=self.world,
                                 definition="flop_per_item x TGS x devices"),
            "mfu_pct": metric(tf.mfu_pct(self.flop_per_token, tgs, peak) if peak else None, "%",
                              why, definition=f"flop_per_item x TGS / {self.precision_used} "
                                              "peak of one device"),
            "loss_final": metric(rec["final_loss"], "nat", step=rec["steps"]),
            "loss_first": metric(rec["loss"][0] if rec["loss"] else None, "nat", step=1),
            "peak_mem_bytes": metric(max((v for v in rec["peak_mem_bytes"] if v is not None),
                                         default=None), "B", "no rank reported memory",
                                     per_rank=rec["peak_mem_bytes"]),
        }
        if self.soak:
            out.update(self._soak_metrics())
        ck = rec.get("checkpoint")
        if ck:
            out.update({
                "checkpoint_save_s": metric(ck["save_s"], "s"),
                "checkpoint_save_blocking_s": metric(ck["save_blocking_s"], "s"),
                "checkpoint_load_s": metric(ck["load_s"], "s"),
                "checkpoint_bytes": metric(ck["bytes"], "B"),
                "checkpoint_resume_loss_diff": metric(
                    abs(ck["resumed_loss"] - ck["next_loss"]), "nat",
                    definition="|loss of the step after loading - loss of that step before "
                               "saving|"),
            })
        return out

    def function_probe(self) -> ModelProbe | None:
        """One training step's loss and gradients on the first rows of the first batch,
        against the CPU reference (``bench.function.model``); the loss is the batch mean the
        model's own objective gives. None with several ranks: their models live in the
        launcher's processes, not here."""
        import torch

        session = getattr(self, "probe_session", None)
        if session is None:
            return None
        arrays = session.source.batch(0, session.rows[:CHECK_BATCH])
        batch = {k: torch.from_numpy(v).to(session.device) for k, v in arrays.items()}
        return ModelProbe(session.model, batch, loss=partial(probe_loss, session.source.kind),
                          autocast=session._autocast,
                          notes=[f"the first {len(arrays['input_ids'])} rows of the first "
                                 f"batch ({session.source.kind} objective, mean loss)"])

    def memory_stats(self) -> Info | None:
        rec = getattr(self, "record", None)
        if rec is None or self.world == 1:
            return None
        peaks = [v for v in rec["peak_mem_bytes"] if v is not None]
        return {"peak_allocated_bytes": max(peaks) if peaks else None,
                "per_rank_peak_allocated_bytes": rec["peak_mem_bytes"],
                "note": "the highest peak over the ranks (each rank's own process)"}


def probe_loss(kind: str, module: Any, batch: dict[str, Any]) -> Any:
    """The mean training loss of ``batch`` (the objective of ``TrainSession``, without its
    global-count scaling): masked-LM plus next-sentence for BERT, next-token otherwise.
    Computed here rather than by the model: transformers' own loss casts float64 logits to
    float32, which would blur the float64 reference."""
    import torch
    import torch.nn.functional as F

    from bench.llm.train_data import IGNORE_INDEX

    def wide(t: torch.Tensor) -> torch.Tensor:  # half-precision logits to fp32, fp64 kept
        return t.to(torch.promote_types(t.dtype, torch.float32))

    if kind == "bert":
        out = module(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                     attention_mask=batch["attention_mask"])
        vocab = out.prediction_logits.shape[-1]
        mlm = F.cross_entropy(wide(out.prediction_logits).view(-1, vocab),
                              batch["labels"].view(-1), ignore_index=IGNORE_INDEX)
        return mlm + F.cross_entropy(wide(out.seq_relationship_logits),
                                     batch["next_sentence_label"])
    extra = {"attention_mask": batch["attention_mask"]} if "attention_mask" in batch else {}
    logits = wide(module(input_ids=batch["input_ids"], **extra).logits)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                           batch["labels"][:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)


def job_failure(result: launch.LaunchResult, out: Path) -> Exception:
    """The exception that says which rank failed and why (an out-of-memory error when the
    failing rank ran out of device memory, so the entry's status is ``oom``)."""
    import torch

    errors = {}
    for path in sorted(out.glob("rank*.error.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        errors[doc["rank"]] = doc
    first = result.failure
    doc = errors.get(first.rank) if first and first.rank in errors else (
        errors[min(errors)] if errors else None)
    if doc is not None:
        where = f" at step {doc['step']}" if doc.get("step") else ""
        message = f"rank {doc['rank']} failed{where}: {doc['type']}: {doc['message']}"
        if first is not None and first.rank != doc["rank"]:
            message = f"{first.describe()}; {message}"
        if doc.get("oom"):
            return torch.OutOfMemoryError(message)
        return RuntimeError(message)
    if first is not None:
        return RuntimeError(f"{first.describe()} (torchrun exit code {result.returncode}): "
                            + " | ".join(result.tail[-6:]))
    return RuntimeError(f"the training job exited with code {result.returncode} without a "
                        "record: " + " | ".join(result.tail[-8:]))


@register
class PretrainWorkload(TrainWorkload):
    name = "llm-pretrain"
    description = ("LLM pretraining steps (Llama-3-8B, InternLM-7B-class, GPT-3 XL, "
                   "BERT-base): TGS, MFU, loss curve, checkpoint; DDP/FSDP over torchrun")
    task = "pretrain"
    configs = PRETRAIN_CONFIGS


@register
class FinetuneWorkload(TrainWorkload):
    name = "llm-finetune"
    description = ("instruction fine-tuning of a Llama-architecture model on Alpaca records, "
                   "LoRA (peft) or full: TGS, MFU, loss curve, checkpoint")
    task = "finetune"
    configs = FINETUNE_CONFIGS
