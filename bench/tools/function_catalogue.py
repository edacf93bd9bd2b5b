"""Regenerate the operator catalogue (``bench/function/catalogue.yaml``): ``invoke
function-catalogue`` (``python -m bench.tools.function_catalogue --write``).

Every mode of every model workload is traced once on the CPU at its small configuration
(``bench.function.trace``), plus each reduced precision a bundled suite trains a model in
under autocast, and so is every long-tail operator (``bench.function.longtail``); the calls
are probed and assembled by ``bench.function.catalogue``, which also reads the file. The
tracing needs the workloads and the suites, so it lives here: ``bench/function/`` is imported
by the workloads and must not import them, nor the suite loader (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench.config import available_suites, load_suite
from bench.devices import get_backend
from bench.errors import UserError
from bench.function.catalogue import (
    CATALOGUE_PATH,
    REGENERATE,
    VARIANTS,
    Catalogue,
    assemble,
    load,
    missing_from,
    trace_longtail,
    write,
)
from bench.function.trace import (
    MODEL_GROUPS,
    OpRecorder,
    Target,
    first_point_params,
    recording,
)
from bench.rules import RunRules
from bench.workload import WorkloadContext, all_workloads, get_workload

# Autocast's casts and the loss scaler's operators are the same whichever model runs them:
# reduced precisions are traced on the cheapest model that the suites train under autocast.
AUTOCAST_WORKLOAD = "resnet"


def default_targets() -> list[Target]:
    """Every mode of every model workload at fp32, plus each (mode, reduced precision) that a
    bundled suite runs a model in under autocast, traced on ``AUTOCAST_WORKLOAD``."""
    workloads = all_workloads()
    # the product's workloads only: a test session also registers its own (tests/)
    targets = {Target(name, mode) for name, cls in workloads.items()
               if cls.group in MODEL_GROUPS and not cls.__module__.startswith("tests.")
               for mode in cls.modes}
    for suite in available_suites():
        for entry in load_suite(suite).entries:
            cls = workloads[entry.workload]
            if cls.group in MODEL_GROUPS and entry.precision in ("fp16", "bf16") and \
                    cls.default_precision == "fp32" and \
                    entry.mode in workloads[AUTOCAST_WORKLOAD].modes:
                targets.add(Target(AUTOCAST_WORKLOAD, entry.mode, entry.precision))
    return sorted(targets, key=lambda t: (t.workload, t.mode, t.precision))


def trace_workload(target: Target, recorder: OpRecorder, seed: int = 0) -> float:
    """Run ``target`` once inside ``recorder``: setup untimed and unrecorded, then one
    iteration of its own measurement (grids cut to their first point); returns the seconds
    it took."""
    cls = get_workload(target.workload)
    rules = RunRules(warmup_iters=0, min_iters=1, min_duration_s=0.0, repeats=1)
    ctx = WorkloadContext(backend=get_backend("cpu"), mode=target.mode,
                          params=first_point_params(cls.configs["small"]),
                          precision=target.precision, seed=seed, rules=rules)
    workload = cls(ctx)
    torch.manual_seed(seed)
    start = time.monotonic()
    workload.setup()
    with recording(recorder, target.source):
        workload.measure()
    return time.monotonic() - start


def trace_all(targets: list[Target] | None = None, longtail: bool = True,
              log: Any = print) -> tuple[OpRecorder, list[Target]]:
    """Trace every target (default: every model workload) and the long tail."""
    targets = default_targets() if targets is None else targets
    recorder = OpRecorder()
    for target in targets:
        seconds = trace_workload(target, recorder)
        log(f"traced {target.source}: {seconds:.1f} s, {len(recorder.uses)} operators so far")
    if longtail:
        trace_longtail(recorder)
        log(f"traced the long tail: {len(recorder.uses)} operators")
    return recorder, targets


def generate(targets: list[Target] | None = None, longtail: bool = True,
             log: Any = print) -> Catalogue:
    """Trace, probe and assemble a catalogue (not written: see ``write``)."""
    recorder, targets = trace_all(targets, longtail, log)
    return assemble(recorder, [t.as_dict() for t in targets], log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tools.function_catalogue",
                                     description="Regenerate the operator catalogue.")
    parser.add_argument("--write", action="store_true", help=f"write {CATALOGUE_PATH.name}")
    parser.add_argument("--out", type=Path, default=CATALOGUE_PATH, help="where to write it")
    parser.add_argument("--check", action="store_true",
                        help="only trace and list what the checked-in catalogue lacks")
    args = parser.parse_args(argv)
    start = time.monotonic()
    if args.check:
        try:
            checked_in = load(args.out)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        recorder, _targets = trace_all()
        missing = missing_from(checked_in, recorder)
        for op, where in missing.items():
            print(f"missing: {op} (seen in {', '.join(where) or 'a translated kernel'})")
        print(f"{len(missing)} operator(s) missing from {args.out}"
              + (f"; regenerate it with `{REGENERATE}`" if missing else ""))
        return 1 if missing else 0
    cat = generate()
    variants = {v: sum(v in e.variants for e in cat.entries) for v in VARIANTS}
    print(f"{len(cat.entries)} operators ({', '.join(f'{v} {n}' for v, n in variants.items())}),"
          f" {len(cat.excluded)} excluded, {time.monotonic() - start:.0f} s")
    if args.write:
        print(f"wrote {write(cat, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
