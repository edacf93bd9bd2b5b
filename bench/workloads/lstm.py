"""Character-level LSTM on Tang poems: Embedding(4845, 128) + 3-layer LSTM(128 -> 256) +
Linear(256, 4845), 3,313,261 parameters.

Items are characters in both modes, so the two rates compare:

- train: next-character prediction on windows of ``seq_len`` characters (Adam, lr 1e-3,
  cross-entropy over every position); one step has ``batch_size x seq_len`` items, each one
  predicted character. ``sequences_per_s`` is reported beside it.
- infer: text generation. A batch of ``prompt_len``-character prompts is read in one pass,
  then ``gen_len`` characters are generated one at a time (sampling at ``temperature``, or
  greedy at 0), feeding each back in. One step has ``batch_size x gen_len`` items, the
  generated characters; the prompt is not counted. Its latency is the whole generation.

Loader mode reads Poem-Tang JSON at ``data_path`` (vocabulary built from it), or host-side
random windows.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.data import DeviceBatches, data_mode, input_wait_metrics, synthetic_info
from bench.data.poems import SPECIALS, PoemWindows, SyntheticCharWindows
from bench.documents import Info, Metrics, Params, RepeatResult
from bench.errors import Unsupported
from bench.flops import WorkProbe
from bench.function.model import ModelProbe, batch_slice, greedy_decode
from bench.models.char_lstm import CharLSTM, generate
from bench.quantize import agreement_metrics
from bench.workload import Workload, count_parameters, register
from bench.workloads._common import Trainer, data_root, loader_batches, synthetic_length

PARAMETERS = 3_313_261
VOCAB_SIZE = 4845
SAMPLE_CHARS = 32


@register
class LSTMWorkload(Workload):
    name = "lstm"
    description = "character LSTM (3 x 256) on Tang poems: next-char training, text generation"
    group = "nlp"
    modes = ("train", "infer")
    item_unit = "characters"
    input_attrs = ("inputs", "targets")  # infer reads the prompts (inputs) only
    int8_kind = "dynamic"
    configs = {
        "small": {"batch_size": 4, "seq_len": 32, "prompt_len": 4, "gen_len": 16,
                  "temperature": 1.0, "lr": 1e-3, "data": "synthetic", "data_path": None,
                  "num_workers": 1, "streams": 1},
        # 128 windows of 125 characters (a Tang poem with its markers is <= 125 in the
        # common CharRNN recipes); generation of 4-character openings + 124 characters.
        # ~2 GiB in training (measured): the same batch runs on every device, edge included.
        "full": {"batch_size": 128, "seq_len": 125, "prompt_len": 4, "gen_len": 124,
                 "temperature": 1.0, "lr": 1e-3, "data": "synthetic", "data_path": None,
                 "num_workers": 4, "streams": 1},
    }

    def setup(self) -> None:
        self.check_precision()
        torch.manual_seed(self.ctx.seed)
        p = self.params
        device = self.ctx.device
        self.model = self.build_model().to(device)
        self.extra["parameters"] = count_parameters(self.model)
        if self.precision_used not in ("fp32", "int8"):
            self._probe_reduced_precision()
        self.extra["items"] = ("predicted characters (batch_size x seq_len per step)"
                               if self.ctx.mode == "train" else
                               "generated characters (batch_size x gen_len per step; the "
                               "prompt is not counted)")
        train = self.ctx.mode == "train"
        window = p["seq_len"] if train else p["prompt_len"]
        self.vocab = None
        self.batches: DeviceBatches | None = None
        if data_mode(p, self.name) == "loader":
            if p["data_path"]:
                path = data_root(self, "Poem-Tang JSON")
                ds: Any = PoemWindows(path, window, VOCAB_SIZE)
                self.vocab = ds.vocab
                self.batches = loader_batches(self, ds, source="poem-tang-json",
                                              path=str(path), details=ds.describe())
            else:
                ds = SyntheticCharWindows(synthetic_length(p["batch_size"]), window, VOCAB_SIZE,
                                          self.ctx.seed)
                self.batches = loader_batches(self, ds, source="synthetic (host DataLoader)")
        else:
            gen = torch.Generator(device="cpu").manual_seed(self.ctx.seed)
            chunk = torch.randint(len(SPECIALS), VOCAB_SIZE, (p["batch_size"], window + 1),
                                  generator=gen).to(device)
            self.inputs, self.targets = chunk[:, :-1], chunk[:, 1:]
            self.extra["data"] = synthetic_info({"inputs": list(self.inputs.shape)}).as_dict()
        if train:
            self.model.train()
            optimizer = torch.optim.Adam(self.model.parameters(), lr=p["lr"])
            self.trainer = Trainer(self, self.model, optimizer)
        else:
            self.model.eval()
            self.sampler = torch.Generator(device=device).manual_seed(self.ctx.seed) \
                if device.type in ("cpu", "cuda") else None
            if self.precision_used == "int8":
                # Compared on next-character logits of whole windows (generation samples, so
                # two models' texts part at the first different draw).
                def windows(offset: int) -> tuple[torch.Tensor]:
                    g = torch.Generator(device="cpu").manual_seed(self.ctx.seed + offset)
                    return (torch.randint(len(SPECIALS), VOCAB_SIZE, (p["batch_size"], 32),
                                          generator=g).to(device),)

                self.quantize_int8(windows(1), [], [windows(200 + i) for i in range(4)],
                                   lambda out: [out[0]], (nn.LSTM, nn.Linear))
        self.last_generated: list[int] = []

    @staticmethod
    def build_model() -> CharLSTM:
        return CharLSTM(VOCAB_SIZE, 128, 256, 3)

    @classmethod
    def work_probe(cls, mode: str, params: Params, precision: str,
                   info: Info) -> WorkProbe:
        """Training: one window. Inference: the prompt in one pass, then one character per
        step as ``generate`` does (the sampling itself is no matrix work)."""
        model = cls.build_model().train(mode == "train")
        b = params["batch_size"]
        if mode == "train":
            inputs = torch.zeros(b, params["seq_len"], dtype=torch.long)
            return WorkProbe(lambda: model(inputs)[0], b * params["seq_len"], backward=True,
                             parameters=count_parameters(model))
        prompt = torch.zeros(b, params["prompt_len"], dtype=torch.long)
        step = torch.zeros(b, 1, dtype=torch.long)

        def run() -> None:
            _, state = model(prompt)
            for _ in range(params["gen_len"] - 1):
                _, state = model(step, state)

        return WorkProbe(run, b * params["gen_len"], backward=False,
                         what="prompt pass and gen_len - 1 single-character steps",
                         parameters=count_parameters(model))

    def _probe_reduced_precision(self) -> None:
        """Not every device has reduced-precision LSTM kernels (oneDNN on most CPUs refuses
        fp16): report that as ``unsupported`` at setup, not as an error mid-run."""
        x = torch.zeros(1, 1, dtype=torch.long, device=self.ctx.device)
        train = self.ctx.mode == "train"
        self.model.train(train)
        try:
            with torch.set_grad_enabled(train), self.autocast():
                logits, _ = self.model(x)
            if train:
                logits.float().sum().backward()
                self.model.zero_grad(set_to_none=True)
        except RuntimeError as exc:
            if self.ctx.backend.is_oom(exc):
                raise
            raise Unsupported(f"this device's kernels refuse an LSTM under "
                              f"{self.precision_used} autocast: {exc}") from exc

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.batches is None:
            return self.inputs, self.targets
        inputs, targets = next(self.batches)
        return inputs, targets

    def _loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, _ = self.model(inputs)
        return F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), targets.reshape(-1))

    def step(self) -> int:
        p = self.params
        inputs, targets = self._batch()
        if self.ctx.mode == "train":
            self.trainer.step(lambda: self._loss(inputs, targets))
            return p["batch_size"] * p["seq_len"]
        with torch.inference_mode(), self.autocast():
            out = generate(self.model, inputs, p["gen_len"], p["temperature"], self.sampler)
        self.last_generated = out[0, :SAMPLE_CHARS].tolist()
        return p["batch_size"] * p["gen_len"]

    def function_probe(self) -> ModelProbe:
        inputs, targets = batch_slice(self._batch())
        if self.ctx.mode == "train":
            return ModelProbe(self.model, {"inputs": inputs, "targets": targets},
                              loss=lambda m, x: self._loss(x["inputs"], x["targets"]),
                              autocast=self.autocast)
        return ModelProbe(
            self.model, {"prompt": inputs},
            forward=lambda m, x: {"logits": m(x["prompt"])[0]}, decisions={"logits": -1},
            generate=lambda m, x, n: greedy_decode(lambda ids: m(ids)[0], x["prompt"], n),
            autocast=self.autocast,
            notes=["generation is compared greedily (the benchmark samples at its "
                   "temperature)"])

    def items_per_sample(self) -> int:
        return int(self.params["gen_len"]) if self.ctx.mode == "infer" else 1

    def for_stream(self, index: int) -> Workload:
        """Each stream samples with its own generator (one generator is not thread-safe)."""
        clone = super().for_stream(index)
        if getattr(self, "sampler", None) is not None:
            clone.sampler = torch.Generator(device=self.ctx.device).manual_seed(
                self.ctx.seed + 1000 + index)
        return clone

    def metrics(self, loop: RepeatResult) -> Metrics:
        out = {**input_wait_metrics(self.batches, loop),
               **agreement_metrics(self.extra.get("int8"))}
        if self.ctx.mode == "train":
            out["sequences_per_s"] = {
                "value": loop["throughput_items_per_s"] / self.params["seq_len"],
                "unit": "sequences/s"}
        return out

    def info(self) -> Info:
        out = {**super().info(), "reference_parameters": PARAMETERS}
        if self.ctx.mode == "infer" and self.last_generated:
            # Evidence that inference generated text: the start of the last batch's first
            # sequence (random weights, so it is not poetry).
            out["sample_ids"] = self.last_generated
            if self.vocab is not None:
                out["sample_text"] = self.vocab.decode(self.last_generated)
        return out
