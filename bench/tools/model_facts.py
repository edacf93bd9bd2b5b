"""Regenerate the model facts (``bench/specs/model_facts.json``) from the models: ``invoke
model-facts`` (``python -m bench.tools.model_facts --write``; ``--check`` lists where the file
and the models disagree and writes nothing).

Every built-in workload's ``work_probe`` is counted on PyTorch's meta device at each config,
as a measurement counts it (``bench.flops``). ``bench.model_facts`` reads the file without
torch; this needs the workloads, so it lives here (docs/architecture.md, "The layers").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench import model_facts as facts
from bench.documents import Params
from bench.flops import count_work
from bench.jsonio import atomic_write_text
from bench.plugins import builtin_workload_modules
from bench.workload import all_workloads


def _batch(params: Params, mode: str) -> tuple[str | None, int | None]:
    for key in ("batch_size", f"{mode}_batch_size"):
        if isinstance(params.get(key), int):
            return key, params[key]
    point = params.get("reference_point")
    if isinstance(point, dict) and isinstance(point.get("batch"), int):
        return "reference_point.batch", point["batch"]
    return None, None


def _count(cls: Any, mode: str, params: Params) -> dict[str, Any]:
    key, batch = _batch(params, mode)
    counted = count_work(lambda: cls.work_probe(mode, params, cls.default_precision, {}))
    if counted is None:
        return {"flop_per_item": None, "parameters": None, "weights_per_step": None,
                "batch_key": key, "batch": batch, "method": "",
                "reason": "no work probe: not a model workload (it reports FLOP/s itself) or "
                          "it reports flop_per_item from its own metrics"}
    return {"flop_per_item": counted.flop_per_item, "parameters": counted.parameters,
            "weights_per_step": counted.weights_per_step, "batch_key": key, "batch": batch,
            "method": counted.method, "reason": counted.reason}


def builtin_workloads() -> dict[str, Any]:
    """The product's workloads (not those ``BENCH_WORKLOAD_MODULES`` adds)."""
    modules = set(builtin_workload_modules())
    return {n: c for n, c in all_workloads().items() if c.__module__ in modules}


def generate(log: Any = lambda _m: None) -> dict[str, Any]:
    """The facts document, counted from the models now."""
    workloads: dict[str, Any] = {}
    for name, cls in builtin_workloads().items():
        configs = {}
        for config, params in cls.configs.items():
            started = time.monotonic()
            work = {mode: _count(cls, mode, params) for mode in cls.modes}
            configs[config] = {"params": json.loads(json.dumps(params)), "work": work}
            log(f"{name} {config}: {time.monotonic() - started:.1f} s")
        workloads[name] = {"description": cls.description, "group": cls.group,
                           "item_unit": cls.item_unit, "modes": list(cls.modes),
                           "default_precision": cls.default_precision, "configs": configs}
    versions = {"torch": str(torch.__version__)}
    for module in ("transformers", "diffusers"):
        versions[module] = str(getattr(__import__(module), "__version__", "?"))
    return {"kind": facts.KIND, "version": facts.VERSION, "generated_with": versions,
            "regenerate": facts.REGENERATE, "workloads": workloads}


def differences(old: dict[str, Any], new: dict[str, Any], path: str = "") -> list[str]:
    """Where two facts documents differ (``generated_with`` aside), one line each."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            if not path and key == "generated_with":
                continue
            where = f"{path}.{key}" if path else key
            if key not in old:
                out.append(f"{where}: missing from the file")
            elif key not in new:
                out.append(f"{where}: no longer in the models")
            else:
                out += differences(old[key], new[key], where)
        return out
    if isinstance(old, float | int) and isinstance(new, float | int) and \
            not isinstance(old, bool) and abs(old - new) <= 1e-9 * max(abs(old), abs(new)):
        return []
    return [] if old == new else [f"{path}: file {old!r}, models {new!r}"]


def to_text(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tools.model_facts",
                                     description="Regenerate the model facts from the models.")
    parser.add_argument("--write", action="store_true", help=f"write {facts.FACTS_PATH.name}")
    parser.add_argument("--check", action="store_true",
                        help="regenerate and list where the file disagrees (writes nothing)")
    parser.add_argument("--out", type=Path, default=facts.FACTS_PATH, help="the file")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.check:
        try:
            old = json.loads(args.out.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"error: {args.out} cannot be read: {exc}; run `{facts.REGENERATE}`",
                  file=sys.stderr)
            return 2
        diff = differences(old, generate())
        for line in diff:
            print(f"differs: {line}")
        print(f"{len(diff)} difference(s) between {args.out} and the models"
              + (f"; regenerate it with `{facts.REGENERATE}`" if diff else "")
              + f" ({time.monotonic() - started:.0f} s)")
        return 1 if diff else 0
    doc = generate(log=lambda m: print(m, flush=True))
    facts.parse(doc, "the generated facts")
    if args.write:
        atomic_write_text(args.out, to_text(doc))
        print(f"wrote {args.out} ({len(doc['workloads'])} workloads, "
              f"{time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
