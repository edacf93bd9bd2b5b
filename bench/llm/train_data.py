"""Training data that a model can learn, identical on every device, every run and every
world size for a given seed.

Uniform random tokens cannot be learned (the loss stays at ln V), so two devices' loss
curves would say nothing. The synthetic default is an **order-2 Markov chain** over a range
of token ids: after the context (a, b) the next token is one of ``BRANCHES`` successors with
probabilities 8/15, 4/15, 2/15, 1/15, and the successors are Zipf-distributed over the
vocabulary (ranks mapped to ids by an affine permutation). A model first learns the Zipf
unigram (the loss falls from ln V within tens of steps), then the pairs' successors. The chain
is defined by a hash (splitmix64) of the seed, the context and the branch, never by a
random-number generator's state, so it is the same in every process, on every machine and in
every numpy version, and needs no V^2 table.

Batches are a pure function of (seed, step, row of the global batch): a rank computes only
its own rows, and a 1-rank and a 2-rank run see the same global batch at every step. A
**pool** of chains (or, with real data, the tokenised text as one long chain) is built once in
setup; row j of step i is a window of it at a position hashed from (seed, i, j).

Sources: causal-LM windows (``causal``), BERT pretraining pairs with masking and
next-sentence labels (``bert``), Alpaca-format instruction records (``alpaca``), each
synthetic by default or from local files (jsonl text, ``alpaca_data.json``) with a local
tokenizer. Nothing is ever downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import UserError

BRANCHES = 4
BRANCH_WEIGHTS = np.array([8, 4, 2, 1], dtype=np.float64) / 15.0
ZIPF_EXPONENT = 1.0
IGNORE_INDEX = -100  # label of positions the loss skips (transformers' convention)
FIRST_BERT_ID = 1000  # BERT's special and [unused] rows come before (bench.data.tokenizer)

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# Odd constants that spread the hash inputs (any distinct large odd numbers do).
_K = tuple(np.uint64(k) for k in (0xD6E8FEB86659FD93, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB,
                                   0x8EBC6AF09C88C6E3, 0x589965CC75374CC3))
# Domains keep the hash streams of different purposes apart.
(D_SUCCESSOR, D_BRANCH, D_START, D_WINDOW, D_NSP, D_MASK, D_MASK_KIND, D_RANDOM_TOKEN,
 D_LENGTH) = range(1, 10)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (x + _GOLDEN) & _M64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
        return z ^ (z >> np.uint64(31))


def hash_u64(seed: int, domain: int, *keys: Any) -> np.ndarray:
    """A 64-bit hash of (seed, domain, keys...); keys broadcast as integer arrays."""
    with np.errstate(over="ignore"):
        h = splitmix64(np.asarray([(seed * 1_000_003 + domain) & 0xFFFFFFFFFFFFFFFF],
                                  dtype=np.uint64))
        for i, key in enumerate(keys):
            k = np.asarray(key).astype(np.int64).astype(np.uint64)
            h = splitmix64(h ^ ((k * _K[i % len(_K)]) & _M64))
        return h


def hash_unit(seed: int, domain: int, *keys: Any) -> np.ndarray:
    """Uniform floats in [0, 1) from :func:`hash_u64` (53 bits)."""
    return (hash_u64(seed, domain, *keys) >> np.uint64(11)).astype(np.float64) / 2.0**53


@dataclass(frozen=True)
class MarkovChain:
    """The order-2 chain over token ids ``[low, high)``."""

    seed: int
    low: int
    high: int

    def __post_init__(self) -> None:
        if self.high - self.low < 2 * BRANCHES:
            raise ValueError(f"token range [{self.low}, {self.high}) is too small")

    @property
    def size(self) -> int:
        return self.high - self.low

    def _zipf_cdf(self) -> np.ndarray:
        weights = 1.0 / np.arange(1, self.size + 1, dtype=np.float64) ** ZIPF_EXPONENT
        cdf = np.cumsum(weights)
        return cdf / cdf[-1]

    def _ids(self, ranks: np.ndarray) -> np.ndarray:
        """Rank -> token id by an affine permutation of the range (so frequent ids are spread
        over the vocabulary, not the first rows)."""
        n = self.size
        mult = _coprime_multiplier(n)
        return self.low + (ranks.astype(np.int64) * mult + 7919) % n

    def successors(self, a: np.ndarray, b: np.ndarray, branch: np.ndarray,
                   cdf: np.ndarray | None = None) -> np.ndarray:
        """The token following context (a, b) on the given branch."""
        cdf = self._zipf_cdf() if cdf is None else cdf
        u = hash_unit(self.seed, D_SUCCESSOR, a, b, branch)
        return self._ids(np.minimum(np.searchsorted(cdf, u, side="right"), self.size - 1))

    def pool(self, chains: int, length: int) -> np.ndarray:
        """``chains`` independent chains of ``length`` tokens (int64), generated together."""
        cdf = self._zipf_cdf()
        branch_cdf = np.cumsum(BRANCH_WEIGHTS)
        rows = np.arange(chains)
        out = np.empty((chains, length), dtype=np.int64)
        for pos in (0, 1):
            u = hash_unit(self.seed, D_START, rows, pos)
            out[:, pos] = self._ids(np.minimum(np.searchsorted(cdf, u, side="right"),
                                               self.size - 1))
        for pos in range(2, length):
            k = np.searchsorted(branch_cdf, hash_unit(self.seed, D_BRANCH, rows, pos),
                                side="right")
            out[:, pos] = self.successors(out[:, pos - 2], out[:, pos - 1],
                                          np.minimum(k, BRANCHES - 1), cdf)
        return out


def _coprime_multiplier(n: int) -> int:
    import math

    m = int(n * 0.6180339887) | 1
    while math.gcd(m, n) != 1:
        m += 2
    return m


# -- windows of a pool ---------------------------------------------------------------------
def window_starts(seed: int, step: int, rows: np.ndarray, pool_shape: tuple[int, int],
                  length: int, domain: int = D_WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """(chain, offset) of the ``length``-token window of each global row at ``step``."""
    chains, chain_len = pool_shape
    if chain_len < length:
        raise ValueError(f"pool chains of {chain_len} tokens are shorter than a "
                         f"{length}-token window")
    h = hash_u64(seed, domain, step, rows)
    chain = (h % np.uint64(chains)).astype(np.int64)
    offset = ((h >> np.uint64(32)) % np.uint64(chain_len - length + 1)).astype(np.int64)
    return chain, offset


def take_windows(pool: np.ndarray, chain: np.ndarray, offset: np.ndarray,
                 length: int) -> np.ndarray:
    return pool[chain[:, None], offset[:, None] + np.arange(length)[None, :]]


# -- batch sources -------------------------------------------------------------------------
Batch = dict[str, np.ndarray]


class CausalSource:
    """Next-token prediction on windows of the pool: input ids = labels (the model shifts)."""

    kind = "causal"

    def __init__(self, pool: np.ndarray, seq_len: int, seed: int) -> None:
        self.pool, self.seq_len, self.seed = pool, seq_len, seed

    def batch(self, step: int, rows: np.ndarray) -> Batch:
        chain, offset = window_starts(self.seed, step, rows, self.pool.shape, self.seq_len)
        ids = take_windows(self.pool, chain, offset, self.seq_len)
        return {"input_ids": ids, "labels": ids.copy()}


@dataclass(frozen=True)
class BertSpecials:
    pad: int = 0
    cls: int = 101
    sep: int = 102
    mask: int = 103


class BertPretrainingSource:
    """BERT's two objectives as in its pretraining data: ``[CLS] A [SEP] B [SEP]`` where B
    continues A (next-sentence label 0) or is a window from elsewhere (label 1), each half
    of the time; 15 % of the sentence tokens are chosen for the masked-LM loss, of which 80 %
    become ``[MASK]``, 10 % a random token and 10 % stay."""

    kind = "bert"

    def __init__(self, pool: np.ndarray, seq_len: int, seed: int, low: int, high: int,
                 specials: BertSpecials = BertSpecials()) -> None:
        if seq_len < 8:
            raise ValueError("a BERT pair needs seq_len >= 8")
        self.pool, self.seq_len, self.seed = pool, seq_len, seed
        self.low, self.high, self.sp = low, high, specials
        self.len_a = (seq_len - 3) // 2
        self.len_b = seq_len - 3 - self.len_a

    def batch(self, step: int, rows: np.ndarray) -> Batch:
        n = len(rows)
        la, lb = self.len_a, self.len_b
        chain, offset = window_starts(self.seed, step, rows, self.pool.shape, la + lb)
        pair = take_windows(self.pool, chain, offset, la + lb)
        random_next = hash_unit(self.seed, D_NSP, step, rows) < 0.5
        other_chain, other_off = window_starts(self.seed, step, rows, self.pool.shape, lb,
                                               domain=D_NSP)
        other = take_windows(self.pool, other_chain, other_off, lb)
        sent_b = np.where(random_next[:, None], other, pair[:, la:])
        sp = self.sp
        ids = np.concatenate([np.full((n, 1), sp.cls), pair[:, :la], np.full((n, 1), sp.sep),
                              sent_b, np.full((n, 1), sp.sep)], axis=1).astype(np.int64)
        token_type = np.zeros_like(ids)
        token_type[:, la + 2:] = 1
        positions = np.arange(self.seq_len)[None, :]
        eligible = (ids != sp.cls) & (ids != sp.sep)
        u = hash_unit(self.seed, D_MASK, step, rows[:, None], positions)
        chosen = eligible & (u < 0.15)
        kind = hash_unit(self.seed, D_MASK_KIND, step, rows[:, None], positions)
        rand_tok = self.low + (hash_u64(self.seed, D_RANDOM_TOKEN, step, rows[:, None], positions)
                               % np.uint64(self.high - self.low)).astype(np.int64)
        labels = np.where(chosen, ids, IGNORE_INDEX)
        masked = np.where(chosen & (kind < 0.8), sp.mask,
                          np.where(chosen & (kind < 0.9), rand_tok, ids))
        return {"input_ids": masked, "token_type_ids": token_type,
                "attention_mask": np.ones_like(ids), "labels": labels,
                "next_sentence_label": random_next.astype(np.int64)}


class AlpacaSource:
    """Instruction records padded to ``seq_len``: the prompt in Alpaca's template followed by
    the response and the end-of-sequence token; the loss covers prompt and response
    (Alpaca-LoRA's default ``train_on_inputs``), not the padding. Row j of step i is record
    ``(i x global_batch + j) mod records``: epochs over the records in a fixed order."""

    kind = "alpaca"

    def __init__(self, records: list[list[int]], seq_len: int, global_batch: int,
                 pad_id: int) -> None:
        if not records:
            raise ValueError("no records")
        self.rows = np.full((len(records), seq_len), pad_id, dtype=np.int64)
        self.labels = np.full((len(records), seq_len), IGNORE_INDEX, dtype=np.int64)
        self.mask = np.zeros((len(records), seq_len), dtype=np.int64)
        for i, rec in enumerate(records):
            ids = rec[:seq_len]
            self.rows[i, :len(ids)] = ids
            self.labels[i, :len(ids)] = ids
            self.mask[i, :len(ids)] = 1
        self.global_batch = global_batch

    @property
    def real_token_fraction(self) -> float:
        return float(self.mask.mean())

    def batch(self, step: int, rows: np.ndarray) -> Batch:
        idx = (step * self.global_batch + rows) % len(self.rows)
        return {"input_ids": self.rows[idx], "attention_mask": self.mask[idx],
                "labels": self.labels[idx]}


# -- Alpaca records ------------------------------------------------------------------------
PROMPT_INPUT = ("Below is an instruction that describes a task, paired with an input that "
                "provides further context. Write a response that appropriately completes the "
                "request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n"
                "### Response:\n")
PROMPT_NO_INPUT = ("Below is an instruction that describes a task. Write a response that "
                   "appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n"
                   "### Response:\n")


def alpaca_prompt(record: dict[str, str]) -> str:
    """Alpaca's (and Alpaca-LoRA's) prompt template."""
    if record.get("input"):
        return PROMPT_INPUT.format(instruction=record["instruction"], input=record["input"])
    return PROMPT_NO_INPUT.format(instruction=record["instruction"])


def load_alpaca(path: str | Path) -> list[dict[str, str]]:
    """Records of an Alpaca-format JSON file (a list of {instruction, input, output}) or JSON
    Lines file; a malformed record is named by its index."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"Alpaca data file {p} does not exist.",
                        "Point `data_path` at a local alpaca_data.json (a JSON list of "
                        "{instruction, input, output}); nothing is downloaded.")
    text = p.read_text(encoding="utf-8")
    try:
        doc = json.loads(text) if text.lstrip().startswith("[") else [
            json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as exc:
        raise UserError(f"Alpaca data file {p} is not JSON or JSON Lines: {exc}.",
                        "Give alpaca_data.json as published (a JSON list).") from exc
    out = []
    for i, rec in enumerate(doc):
        if not isinstance(rec, dict) or not isinstance(rec.get("instruction"), str) \
                or not isinstance(rec.get("output"), str) \
                or not isinstance(rec.get("input", ""), str):
            raise UserError(f"Alpaca data file {p}: record $[{i}] is not an object with string "
                            "`instruction`, `output` (and optional `input`).",
                            "Fix or remove that record.")
        out.append({"instruction": rec["instruction"], "input": rec.get("input", ""),
                    "output": rec["output"]})
    if not out:
        raise UserError(f"Alpaca data file {p} holds no records.", "Give a non-empty file.")
    return out


def load_texts(path: str | Path) -> list[str]:
    """Documents of a JSON Lines file (one object with a ``text`` string per line), or of a
    plain text file (one document per non-empty line), or of every such file in a folder."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"Text data {p} does not exist.",
                        "Point `data_path` at a local .jsonl file ({\"text\": ...} per line), "
                        "a .txt file or a folder of them; nothing is downloaded.")
    files = sorted(f for f in p.rglob("*") if f.suffix in (".jsonl", ".txt")) if p.is_dir() \
        else [p]
    texts: list[str] = []
    for f in files:
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            if f.suffix == ".jsonl":
                try:
                    obj = json.loads(line)
                except ValueError as exc:
                    raise UserError(f"{f}, line {n}: not JSON ({exc}).",
                                    "Each line must be an object with a `text` string.") from exc
                if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                    raise UserError(f"{f}, line {n}: no `text` string.",
                                    "Each line must be an object with a `text` string.")
                texts.append(obj["text"])
            else:
                texts.append(line)
    if not texts:
        raise UserError(f"Text data {p} holds no documents.",
                        "Give .jsonl or .txt files with text.")
    return texts


# -- tokenising ----------------------------------------------------------------------------
class HashTokenizer:
    """Fallback without a tokenizer directory: BERT's basic split (words, punctuation, one
    token per CJK character), each token's id hashed (BLAKE2b) into ``[low, high)``."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self.name = f"hashing into [{low}, {high}) (fallback: no tokenizer)"

    def encode(self, text: str) -> list[int]:
        import hashlib

        from bench.data.tokenizer import basic_tokens

        n = self.high - self.low
        return [self.low + int.from_bytes(hashlib.blake2b(t.encode("utf-8"),
                                                          digest_size=8).digest(),
                                          "little") % n for t in basic_tokens(text)]


