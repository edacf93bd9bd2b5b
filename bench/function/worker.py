"""Operator-function cases in a process of their own: ``python -m bench.function.worker SPEC OUT``.

The parent (``bench.function.isolate``) gives a list of cases (operator, recorded call, dtype
variant); this process runs each on the device and on the CPU reference, forward then
backward, and appends one JSON line per event to OUT: ``start`` before a pass, ``row`` (its
verdict) after it. If the process dies or hangs, the parent knows from the last ``start``
which pass did it, records that pass as a crash and starts a new worker on the rest.

After a pass raises, the device is checked with a tiny computation; if that fails too (a
sticky device error poisons every later call in the process), the pass is recorded as a crash
and the worker exits with ``EXIT_DEVICE_LOST`` so the rest runs in a fresh process.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bench.documents import CaseItem, WorkerEvent, WorkerRow
from bench.function.isolate import EXIT_DEVICE_LOST


@dataclass(frozen=True)
class Case:
    """One operator call in one dtype variant (forward, then backward where it has one)."""

    id: int
    op: str
    call: int
    variant: str

    def as_dict(self) -> CaseItem:
        return {"id": self.id, "op": self.op, "call": self.call, "variant": self.variant}

    @classmethod
    def from_dict(cls, raw: CaseItem) -> Case:
        return cls(raw["id"], raw["op"], raw["call"], raw["variant"])


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:500]


def _tolerance_key(variant: str, side_args: Any) -> str:
    from bench.function.args import flat_tensors
    from bench.function.compare import dtype_key

    if variant in ("fp32", "fp16", "bf16"):
        return variant
    keys = {dtype_key(t.dtype) for t in flat_tensors(side_args) if t.is_floating_point()}
    for key in ("bf16", "fp16", "fp32"):
        if key in keys:
            return key
    return "fp32"


class CaseRunner:
    """Runs cases on one device backend; writes events to ``out``."""

    def __init__(self, backend: Any, catalogue: Any, seed: int, out: TextIO) -> None:
        self.backend = backend
        self.device = backend.device(0)
        self.catalogue = catalogue.by_op
        self.seed = seed
        self.out = out

    def emit(self, event: WorkerEvent) -> None:
        self.out.write(json.dumps(event) + "\n")
        self.out.flush()

    def healthy(self) -> str | None:
        """None when the device still computes; otherwise why not."""
        import torch

        try:
            value = (torch.ones(8, device=self.device) * 2).sum().item()
            self.backend.synchronize()
            return None if value == 16 else f"a check computation gave {value}, not 16"
        except Exception as exc:
            return _first_line(exc)

    def row(self, case: Case, which: str, cls: str, started: float, **extra: Any) -> WorkerRow:
        return {"case": case.id, "op": case.op, "call": case.call, "variant": case.variant,
                "pass": which, "class": cls, "seconds": time.monotonic() - started, **extra}

    def run(self, case: Case) -> bool:
        """Both passes of a case; False when the device is lost (the worker must exit)."""
        entry = self.catalogue[case.op]
        call = entry.calls[case.call]
        self.emit({"event": "start", "case": case.id, "pass": "forward"})
        row, lost = self.forward(case, entry, call)
        self.emit({"event": "row", "row": row})
        if lost:
            return False
        if call.backward and case.variant in ("fp32", "fp16", "bf16"):
            if row["class"] in ("unsupported", "skipped"):
                self.emit({"event": "row", "row": self.row(
                    case, "backward", "skipped", time.monotonic(),
                    message="not run: the forward pass did not run")})
                return True
            self.emit({"event": "start", "case": case.id, "pass": "backward"})
            row, lost = self.backward(case, entry, call)
            self.emit({"event": "row", "row": row})
            if lost:
                return False
        return True

    def _device_call(self, fn: Any, side: Any, clone: bool) -> tuple[Any, list[str]]:
        from bench.devices.base import cpu_fallbacks
        from bench.function import replay

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = replay.call_op(fn, side, clone_leaves=clone)
            self.backend.synchronize()
        return out, cpu_fallbacks(caught)

    def _failed(self, case: Case, which: str, started: float, exc: BaseException
                ) -> tuple[WorkerRow, bool]:
        why = self.healthy()
        if why is not None:
            return self.row(case, which, "crash", started, message=(
                f"{_first_line(exc)}; the device was unusable afterwards ({why})")), True
        return self.row(case, which, "unsupported", started, message=_first_line(exc),
                        error_type=type(exc).__name__), False

    def _verdict(self, case: Case, which: str, started: float, comparison: Any,
                 fallbacks: list[str], key: str) -> WorkerRow:
        cls = "pass" if comparison.ok else "wrong"
        if comparison.ok and fallbacks:
            cls = "cpu_fallback"
        extra: WorkerRow = {"tolerance": key, "max_abs_err": comparison.max_abs_err,
                                 "max_rel_err": comparison.max_rel_err,
                                 "err_over_tol": comparison.err_over_tol}
        if comparison.problems:
            extra["message"] = "; ".join(comparison.problems)[:1000]
        if fallbacks:
            extra["fallback"] = fallbacks[:3]
        return self.row(case, which, cls, started, **extra)

    def forward(self, case: Case, entry: Any, call: Any) -> tuple[WorkerRow, bool]:
        from bench.function import compare, replay

        started = time.monotonic()
        fn = replay.resolve(case.op)
        seed = replay.case_seed(self.seed, case.op, case.call, case.variant)
        raw = {"args": call.args, "kwargs": call.kwargs}
        try:
            prepared = replay.prepare(raw, case.variant, self.device, seed, call.reference,
                                      creation=call.creation)
            ref = replay.to_cpu(replay.call_op(fn, prepared.reference))
        except Exception as exc:
            return self.row(case, "forward", "skipped", started,
                            message=f"the CPU reference failed: {_first_line(exc)}"), False
        key = _tolerance_key(case.variant, prepared.device.args)
        try:
            out, fallbacks = self._device_call(fn, prepared.device, False)
            dev = replay.to_cpu(out)
        except Exception as exc:
            return self._failed(case, "forward", started, exc)
        if compare.packet(case.op) in compare.RANDOM_PACKETS:
            comparison = compare.compare_random(dev, ref)
        else:
            first = prepared.device.args[0] if prepared.device.args else None
            comparison = None
            if hasattr(first, "to"):
                comparison = compare.compare_indexed(case.op, dev, ref, replay.to_cpu(first),
                                                     prepared.device.args,
                                                     prepared.device.kwargs, key)
            if comparison is None:
                comparison = compare.compare_outputs(dev, ref, key,
                                                     factor=compare.widening(case.op))
        return self._verdict(case, "forward", started, comparison, fallbacks, key), False

    def backward(self, case: Case, entry: Any, call: Any) -> tuple[WorkerRow, bool]:
        import torch

        from bench.devices.base import cpu_fallbacks
        from bench.function import compare, replay

        started = time.monotonic()
        fn = replay.resolve(case.op)
        seed = replay.case_seed(self.seed, case.op, case.call, case.variant)
        raw = {"args": call.args, "kwargs": call.kwargs}
        inplace = replay.is_inplace(case.op)
        prepared = replay.prepare(raw, case.variant, self.device, seed, call.reference,
                                  grad=True, creation=call.creation)
        key = _tolerance_key(case.variant, prepared.device.args)
        dev_side, ref_side = prepared.device, prepared.reference
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = replay.call_op(fn, dev_side, clone_leaves=inplace)
                outs = replay.differentiable_outputs(out)
                grads = replay.output_gradients(outs, seed + 1, self.device)
                dev_grads = replay.backward(out, dev_side.leaves, grads)
                self.backend.synchronize()
            fallbacks = cpu_fallbacks(caught)
        except Exception as exc:
            return self._failed(case, "backward", started, exc)
        try:
            ref_out = replay.call_op(fn, ref_side, clone_leaves=inplace)
            ref_outs = replay.differentiable_outputs(ref_out)
            ref_grads = replay.backward(ref_out, ref_side.leaves,
                                        [g.detach().to("cpu", torch.float64) for g in grads])
        except Exception as exc:
            return self.row(case, "backward", "skipped", started,
                            message=f"the CPU reference failed: {_first_line(exc)}"), False
        if len(ref_outs) != len(outs):
            comparison = compare.Comparison(False, problems=[
                f"{len(outs)} differentiable outputs, reference {len(ref_outs)}"])
        else:
            dev_g = [replay.to_cpu(g) if g is not None else torch.zeros(leaf.shape)
                     for g, leaf in zip(dev_grads, dev_side.leaves, strict=True)]
            ref_g = [g if g is not None else torch.zeros(leaf.shape, dtype=torch.float64)
                     for g, leaf in zip(ref_grads, ref_side.leaves, strict=True)]
            comparison = compare.compare_outputs(dev_g, ref_g, key, "gradient",
                                                 compare.widening(case.op))
        return self._verdict(case, "backward", started, comparison, fallbacks, key), False


def main(argv: list[str]) -> int:
    from bench.devices import get_backend
    from bench.function.catalogue import load
    from bench.plugins import import_workload_modules

    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    # Extension modules (BENCH_WORKLOAD_MODULES) may register kernels for the device, as its
    # vendor's plugins do: this process must see what the measuring process sees.
    import_workload_modules()
    backend = get_backend(spec["vendor"])
    catalogue = load(Path(spec["catalogue"]))
    with open(argv[1], "a", encoding="utf-8") as out:
        runner = CaseRunner(backend, catalogue, spec["seed"], out)
        for raw in spec["items"]:
            case = Case.from_dict(raw)
            try:
                if not runner.run(case):
                    return EXIT_DEVICE_LOST
            except Exception as exc:  # a bug in the harness: record it, keep going
                runner.emit({"event": "row", "row": runner.row(
                    case, "forward", "skipped", time.monotonic(),
                    message=f"harness error: {_first_line(exc)}",
                    traceback=traceback.format_exc().splitlines()[-5:])})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
