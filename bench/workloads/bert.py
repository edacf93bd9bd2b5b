"""Extractive question answering with BERT: ``bert`` (bert-base-cased configuration,
107,721,218 parameters) and ``bert-tiny`` (L=2 H=128 A=2 I=512, 4,369,666 parameters), the
model the published evaluation ran on the Jetson instead of BERT-base.

One item is one sequence of ``seq_len`` tokens (384 as in SQuAD fine-tuning). Training is
SQuAD fine-tuning: AdamW (lr 3e-5, weight decay 0.01) on the start/end cross-entropy loss of
``BertForQuestionAnswering``. Synthetic mode builds full-length random features on the
device; loader mode tokenises a SQuAD v2.0 / CMRC2018 file at ``data_path`` (with the local
tokenizer at ``tokenizer_path``, or the hashing fallback) or serves host-side random features.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from bench.data import DeviceBatches, data_mode, input_wait_metrics, synthetic_info
from bench.data.squad import SquadDataset, SyntheticQA, synthetic_qa_batch
from bench.data.tokenizer import load_tokenizer
from bench.documents import Info, Metrics, Params, RepeatResult
from bench.flops import WorkProbe
from bench.function.model import ModelProbe, batch_slice
from bench.models.bert import BERT_CONFIGS, LOWERCASE, bert_for_qa
from bench.quantize import agreement_metrics
from bench.workload import Workload, count_parameters, register
from bench.workloads._common import Trainer, data_root, loader_batches, synthetic_length

# A typical SQuAD question is ~11 words: the synthetic features' question segment.
SYNTHETIC_QUESTION_TOKENS = 16
MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


class BertQAWorkload(Workload):
    """Shared by ``bert`` and ``bert-tiny``: only the model configuration differs."""

    model_config: ClassVar[str]
    reference_parameters: ClassVar[int]
    group = "nlp"
    modes = ("train", "infer")
    item_unit = "sequences"
    # The features dict: its (batch, seq_len) tensors are permuted alike, so token ids,
    # token types and attention mask stay aligned (bench.data.variants).
    input_attrs = ("batch",)
    int8_kind = "dynamic"

    def setup(self) -> None:
        self.check_precision()
        torch.manual_seed(self.ctx.seed)
        p = self.params
        device = self.ctx.device
        vocab = BERT_CONFIGS[self.model_config]["vocab_size"]
        if p["seq_len"] > BERT_CONFIGS[self.model_config]["max_position_embeddings"]:
            from bench.errors import UserError

            raise UserError(f"Workload {self.name!r}: seq_len={p['seq_len']} exceeds BERT's "
                            "512 positions.", "Use seq_len <= 512 (SQuAD uses 384).")
        self.model = bert_for_qa(self.model_config).to(device)
        self.extra["parameters"] = count_parameters(self.model)
        self.extra["model_config"] = self.model_config
        self.extra["attn_implementation"] = getattr(self.model.config, "_attn_implementation",
                                                    None)
        self.batches: DeviceBatches | None = None
        if data_mode(p, self.name) == "loader":
            if p["data_path"]:
                path = data_root(self, "a SQuAD v2.0 or CMRC2018 JSON file")
                tok = load_tokenizer(p["tokenizer_path"], vocab, LOWERCASE[self.model_config])
                ds: Any = SquadDataset(path, tok, p["seq_len"], p["doc_stride"],
                                       p["max_query_len"])
                self.batches = loader_batches(self, ds, source="squad-json", path=str(path),
                                              details={**ds.describe(), "tokenizer": tok.name})
            else:
                ds = SyntheticQA(synthetic_length(p["batch_size"]), p["seq_len"], vocab,
                                 SYNTHETIC_QUESTION_TOKENS, self.ctx.seed)
                self.batches = loader_batches(self, ds, source="synthetic (host DataLoader)")
        else:
            gen = torch.Generator(device="cpu").manual_seed(self.ctx.seed)
            batch = synthetic_qa_batch(p["batch_size"], p["seq_len"], vocab,
                                       SYNTHETIC_QUESTION_TOKENS, gen)
            self.batch = {k: v.to(device) for k, v in batch.items()}
            self.extra["data"] = synthetic_info(
                {k: list(v.shape) for k, v in batch.items()}).as_dict()
        if self.ctx.mode == "train":
            self.model.train()
            optimizer = torch.optim.AdamW(self.model.parameters(), lr=p["lr"],
                                          weight_decay=0.01)
            self.trainer = Trainer(self, self.model, optimizer)
        else:
            self.model.eval()
            if self.precision_used == "int8":
                def batch(offset: int) -> tuple[dict[str, torch.Tensor]]:
                    g = torch.Generator(device="cpu").manual_seed(self.ctx.seed + offset)
                    b = synthetic_qa_batch(p["batch_size"], p["seq_len"], vocab,
                                           SYNTHETIC_QUESTION_TOKENS, g)
                    return ({k: b[k].to(device) for k in MODEL_INPUTS},)

                self.model = _Kwargs(self.model)
                self.quantize_int8(batch(1), [], [batch(200 + i) for i in range(4)],
                                   lambda out: [out.start_logits, out.end_logits])

    @classmethod
    def work_probe(cls, mode: str, params: Params, precision: str,
                   info: Info) -> WorkProbe:
        """Without the attention mask: masking changes no matrix product, and transformers
        reads the mask's values to pick its attention path (a meta tensor has none)."""
        model = bert_for_qa(cls.model_config).train(mode == "train")
        b = params["batch_size"]
        ids = torch.zeros(b, params["seq_len"], dtype=torch.long)
        if mode == "train":
            positions = torch.zeros(b, dtype=torch.long)
            return WorkProbe(lambda: model(input_ids=ids, token_type_ids=ids,
                                           start_positions=positions,
                                           end_positions=positions).loss, b, backward=True,
                             parameters=count_parameters(model))
        return WorkProbe(lambda: model(input_ids=ids, token_type_ids=ids).start_logits, b,
                         backward=False, parameters=count_parameters(model))

    def step(self) -> int:
        batch = self.batch if self.batches is None else next(self.batches)
        if self.ctx.mode == "train":
            self.trainer.step(lambda: self.model(**batch).loss)
        else:
            with torch.inference_mode(), self.autocast():
                out = self.model(**{k: batch[k] for k in MODEL_INPUTS})
                out.start_logits.argmax(dim=-1)
                out.end_logits.argmax(dim=-1)
        return self.params["batch_size"]

    def metrics(self, loop: RepeatResult) -> Metrics:
        return {
            "tokens_per_s": {"value": loop["throughput_items_per_s"] * self.params["seq_len"],
                             "unit": "tokens/s"},
            **input_wait_metrics(self.batches, loop),
            **agreement_metrics(self.extra.get("int8")),
        }

    def function_probe(self) -> ModelProbe:
        batch = batch_slice(self.batch if self.batches is None else next(self.batches))
        if self.ctx.mode == "train":
            return ModelProbe(self.model, batch, loss=lambda m, x: m(**x).loss,
                              autocast=self.autocast)

        def forward(m: Any, x: dict[str, Any]) -> dict[str, Any]:
            out = m(**{k: x[k] for k in MODEL_INPUTS})
            return {"start_logits": out.start_logits, "end_logits": out.end_logits}
        return ModelProbe(self.model, {k: batch[k] for k in MODEL_INPUTS}, forward=forward,
                          decisions={"start_logits": -1, "end_logits": -1},
                          autocast=self.autocast)

    def info(self) -> Info:
        return {**super().info(), "reference_parameters": self.reference_parameters}


