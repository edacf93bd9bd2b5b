"""Tokenisers for the QA data sets, with character offsets for answer spans.

There is no model hub here, so a real WordPiece vocabulary comes only from a local tokenizer
directory (``tokenizer_path``: e.g. a saved bert-base-cased tokenizer with its vocab.txt),
loaded through transformers with ``local_files_only``. Without one the loader uses
``HashingTokenizer``: deterministic, dependency-free, and good enough for a compute benchmark
(the ids index the same embedding rows a real vocabulary would; only the text-to-id mapping
differs). Which one was used is recorded in the result.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench.errors import UserError

# BERT vocabularies (cased and uncased) put these special tokens at the same ids.
PAD_ID, UNK_ID, CLS_ID, SEP_ID = 0, 100, 101, 102
# Hashed ids start after BERT's specials and [unused] rows, so they never collide with them.
FIRST_HASHED_ID = 1000

# One token per CJK character (CMRC2018 is Chinese), a run of word characters, or one
# punctuation mark: BERT's basic tokenisation without WordPiece.
_TOKEN_RE = re.compile(
    r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]|[^\W_]+|[^\w\s]|_")

Offsets = list[tuple[int, int]]


class QATokenizer(Protocol):
    name: str
    vocab_size: int
    pad_id: int
    cls_id: int
    sep_id: int

    def encode(self, text: str) -> tuple[list[int], Offsets]:
        """Token ids of ``text`` (no special tokens) and each token's [start, end) chars."""
        ...


def basic_tokens(text: str) -> list[str]:
    """BERT's basic split without WordPiece: words, punctuation marks, CJK characters."""
    return _TOKEN_RE.findall(text)


def hashed_id(token: str, vocab_size: int) -> int:
    """A stable id in [FIRST_HASHED_ID, vocab_size) for a token (same on every machine)."""
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
    return FIRST_HASHED_ID + int.from_bytes(digest, "little") % (vocab_size - FIRST_HASHED_ID)


@dataclass
class HashingTokenizer:
    """Fallback tokeniser: basic word/punctuation/CJK split, ids by hashing into the vocab."""

    vocab_size: int
    lowercase: bool = False
    name: str = "hashing (fallback: no tokenizer_path)"
    pad_id: int = PAD_ID
    cls_id: int = CLS_ID
    sep_id: int = SEP_ID

    def __post_init__(self) -> None:
        if self.vocab_size <= FIRST_HASHED_ID:
            raise ValueError(f"vocab_size must exceed {FIRST_HASHED_ID}")

    def encode(self, text: str) -> tuple[list[int], Offsets]:
        ids, offsets = [], []
        for m in _TOKEN_RE.finditer(text):
            token = m.group().lower() if self.lowercase else m.group()
            ids.append(hashed_id(token, self.vocab_size))
            offsets.append((m.start(), m.end()))
        return ids, offsets


class PretrainedTokenizer:
    """A local transformers tokenizer directory (fast tokenizer: it gives offsets)."""

    def __init__(self, path: Path, model_vocab_size: int) -> None:
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True, use_fast=True)
        except (OSError, ValueError) as exc:
            raise UserError(f"tokenizer_path {str(path)!r} is not a loadable tokenizer "
                            f"directory: {exc}",
                            "Give a directory saved with tokenizer.save_pretrained() (for BERT: "
                            "vocab.txt plus tokenizer_config.json), or leave tokenizer_path "
                            "null for the hashing fallback.") from exc
        if not getattr(tok, "is_fast", False):
            raise UserError(f"The tokenizer in {path} is not a fast tokenizer, so it cannot "
                            "map answers to tokens (no offsets).",
                            "Save the fast version (tokenizer.json), e.g. with "
                            "BertTokenizerFast.save_pretrained().")
        if len(tok) > model_vocab_size:
            raise UserError(f"The tokenizer in {path} has {len(tok)} tokens, more than the "
                            f"model's vocabulary of {model_vocab_size}.",
                            "Use the tokenizer of this configuration (bert-base-cased: 28996, "
                            "bert-tiny: 30522 uncased).")
        self._tok = tok
        self.name = f"{type(tok).__name__} from {path}"
        self.vocab_size = len(tok)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else PAD_ID
        self.cls_id = tok.cls_token_id if tok.cls_token_id is not None else CLS_ID
        self.sep_id = tok.sep_token_id if tok.sep_token_id is not None else SEP_ID

    def encode(self, text: str) -> tuple[list[int], Offsets]:
        enc = self._tok(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def load_tokenizer(path: str | None, model_vocab_size: int, lowercase: bool) -> QATokenizer:
    if path:
        p = Path(path).expanduser()
        if not p.is_dir():
            raise UserError(f"tokenizer_path {str(p)!r} is not a directory.",
                            "Give a local tokenizer directory, or null for the hashing "
                            "fallback; nothing is downloaded.")
        return PretrainedTokenizer(p, model_vocab_size)
    return HashingTokenizer(model_vocab_size, lowercase=lowercase)
