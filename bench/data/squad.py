"""SQuAD v2.0 and CMRC2018 (same JSON layout) as BERT question-answering features.

``{"data": [{"paragraphs": [{"context": str, "qas": [{"id", "question", "answers":
[{"text", "answer_start"}], "is_impossible"?}]}]}]}``. Each question becomes one or more
fixed-length features, as the reference SQuAD preprocessing does: ``[CLS] question [SEP]
context-window [SEP] [PAD]...``, the context cut into windows ``doc_stride`` tokens apart. The
answer's start and end token positions are the labels; an unanswerable question (SQuAD v2.0)
or an answer outside the window points at ``[CLS]`` (position 0).

Tokenisation happens once when the workload is set up (not timed), as in the reference
pipelines; the DataLoader then serves the tensors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from bench.data.tokenizer import Offsets, QATokenizer
from bench.documents import Info
from bench.errors import UserError


@dataclass(frozen=True)
class QAExample:
    qid: str
    question: str
    context: str
    answer_start: int | None  # character offset; None when unanswerable
    answer_text: str


@dataclass(frozen=True)
class QAFeature:
    input_ids: list[int]
    token_type_ids: list[int]
    attention_mask: list[int]
    start_position: int
    end_position: int


def _fail(path: Path, where: str, problem: str) -> UserError:
    return UserError(f"QA data set {path} at {where}: {problem}.",
                     "Give a SQuAD v2.0 or CMRC2018 JSON file ({\"data\": [{\"paragraphs\": "
                     "[{\"context\", \"qas\": [{\"question\", \"answers\"}]}]}]}).")


def read_qa_json(path: Path) -> tuple[str, list[QAExample]]:
    """(format name, examples) of a SQuAD-layout file; the first answer is the label."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, "$", f"not readable JSON ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise _fail(path, "$.data", "missing or not a list")
    examples: list[QAExample] = []
    v2 = False
    for i, article in enumerate(doc["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise _fail(path, f"$.data[{i}].paragraphs", "missing or not a list")
        for j, para in enumerate(paragraphs):
            where = f"$.data[{i}].paragraphs[{j}]"
            context = para.get("context") if isinstance(para, dict) else None
            if not isinstance(context, str) or not isinstance(para.get("qas"), list):
                raise _fail(path, where, "needs a string `context` and a list `qas`")
            for k, qa in enumerate(para["qas"]):
                qwhere = f"{where}.qas[{k}]"
                if not isinstance(qa, dict) or not isinstance(qa.get("question"), str):
                    raise _fail(path, qwhere, "needs a string `question`")
                v2 = v2 or "is_impossible" in qa
                answers = qa.get("answers") or []
                if qa.get("is_impossible") or not answers:
                    examples.append(QAExample(str(qa.get("id", qwhere)), qa["question"],
                                              context, None, ""))
                    continue
                ans = answers[0]
                start = ans.get("answer_start") if isinstance(ans, dict) else None
                if not isinstance(start, int) or not isinstance(ans.get("text"), str) \
                        or not 0 <= start <= len(context):
                    raise _fail(path, f"{qwhere}.answers[0]",
                                "needs `text` and an `answer_start` inside the context")
                examples.append(QAExample(str(qa.get("id", qwhere)), qa["question"], context,
                                          start, ans["text"]))
    if not examples:
        raise _fail(path, "$.data", "no questions")
    return ("squad-v2.0" if v2 else "squad-v1/cmrc2018"), examples


def answer_token_span(offsets: Offsets, char_start: int, char_end: int) -> tuple[int, int] | None:
    """First and last token (inclusive) overlapping [char_start, char_end), or None."""
    hit = [i for i, (s, e) in enumerate(offsets) if s < char_end and e > char_start]
    return (hit[0], hit[-1]) if hit else None


def window_starts(n_tokens: int, window: int, stride: int) -> list[int]:
    """Start offsets of the context windows: every ``stride`` tokens until the end is in."""
    starts = [0]
    while starts[-1] + window < n_tokens:
        starts.append(starts[-1] + min(stride, window))
    return starts


def featurize(example: QAExample, tok: QATokenizer, seq_len: int, doc_stride: int,
              max_query_len: int) -> list[QAFeature]:
    q_ids, _ = tok.encode(example.question)
    q_ids = q_ids[:max_query_len]
    c_ids, c_offsets = tok.encode(example.context)
    window = seq_len - len(q_ids) - 3
    if window < 1:
        raise ValueError(f"seq_len {seq_len} leaves no room for the context")
    span = None
    if example.answer_start is not None:
        end = example.answer_start + max(len(example.answer_text), 1)
        span = answer_token_span(c_offsets, example.answer_start, end)
    features = []
    for start in window_starts(len(c_ids), window, doc_stride):
        ctx = c_ids[start:start + window]
        ids = [tok.cls_id, *q_ids, tok.sep_id, *ctx, tok.sep_id]
        types = [0] * (len(q_ids) + 2) + [1] * (len(ctx) + 1)
        pad = seq_len - len(ids)
        s_pos = e_pos = 0
        if span is not None and span[0] >= start and span[1] < start + len(ctx):
            s_pos = span[0] - start + len(q_ids) + 2
            e_pos = span[1] - start + len(q_ids) + 2
        features.append(QAFeature(ids + [tok.pad_id] * pad, types + [0] * pad,
                                  [1] * len(ids) + [0] * pad, s_pos, e_pos))
    return features


class SquadDataset(Dataset[dict[str, torch.Tensor]]):
    """Pre-tokenised features of one QA JSON file (or every ``*.json`` in a directory)."""

    def __init__(self, path: Path, tok: QATokenizer, seq_len: int, doc_stride: int,
                 max_query_len: int) -> None:
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        if not files:
            raise UserError(f"QA data directory {path} holds no .json files.",
                            "Point data_path at a SQuAD v2.0 / CMRC2018 JSON file.")
        self.formats: set[str] = set()
        self.examples = 0
        feats: list[QAFeature] = []
        for f in files:
            fmt, examples = read_qa_json(f)
            self.formats.add(fmt)
            self.examples += len(examples)
            for ex in examples:
                feats.extend(featurize(ex, tok, seq_len, doc_stride, max_query_len))
        self.answerable = sum(1 for f in feats if f.start_position > 0)
        self.tensors = {
            "input_ids": torch.tensor([f.input_ids for f in feats], dtype=torch.long),
            "token_type_ids": torch.tensor([f.token_type_ids for f in feats], dtype=torch.long),
            "attention_mask": torch.tensor([f.attention_mask for f in feats], dtype=torch.long),
            "start_positions": torch.tensor([f.start_position for f in feats], dtype=torch.long),
            "end_positions": torch.tensor([f.end_position for f in feats], dtype=torch.long),
        }

    def __len__(self) -> int:
        return int(self.tensors["input_ids"].shape[0])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self.tensors.items()}

    def describe(self) -> Info:
        return {"format": "+".join(sorted(self.formats)), "examples": self.examples,
                "features": len(self), "answerable_features": self.answerable}


class SyntheticQA(Dataset[dict[str, torch.Tensor]]):
    """Host-side random QA features of the real shapes (loader mode without a data set)."""

    def __init__(self, length: int, seq_len: int, vocab_size: int, query_len: int,
                 seed: int) -> None:
        self.length = length
        self.seq_len = seq_len
        self.vocab_size = vocab_size
        self.query_len = query_len
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        return synthetic_qa_batch(1, self.seq_len, self.vocab_size, self.query_len, gen,
                                  squeeze=True)


def synthetic_qa_batch(batch: int, seq_len: int, vocab_size: int, query_len: int,
                       gen: torch.Generator, squeeze: bool = False) -> dict[str, torch.Tensor]:
    """Random full-length features: question of ``query_len`` tokens, then the context."""
    from bench.data.tokenizer import CLS_ID, FIRST_HASHED_ID, SEP_ID

    ids = torch.randint(FIRST_HASHED_ID, vocab_size, (batch, seq_len), generator=gen)
    q = min(query_len, seq_len - 3)
    ids[:, 0] = CLS_ID
    ids[:, q + 1] = SEP_ID
    ids[:, -1] = SEP_ID
    types = torch.zeros(batch, seq_len, dtype=torch.long)
    types[:, q + 2:] = 1
    start = torch.randint(q + 2, seq_len - 1, (batch,), generator=gen)
    end = torch.minimum(start + torch.randint(0, 8, (batch,), generator=gen),
                        torch.tensor(seq_len - 2))
    out = {"input_ids": ids, "token_type_ids": types,
           "attention_mask": torch.ones(batch, seq_len, dtype=torch.long),
           "start_positions": start, "end_positions": end}
    return {k: v[0] for k, v in out.items()} if squeeze else out