class _Kwargs(torch.nn.Module):
    """Calls a model with a dict of keyword inputs (the int8 comparison passes one)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], dict):
            return self.model(**args[0])
        return self.model(*args, **kwargs)


def _config(batch_size: int, seq_len: int, doc_stride: int, max_query_len: int,
            num_workers: int) -> dict[str, Any]:
    return {"batch_size": batch_size, "seq_len": seq_len, "doc_stride": doc_stride,
            "max_query_len": max_query_len, "lr": 3e-5, "data": "synthetic",
            "data_path": None, "tokenizer_path": None, "num_workers": num_workers,
            "streams": 1}


@register
class BertWorkload(BertQAWorkload):
    name = "bert"
    description = "BertForQuestionAnswering, bert-base-cased configuration, SQuAD-length input"
    model_config = "bert-base-cased"
    reference_parameters = 107_721_218
    configs = {
        "small": _config(batch_size=2, seq_len=64, doc_stride=32, max_query_len=16,
                         num_workers=1),
        # SQuAD fine-tuning shape (384 tokens, stride 128, question <= 64 tokens). Batch 16:
        # fp32 training saves up to 0.8 GiB per sequence where attention runs on the math
        # path (measured; less with fused attention), 13 GiB plus 1.6 GiB of weights and
        # AdamW state: fits a 24 GB card on every vendor's attention kernels. 32 would not.
        "full": _config(batch_size=16, seq_len=384, doc_stride=128, max_query_len=64,
                        num_workers=4),
    }


@register
class BertTinyWorkload(BertQAWorkload):
    name = "bert-tiny"
    description = "BertForQuestionAnswering, BERT-tiny (L=2 H=128 A=2), the edge-device model"
    model_config = "bert-tiny"
    reference_parameters = 4_369_666
    configs = {
        "small": _config(batch_size=2, seq_len=64, doc_stride=32, max_query_len=16,
                         num_workers=1),
        # Same input as bert (16 x 384 tokens), so a substituted run is fed identically;
        # BERT-tiny needs ~0.3 GiB for it, well within a Jetson Xavier NX's 8 GB.
        "full": _config(batch_size=16, seq_len=384, doc_stride=128, max_query_len=64,
                        num_workers=4),
    }
