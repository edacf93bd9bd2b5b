"""Facts of the workloads' models as generated data (``bench/specs/model_facts.json``).

What a command needs to know about a workload without building its model: its group, item,
modes and configs, and per (workload, config, mode) the FLOPs of one item, the parameter
count and, for LLM generation, the weights one decode step reads. ``invoke import`` and the
report read it here, so neither builds a model nor imports torch; a measurement still counts
its own FLOPs at the shape it ran (``bench.flops``).

Regenerate it with ``invoke model-facts`` (``python -m bench.tools.model_facts --write``):
every built-in workload's ``work_probe`` is counted on PyTorch's meta device at each config,
as a measurement counts it. ``invoke model-facts --check`` (and ``tests/test_model_facts.py``)
regenerate it and fail, naming each difference, when the models and the file disagree.

Two rules carry a count to another shape of the same config (docs/report.md):

- FLOPs per item do not depend on the batch size: every counted operation (matrix products
  and convolutions) scales with the batch, so a row at batch 16 has the per-item FLOPs of
  the config's batch 128 (``tests/test_model_facts.py`` checks it per model);
- the least memory traffic of a generated token (``bytes_per_item``) is the weights one
  decode step reads, once for the whole batch, in the precision's element size, divided by
  the batch (:func:`decode_bytes_per_item`, which the LLM workloads' probes use too).

This module reads; it imports neither torch nor the workloads (the generator,
``bench.tools.model_facts``, does).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from bench.documents import JsonObject, Params
from bench.errors import UserError

FACTS_PATH = Path(__file__).resolve().parent / "specs" / "model_facts.json"
KIND = "bench.model-facts"
VERSION = 1
REGENERATE = "invoke model-facts"
# Bytes of one weight at a precision: what a memory-bound step reads. Unknown precisions
# ("mixed") have no figure, hence no memory bound.
ELEMENT_BYTES: dict[str, float] = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "int8": 1,
                                   "fp8": 1, "int4": 0.5}


def decode_bytes_per_item(weights_per_step: int, precision: str, batch: int) -> float | None:
    """The least memory traffic of one generated token: every weight a decode step reads,
    read once for the whole batch. None where the precision has no element size."""
    element = ELEMENT_BYTES.get(precision)
    if element is None or batch < 1:
        return None
    return weights_per_step * element / batch


@dataclass(frozen=True)
class Work:
    """One item's work in one (workload, config, mode), as counted at the config's shape."""

    flop_per_item: float | None
    parameters: int | None
    weights_per_step: int | None  # LLM generation: weights a decode step reads
    batch_key: str | None  # the config's batch parameter ("reference_point.batch" nested)
    batch: int | None  # its value in the config
    method: str
    reason: str | None  # why there is no FLOP count

    def bytes_per_item(self, precision: str, batch: int | None) -> float | None:
        if self.weights_per_step is None or batch is None:
            return None
        return decode_bytes_per_item(self.weights_per_step, precision, batch)


@dataclass(frozen=True)
class WorkloadFacts:
    name: str
    description: str
    group: str
    item_unit: str
    modes: tuple[str, ...]
    default_precision: str
    configs: dict[str, Params]  # config -> parameters
    work: dict[tuple[str, str], Work]  # (config, mode) -> work

    def work_at(self, config: str, mode: str) -> Work | None:
        return self.work.get((config, mode))

    def batch_key(self, mode: str) -> str | None:
        """The batch parameter of ``mode`` (the same in every config)."""
        return next((w.batch_key for (_c, m), w in self.work.items()
                     if m == mode and w.batch_key), None)


def _work(entry: JsonObject) -> Work:
    return Work(entry["flop_per_item"], entry["parameters"], entry["weights_per_step"],
                entry["batch_key"], entry["batch"], entry["method"], entry["reason"])


def parse(doc: JsonObject, where: str) -> dict[str, WorkloadFacts]:
    from bench.schema import validation_errors

    problems = validation_errors(doc, "model-facts")
    if problems:
        raise UserError(f"{where} breaks schemas/model-facts.schema.json at {problems[0]}.",
                        f"Regenerate it with `{REGENERATE}`; do not edit it by hand.")
    out = {}
    for name, wl in doc["workloads"].items():
        out[name] = WorkloadFacts(
            name, wl["description"], wl["group"], wl["item_unit"], tuple(wl["modes"]),
            wl["default_precision"], {c: v["params"] for c, v in wl["configs"].items()},
            {(c, m): _work(w) for c, v in wl["configs"].items() for m, w in v["work"].items()})
    return out


@functools.cache
def load(path: Path = FACTS_PATH) -> dict[str, WorkloadFacts]:
    """Every built-in workload's facts, by name."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"Model facts {path} cannot be read: {exc}.",
                        f"Regenerate it with `{REGENERATE}`.") from exc
    return parse(doc, f"Model facts {path}")
