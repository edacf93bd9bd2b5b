"""Prompts of exact token length: synthetic ids (default) or CMRC2018 contexts.

The grid's input lengths are exact (256, 512, 1024 tokens), so every prompt is made exactly
that long. Synthetic prompts are seeded random token ids. CMRC2018 prompts restructure a
paragraph into a reading-comprehension prompt, as the published evaluation did: an
instruction, the context, the paragraph's first question and an answer cue. A prompt that is
too long loses the end of its context (the question stays last); one that is too short is
preceded by further contexts of the data set until it is long enough (the earliest of them
cut at its beginning).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.errors import UserError

PROMPTS = ("synthetic", "cmrc2018")
HEAD = "阅读下面的文章，回答问题。\n文章："
TAIL = "\n问题：{question}\n答案："


def offline() -> None:
    """Never reach a model hub: everything loads from local paths."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def synthetic_prompt_ids(batch: int, length: int, vocab: int, seed: int) -> list[list[int]]:
    """Seeded random token ids, ``batch`` rows of exactly ``length``."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randint(0, vocab, (batch, length), generator=gen).tolist()


def load_cmrc2018(path: str | Path) -> list[tuple[str, str]]:
    """(context, first question) of every paragraph of a CMRC2018 (SQuAD-format) JSON file."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UserError(f"CMRC2018 file {p} does not exist.",
                        "Set the workload's `dataset` to a local CMRC2018 JSON file "
                        "(e.g. cmrc2018_dev.json).") from exc
    except (OSError, ValueError) as exc:
        raise UserError(f"CMRC2018 file {p} cannot be read as JSON: {exc}.",
                        "Give the SQuAD-format JSON file of CMRC2018.") from exc
    out = []
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise UserError(f"CMRC2018 file {p} has no `data` list at $.data.",
                        "Give the SQuAD-format JSON file of CMRC2018 "
                        "({\"data\": [{\"paragraphs\": [...]}]}).")
    for i, article in enumerate(data):
        for j, para in enumerate(article.get("paragraphs", [])):
            context = para.get("context")
            qas = para.get("qas") or []
            if not isinstance(context, str) or not context.strip():
                raise UserError(f"CMRC2018 file {p}: $.data[{i}].paragraphs[{j}].context is "
                                "missing or empty.", "Fix or remove that paragraph.")
            question = qas[0].get("question", "") if qas else ""
            out.append((context, question))
    if not out:
        raise UserError(f"CMRC2018 file {p} holds no paragraphs.",
                        "Give a file with at least one paragraph.")
    return out


def load_tokenizer(path: str | Path) -> Any:
    """A local tokenizer: a ``tokenizer.json`` file or a directory ``AutoTokenizer`` reads."""
    offline()
    p = Path(path)
    if not p.exists():
        raise UserError(f"Tokenizer {p} does not exist.",
                        "Set `tokenizer` to a local tokenizer.json or a model directory.")
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        if p.is_file():
            return PreTrainedTokenizerFast(tokenizer_file=str(p))
        return AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"Tokenizer {p} cannot be loaded: {exc}.",
                        "Give a directory with tokenizer files or a tokenizer.json.") from exc


def fit_to_length(own: Sequence[int], tail: Sequence[int], fillers: Sequence[Sequence[int]],
                  length: int) -> list[int]:
    """``length`` ids ending with ``tail``.

    Too long: ``own`` loses its end. Too short: fillers go before ``own`` (the first filler
    nearest to it) and the earliest filler loses its beginning.
    """
    tail = list(tail)[-length:]
    room = length - len(tail)
    if len(own) >= room:
        return list(own)[:room] + tail
    body = list(own)
    for filler in fillers:
        body = list(filler) + body
        if len(body) >= room:
            return body[len(body) - room:] + tail
    raise ValueError(f"not enough text for a {length}-token prompt")


def cmrc2018_prompt_ids(examples: Sequence[tuple[str, str]], tokenizer: Any, batch: int,
                        length: int) -> list[list[int]]:
    """``batch`` CMRC2018 prompts of exactly ``length`` tokens (cycling through the file)."""
    def encode(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False))

    heads = [encode(HEAD + context) for context, _ in examples]
    tails = [encode(TAIL.format(question=q)) for _, q in examples]
    total = sum(len(h) for h in heads)
    if total + min(len(t) for t in tails) < length:
        raise UserError(f"The CMRC2018 file has {total} context tokens in all: too little for "
                        f"a {length}-token prompt.",
                        "Use the full data set, or shorter input lengths.")
    rows = []
    n = len(examples)
    for b in range(batch):
        i = b % n
        fillers = [heads[(i - k) % n] for k in range(1, n)]
        rows.append(fit_to_length(heads[i], tails[i], fillers, length))
    return rows


def check_vocab(rows: Sequence[Sequence[int]], vocab: int, what: str) -> None:
    top = max(max(r) for r in rows)
    if top >= vocab:
        raise UserError(f"{what} produces token id {top}, outside the model's vocabulary "
                        f"of {vocab}.", "Use the tokenizer that belongs to the model's weights.")
