"""One rank of a training job: the model, the data, the optimiser step, the timed loop and the
checkpoint round trip. The same code runs in the workload's own process (one device, no
process group) and in every rank that torchrun starts (``bench.llm.train_worker``).

A step: learning rate from the schedule (a function of the step), this rank's rows of the
global batch (``bench.llm.train_data``), forward under autocast (bf16/fp16; fp32 master
weights), the loss normalised by the **global** number of predicted tokens (so a 2-rank run
averages exactly what a 1-rank run does, padding included), backward (with a loss scaler for
fp16), gradient clipping (whose norm is recorded), the optimiser step. The loss is read back
every step: a NaN or infinite loss stops the job with the step and rank.

Parallelism (``strategy``): ``none`` (one device), ``ddp`` (DistributedDataParallel: gradients
averaged, every rank holds the whole model), ``fsdp`` (``fully_shard``, FSDP2: each
transformer block and the root sharded over the ranks; usually with activation
checkpointing). The checkpoint round trip saves model and optimiser with
``torch.distributed.checkpoint`` (each rank its shards), times the blocking part and the whole
save, trains one step, loads the checkpoint back, trains the same step again and requires the
same loss: a restored state that does not continue the run is an error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.distributed import this_node
from bench.documents import Info, ProgressEvent
from bench.errors import UserError
from bench.llm import train_data as td
from bench.llm.architectures import dtype_kwargs
from bench.llm.train_formulas import LrSchedule
from bench.llm.train_models import (
    TRAIN_MODELS,
    ModelShape,
    TrainModel,
    initialise,
    model_shape,
    recompute_buffers,
)
from bench.rules import RunRules
from bench.timing import timed_loop

SYNTHETIC_CHAINS = 256
ALPACA_SYNTHETIC_RECORDS = 512
# The resumed step's loss may differ from the uninterrupted one by this much (relative) where
# kernels are not bit-reproducible (atomics on GPUs); on the CPU it is exactly equal.
RESUME_TOLERANCE = 1e-3
# Dropout off (the published configurations' own dropout rates would add device-RNG noise to
# the loss curves that two devices are compared by); LoRA's dropout stays (Alpaca-LoRA's).
DROPOUT_KEYS = ("resid_pdrop", "embd_pdrop", "attn_pdrop", "hidden_dropout_prob",
                "attention_probs_dropout_prob", "attention_dropout", "summary_first_dropout")


class NonFiniteLoss(RuntimeError):
    def __init__(self, step: int, value: float, rank: int) -> None:
        super().__init__(f"loss became {value} at step {step} on rank {rank}")
        self.step, self.value, self.rank = step, value, rank


class ResumeMismatch(RuntimeError):
    pass


@dataclass(frozen=True)
class TrainSpec:
    """Everything a rank needs, as plain data (it crosses the torchrun boundary as JSON)."""

    task: str  # pretrain | finetune
    model: str
    architecture: str  # published | reduced
    seq_len: int
    global_batch: int
    precision: str  # the precision used (fp32, tf32, bf16, fp16)
    strategy: str  # none | ddp | fsdp
    activation_checkpointing: bool
    method: str = "full"  # full | lora
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    lr: float = 3e-4
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    warmup_steps: int = 10
    decay_steps: int = 1000
    min_lr_ratio: float = 0.1
    clip_grad_norm: float = 1.0
    data_path: str | None = None
    tokenizer: str | None = None
    weights: str | None = None
    loss_steps: int = 100
    checkpoint_dir: str | None = None  # None: no checkpoint round trip
    seed: int = 0
    vendor: str = "cpu"
    dist_backend: str = "gloo"
    rules: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 200.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> TrainSpec:
        doc = dict(doc)
        doc["lora_targets"] = tuple(doc.get("lora_targets", ()))
        doc["betas"] = tuple(doc.get("betas", (0.9, 0.95)))
        return cls(**doc)

    @property
    def tokens_per_step(self) -> int:
        return self.seq_len * self.global_batch


@dataclass(frozen=True)
class RankEnv:
    """Where this rank sits in the job (one rank, no process group, by default)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