class LocalTokenizer:
    """A local transformers tokenizer (``tokenizer.json`` or a directory)."""

    def __init__(self, path: str) -> None:
        from bench.llm.prompts import load_tokenizer

        self._tok = load_tokenizer(path)
        self.name = f"{type(self._tok).__name__} from {path}"

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False))


def text_stream(texts: Sequence[str], tokenizer: Any, eos_id: int | None) -> np.ndarray:
    """The documents tokenised and concatenated, each followed by ``eos_id`` (if any)."""
    ids: list[int] = []
    for text in texts:
        ids += tokenizer.encode(text)
        if eos_id is not None:
            ids.append(eos_id)
    return np.asarray(ids, dtype=np.int64)


def synthetic_alpaca_records(chain: MarkovChain, head: Sequence[int], mid: Sequence[int],
                             count: int, seq_len: int, eos_id: int | None) -> list[list[int]]:
    """Instruction records made of the chain, in the Alpaca template: ``head`` (the tokenised
    prompt up to the instruction), an instruction window, ``mid`` (up to the response), the
    window's continuation as the response, end of sequence. Lengths are hashed between a
    quarter and the whole of what fits, so batches carry padding as real records do."""
    room = max(seq_len - len(head) - len(mid) - 1, 8)
    pool = chain.pool(count, room)
    low = max(room // 4, 2)
    lengths = (low + (hash_u64(chain.seed, D_LENGTH, np.arange(count))
                      % np.uint64(room - low + 1))).astype(np.int64)
    records = []
    for i in range(count):
        body = pool[i, :lengths[i]].tolist()
        cut = max(1, len(body) // 3)
        rec = [*head, *body[:cut], *mid, *body[cut:]]
        records.append(rec + ([eos_id] if eos_id is not None else []))
    return records


def check_ids(ids: np.ndarray | Sequence[int], vocab: int, what: str) -> None:
    top = int(np.max(ids)) if len(ids) else 0
    if top >= vocab:
        raise UserError(f"{what} produces token id {top}, outside the model's vocabulary of "
                        f"{vocab}.", "Use the tokenizer that belongs to the model (or its "
                        "weights), or leave `tokenizer` null for the hashing fallback.")
