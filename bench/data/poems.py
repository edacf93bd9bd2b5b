"""Poem-Tang JSON for the character LSTM: a character vocabulary and training windows.

Accepted files (a file, or every ``*.json`` in a directory): a JSON list of poems, each an
object with ``content`` (a string) or ``paragraphs`` (a list of lines, the chinese-poetry
layout), or a string; JSON Lines with the same objects also work. Each poem becomes
``<start> characters <eop>``; the poems are joined into one stream and cut into windows of
``seq_len + 1`` characters (input = all but the last, target = all but the first).

The vocabulary is built from the data: four special symbols, then characters by decreasing
frequency (ties by code point) up to the model's vocabulary size; rarer characters map to
``<unk>``. How many were cut is recorded.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from bench.documents import Info
from bench.errors import UserError

SPECIALS = ("<pad>", "<unk>", "<start>", "<eop>")
PAD, UNK, START, EOP = range(4)


def _poem_text(item: Any, path: Path, where: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        if isinstance(item.get("content"), str):
            return item["content"]
        if isinstance(item.get("paragraphs"), list):
            return "".join(str(line) for line in item["paragraphs"])
    raise UserError(f"Poem file {path} at {where}: a poem must be a string or an object with "
                    "`content` (string) or `paragraphs` (list of lines).",
                    "Give Poem-Tang JSON (a list of {\"title\", \"author\", \"content\"}).")


def read_poems(path: Path) -> list[str]:
    files = sorted(path.glob("*.json")) + sorted(path.glob("*.jsonl")) if path.is_dir() \
        else [path]
    if not files:
        raise UserError(f"Poem directory {path} holds no .json files.",
                        "Point data_path at a Poem-Tang JSON file or a directory of them.")
    poems: list[str] = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"Poem file {f} is not readable UTF-8 text: {exc}.",
                            "Give a UTF-8 JSON file.") from exc
        try:
            doc = json.loads(text)
            items = doc if isinstance(doc, list) else [doc]
            wheres = [f"$[{i}]" for i in range(len(items))]
        except json.JSONDecodeError:
            try:
                items = [json.loads(line) for line in text.splitlines() if line.strip()]
            except json.JSONDecodeError as exc:
                raise UserError(f"Poem file {f} is neither JSON nor JSON Lines: {exc}.",
                                "Fix the file or give the original Poem-Tang JSON.") from exc
            wheres = [f"line {i + 1}" for i in range(len(items))]
        poems += [t for t in (_poem_text(it, f, w).strip() for it, w in zip(items, wheres,
                                                                             strict=True)) if t]
    if not poems:
        raise UserError(f"Poem data {path} holds no poem text.",
                        "Check that the poems have a non-empty `content`.")
    return poems


@dataclass
class CharVocab:
    chars: list[str]  # id -> symbol (the specials first)

    @classmethod
    def build(cls, poems: list[str], size: int) -> CharVocab:
        counts = Counter(ch for poem in poems for ch in poem)
        ranked = sorted(counts, key=lambda ch: (-counts[ch], ch))
        return cls([*SPECIALS, *ranked[: max(0, size - len(SPECIALS))]])

    def __post_init__(self) -> None:
        self.index = {ch: i for i, ch in enumerate(self.chars)}

    def encode(self, poem: str) -> list[int]:
        return [START, *(self.index.get(ch, UNK) for ch in poem), EOP]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] if i >= len(SPECIALS) else "" if i != UNK else "?"
                       for i in ids if 0 <= i < len(self.chars))


class PoemWindows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Consecutive windows of the encoded poem stream: (input, next-character target)."""

    def __init__(self, path: Path, seq_len: int, vocab_size: int) -> None:
        poems = read_poems(path)
        self.vocab = CharVocab.build(poems, vocab_size)
        stream = [i for poem in poems for i in self.vocab.encode(poem)]
        self.stream = torch.tensor(stream, dtype=torch.long)
        self.seq_len = seq_len
        self.poems = len(poems)
        self.distinct_chars = len({ch for p in poems for ch in p})
        self.unknown = int((self.stream == UNK).sum())
        if len(stream) < seq_len + 1:
            raise UserError(f"Poem data {path} has {len(stream)} characters, fewer than one "
                            f"window of seq_len + 1 = {seq_len + 1}.",
                            "Use more poems or a smaller seq_len.")

    def __len__(self) -> int:
        return (len(self.stream) - 1) // self.seq_len

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        chunk = self.stream[index * self.seq_len: index * self.seq_len + self.seq_len + 1]
        return chunk[:-1], chunk[1:]

    def describe(self) -> Info:
        return {"format": "poem-tang-json", "poems": self.poems,
                "characters": int(self.stream.numel()), "distinct_chars": self.distinct_chars,
                "vocab_used": len(self.vocab.chars), "unknown_chars": self.unknown}


class SyntheticCharWindows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Host-side random character windows (loader mode without a data set)."""

    def __init__(self, length: int, seq_len: int, vocab_size: int, seed: int) -> None:
        self.length = length
        self.seq_len = seq_len
        self.vocab_size = vocab_size
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        chunk = torch.randint(len(SPECIALS), self.vocab_size, (self.seq_len + 1,), generator=gen)
        return chunk[:-1], chunk[1:]