@dataclass
class CheckpointTiming:
    save_s: float
    save_blocking_s: float
    load_s: float
    bytes: int
    next_loss: float
    resumed_loss: float
    dir: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RankRecord:
    """What a job measured, as global rank 0 writes it (every rank's view combined)."""

    world: int
    window: dict[str, float]
    iterations: int
    items: int
    latencies_s: list[float]
    warmup_iters: int
    loss: list[float]  # global loss of each step from step 1 (warm-up included)
    grad_norm: list[float]
    final_loss: float
    steps: int
    peak_mem_bytes: list[int | None]  # per rank
    checkpoint: dict[str, Any] | None
    data: dict[str, Any]
    threads: int
    nodes: list[str] | None = None  # the node each rank ran on, by global rank

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_config(spec: TrainSpec, tm: TrainModel) -> Any:
    """The model configuration: the architecture's, or the one in ``weights``; dropout off."""
    if spec.weights:
        from transformers import AutoConfig

        from bench.llm.prompts import offline

        offline()
        try:
            config = AutoConfig.from_pretrained(spec.weights, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise UserError(f"weights {spec.weights}: no readable config.json ({exc}).",
                            "Point `weights` at a transformers model directory.") from exc
        if config.model_type != tm.arch.model_type:
            raise UserError(f"weights {spec.weights} hold a {config.model_type!r} model; "
                            f"model {tm.name} needs {tm.arch.model_type!r} "
                            f"({tm.arch.model_class}).",
                            "Point `weights` at the matching model's directory.")
    else:
        config = tm.config(spec.architecture)
    for key in DROPOUT_KEYS:
        if hasattr(config, key):
            setattr(config, key, 0.0)
    config.use_cache = False
    return config


def build_model(spec: TrainSpec, tm: TrainModel, config: Any) -> Any:
    """The model on the meta device, with LoRA adapters for ``method: lora``."""
    model = tm.build_meta(config)
    if spec.method == "lora":
        import torch
        from peft import LoraConfig, get_peft_model

        with torch.device("meta"):
            model = get_peft_model(model, LoraConfig(
                r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
                target_modules=list(spec.lora_targets), bias="none", task_type="CAUSAL_LM"))
    return model


def meta_shape(spec: TrainSpec) -> ModelShape:
    """Counts of the model as it will train (LoRA included), without building it."""
    tm = TRAIN_MODELS[spec.model]
    config = resolve_config(spec, tm)
    return model_shape(build_model(spec, tm, config), config)


def fsdp_fully_shard() -> Any:
    """``fully_shard`` (FSDP2), public since torch 2.6 and under ``_composable`` in 2.4-2.5;
    None on older builds (a vendor's torch 2.1-2.3), where only DDP is available."""
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError:
        try:
            from torch.distributed._composable.fsdp import fully_shard
        except ImportError:
            return None
    return fully_shard


class TrainSession:
    """One rank's model, data and optimiser; ``step`` is one optimiser step, ``run`` the
    timed steps under the run rules and the checkpoint round trip."""

    def __init__(self, spec: TrainSpec, backend: Any, env: RankEnv = RankEnv(),
                 progress: Callable[[ProgressEvent], None] | None = None) -> None:
        self.spec, self.backend, self.env = spec, backend, env
        self.progress = progress or (lambda _event: None)
        if spec.global_batch % env.world:
            raise ValueError(f"global batch {spec.global_batch} does not divide over "
                             f"{env.world} ranks")
        self.micro = spec.global_batch // env.world
        self.rows = np.arange(env.rank * self.micro, (env.rank + 1) * self.micro)
        self.step_no = 0
        self.local_losses: list[float] = []
        self.grad_norms: list[float] = []

    # -- setup -----------------------------------------------------------------------------
    def setup(self) -> None:
        import torch

        spec, env = self.spec, self.env
        torch.manual_seed(spec.seed)
        self.device = self.backend.device(env.local_rank)
        self.tm = TRAIN_MODELS[spec.model]
        self.config = resolve_config(spec, self.tm)
        model = build_model(spec, self.tm, self.config)
        self.shape = model_shape(model, self.config)
        hf = self._hf_model(model)
        if spec.activation_checkpointing:
            hf.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False})
        if spec.strategy == "fsdp":
            fully_shard = fsdp_fully_shard()
            for block in self.tm.blocks(hf):
                fully_shard(block)
            fully_shard(model)
        model.to_empty(device=self.device)
        recompute_buffers(model)
        if spec.weights:
            self._load_weights(model)
            if spec.method == "lora":
                initialise(model, self.config, self.tm, spec.seed, only_trainable=True)
        else:
            initialise(model, self.config, self.tm, spec.seed)
        if spec.method == "lora" and spec.precision in ("bf16", "fp16") \
                and spec.strategy != "fsdp":
            from bench.devices.base import PRECISION_DTYPES

            for p in model.parameters():  # frozen base in the compute dtype, as LoRA runs
                if not p.requires_grad:
                    p.data = p.data.to(PRECISION_DTYPES[spec.precision])
        model.train()
        if spec.strategy == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            ids = None if self.device.type == "cpu" else [env.local_rank]
            model = DistributedDataParallel(model, device_ids=ids)
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=spec.lr, betas=spec.betas,
                                           eps=spec.eps, weight_decay=spec.weight_decay)
        self.schedule = LrSchedule(spec.lr, spec.warmup_steps, spec.decay_steps,
                                   spec.min_lr_ratio)
        from bench.devices.base import grad_scaler

        self.scaler = grad_scaler(self.device.type, spec.precision == "fp16")
        self.source, self.data_info = self._make_source()

    @staticmethod
    def _hf_model(model: Any) -> Any:
        from transformers import PreTrainedModel

        return next(m for m in model.modules() if isinstance(m, PreTrainedModel))

    def _load_weights(self, model: Any) -> None:
        """Weights from a local directory: read once (global rank 0) and sent to every rank's
        shards; names are matched ignoring LoRA's wrapping."""
        import torch
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
        )

        from bench.llm.train_models import _canonical

        full: dict[str, Any] = {}
        if self.env.rank == 0:
            from transformers import AutoModelForCausalLM

            loaded = AutoModelForCausalLM.from_pretrained(
                self.spec.weights, local_files_only=True, **dtype_kwargs(torch.float32))
            by_name = {_canonical(k): k for k in model.state_dict()}
            full = {by_name[k]: v for k, v in loaded.state_dict().items() if k in by_name}
        set_model_state_dict(model, full, options=StateDictOptions(
            full_state_dict=True, broadcast_from_rank0=self.env.distributed, strict=False))

    def _make_source(self) -> tuple[Any, dict[str, Any]]:
        spec, config = self.spec, self.config
        vocab = int(config.vocab_size)
        objective = "alpaca" if spec.task == "finetune" else self.tm.objective
        low = td.FIRST_BERT_ID if objective == "bert" else 0
        tokenizer: Any = (td.LocalTokenizer(spec.tokenizer) if spec.tokenizer
                          else td.HashTokenizer(low, vocab))
        eos = getattr(config, "eos_token_id", None)
        eos = eos[0] if isinstance(eos, list) else eos
        info: Info = {"objective": objective, "tokenizer": tokenizer.name}
        chain = td.MarkovChain(spec.seed, low, vocab)
        if objective == "alpaca":
            if spec.data_path:
                records = []
                for rec in td.load_alpaca(spec.data_path):
                    records.append(tokenizer.encode(td.alpaca_prompt(rec) + rec["output"])
                                   + ([eos] if eos is not None else []))
                info.update(source="alpaca-json", path=spec.data_path, records=len(records))
            else:
                head, _, tail = td.PROMPT_NO_INPUT.partition("{instruction}")
                records = td.synthetic_alpaca_records(
                    chain, tokenizer.encode(head), tokenizer.encode(tail),
                    ALPACA_SYNTHETIC_RECORDS, spec.seq_len, eos)
                info.update(source="synthetic alpaca records (order-2 Markov chain)",
                            records=len(records))
            for rec in records:
                td.check_ids(rec, vocab, f"tokenizer {tokenizer.name}")
            pad = getattr(config, "pad_token_id", None)
            source: Any = td.AlpacaSource(records, spec.seq_len, spec.global_batch,
                                          0 if pad is None else int(pad))
            info["real_token_fraction"] = source.real_token_fraction
            return source, info
        window = spec.seq_len if objective == "causal" else spec.seq_len - 3
        if spec.data_path:
            stream = td.text_stream(td.load_texts(spec.data_path), tokenizer,
                                    eos if objective == "causal" else None)
            td.check_ids(stream, vocab, f"tokenizer {tokenizer.name}")
            if len(stream) < window:
                raise UserError(f"Text data {spec.data_path} has {len(stream)} tokens, fewer "
                                f"than one {window}-token window.", "Give more text.")
            pool = stream[None, :]
            info.update(source="text", path=spec.data_path, tokens=len(stream))
        else:
            pool = chain.pool(SYNTHETIC_CHAINS, window + max(window // 4, 16))
            info.update(source="synthetic (order-2 Markov chain, Zipf successors)",
                        token_range=[low, vocab], chains=SYNTHETIC_CHAINS)
        if objective == "causal":
            return td.CausalSource(pool, spec.seq_len, spec.seed), info
        return td.BertPretrainingSource(pool, spec.seq_len, spec.seed, low, vocab), info

    # -- one step ----------------------------------------------------------------------------
    def _global_count(self, local: int) -> int:
        if not self.env.distributed:
            return local
        import torch
        import torch.distributed as dist

        t = torch.tensor([local], dtype=torch.int64)
        dist.all_reduce(t)
        return int(t.item())

    def _loss(self, batch: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
        """This rank's share of the global mean loss (its sum over the global count)."""
        import torch.nn.functional as F

        if self.source.kind == "bert":
            masked = self._global_count(int((arrays["labels"] != td.IGNORE_INDEX).sum()))
            out = self.model(input_ids=batch["input_ids"],
                             token_type_ids=batch["token_type_ids"],
                             attention_mask=batch["attention_mask"])
            vocab = out.prediction_logits.shape[-1]
            mlm = F.cross_entropy(out.prediction_logits.float().view(-1, vocab),
                                  batch["labels"].view(-1), ignore_index=td.IGNORE_INDEX,
                                  reduction="sum") / max(masked, 1)
            nsp = F.cross_entropy(out.seq_relationship_logits.float(),
                                  batch["next_sentence_label"], reduction="sum")
            return mlm + nsp / self.spec.global_batch
        labels = arrays["labels"]
        if self.source.kind == "causal":
            count = self.spec.global_batch * (self.spec.seq_len - 1)
        else:
            count = self._global_count(int((labels[:, 1:] != td.IGNORE_INDEX).sum()))
        kwargs = {"attention_mask": batch["attention_mask"]} if "attention_mask" in batch \
            else {}
        return self.model(input_ids=batch["input_ids"], labels=batch["labels"],
                          num_items_in_batch=max(count, 1), **kwargs).loss

    def step(self) -> int:
        import torch

        self.step_no += 1
        lr = self.schedule.lr(self.step_no)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        arrays = self.source.batch(self.step_no - 1, self.rows)
        batch = {k: torch.from_numpy(v).to(self.device, non_blocking=True)
                 for k, v in arrays.items()}
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            share = self._loss(batch, arrays)
        # DDP and FSDP average gradients over the ranks; each share is already a part of
        # the global mean, so undo the averaging.
        self.scaler.scale(share * self.env.world).backward()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.spec.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        value = float(share.detach().float().item())
        if not math.isfinite(value):
            raise NonFiniteLoss(self.step_no, value, self.env.rank)
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        self.local_losses.append(value)
        self.grad_norms.append(float(norm.float().item()))
        return self.spec.tokens_per_step

    def _autocast(self) -> Any:
        import contextlib

        import torch

        from bench.devices.base import PRECISION_DTYPES

        if self.spec.precision in ("bf16", "fp16"):
            return torch.autocast(self.device.type, dtype=PRECISION_DTYPES[self.spec.precision])
        return contextlib.nullcontext()

    # -- the run -----------------------------------------------------------------------------
    def _agree(self, done: bool) -> bool:
        import torch
        import torch.distributed as dist

        t = torch.tensor([0 if done else 1], dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item()) == 0

    def _sync(self) -> None:
        if self.device.type != "cpu":
            self.backend.synchronize(self.env.local_rank)

    def _reduce(self, values: list[float], op: str = "sum") -> list[float]:
        if not self.env.distributed or not values:
            return list(values)
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return [float(v) for v in t.tolist()]

    def _gather(self, value: Any) -> list[Any]:
        if not self.env.distributed:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.env.world
        dist.all_gather_object(out, value)
        return out

    def run(self, rules: RunRules) -> RankRecord:
        """Warm-up and timed steps under the run rules, then the checkpoint round trip."""
        import torch

        report = self.progress if self.env.rank == 0 else None
        loop = timed_loop(self.step, self._sync, rules, report,
                          agree=self._agree if self.env.distributed else None)
        peak = self.backend.memory_stats(self.env.local_rank).peak_allocated_bytes
        peaks = self._gather(peak)
        nodes = self._gather(this_node())
        latencies = self._reduce(loop.latencies_s, "max")
        steps = self.step_no
        checkpoint = None
        if self.spec.checkpoint_dir:
            if self.env.rank == 0:
                self.progress({"phase": "point", "message": "checkpoint save / load"})
            checkpoint = self.checkpoint_round_trip(Path(self.spec.checkpoint_dir)).as_dict()
        losses = self._reduce(self.local_losses[:steps])
        return RankRecord(
            world=self.env.world,
            window={"start_mono": loop.start_mono, "end_mono": loop.end_mono,
                    "start_wall": loop.start_wall, "end_wall": loop.end_wall},
            iterations=loop.iterations, items=loop.items, latencies_s=latencies,
            warmup_iters=rules.warmup_iters, loss=losses[:self.spec.loss_steps],
            grad_norm=self.grad_norms[:self.spec.loss_steps], final_loss=losses[-1],
            steps=steps, peak_mem_bytes=peaks, checkpoint=checkpoint,
            data=self.data_info, threads=torch.get_num_threads(), nodes=nodes)

    # -- checkpoint ----------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_sd, optim_sd = get_state_dict(self.model, self.optimizer)
        return {"model": model_sd, "optim": optim_sd}

    def _load_state(self, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        # Not strict: a parameter tied under two names (BERT's decoder bias) has its optimiser
        # state under one of them; the resumed-loss check proves the state complete.
        set_state_dict(self.model, self.optimizer, model_state_dict=state["model"],
                       optim_state_dict=state["optim"],
                       options=StateDictOptions(strict=False))

    def _barrier(self) -> None:
        if self.env.distributed:
            import torch.distributed as dist

            dist.barrier()

    def _rng_state(self) -> tuple[Any, Any]:
        import torch

        mod = getattr(torch, self.device.type, None) if self.device.type != "cpu" else None
        dev = mod.get_rng_state(self.env.local_rank) if mod is not None and hasattr(
            mod, "get_rng_state") else None
        return torch.get_rng_state(), dev

    def _set_rng_state(self, state: tuple[Any, Any]) -> None:
        import torch

        torch.set_rng_state(state[0])
        if state[1] is not None:
            getattr(torch, self.device.type).set_rng_state(state[1], self.env.local_rank)

    def checkpoint_round_trip(self, directory: Path) -> CheckpointTiming:
        """Save (async: the blocking part is until training may go on, the whole until the
        files are written and synced), train one step, load, train that step again."""
        import torch.distributed.checkpoint as dcp

        directory.mkdir(parents=True, exist_ok=True)
        state = self._state()
        self._sync()
        self._barrier()
        t0 = time.monotonic()
        future = dcp.async_save(state, checkpoint_id=str(directory))
        t1 = time.monotonic()
        future.result()
        self._barrier()
        t2 = time.monotonic()
        blocking, total = self._reduce([t1 - t0, t2 - t0], "max")
        written = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())

        at, rng = self.step_no, self._rng_state()
        self.step()
        next_loss = self._reduce([self.local_losses[-1]])[0]
        self._barrier()
        t3 = time.monotonic()
        state = self._state()
        dcp.load(state, checkpoint_id=str(directory))
        self._load_state(state)
        self._sync()
        self._barrier()
        (load,) = self._reduce([time.monotonic() - t3], "max")
        self.step_no = at
        self._set_rng_state(rng)
        self.step()
        resumed = self._reduce([self.local_losses[-1]])[0]
        del self.local_losses[at:], self.grad_norms[at:]
        if abs(resumed - next_loss) > RESUME_TOLERANCE * max(abs(next_loss), 1e-12):
            raise ResumeMismatch(
                f"the checkpoint did not restore the training state: step {at + 1} gave loss "
                f"{next_loss!r} before the save and {resumed!r} after loading it")
        return CheckpointTiming(save_s=total, save_blocking_s=blocking, load_s=load,
                                bytes=written, next_loss=next_loss, resumed_loss=resumed,
                                dir=str(directory))


def init_process_group(spec: TrainSpec, backend: Any, env: RankEnv) -> None:
    """The job's process group: the vendor's collective backend for device tensors, gloo for
    host tensors (the small agreements, and what asynchronous checkpointing needs)."""
    from datetime import timedelta

    import torch.distributed as dist

    if backend.device_type != "cpu":
        backend.module.set_device(env.local_rank)
        name = f"cpu:gloo,{backend.device_type}:{spec.dist_backend}"
    else:
        name = "gloo"
    dist.init_process_group(backend=name, timeout=timedelta(seconds=spec.timeout_s))
