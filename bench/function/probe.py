"""The catalogue's CPU probes in a process of their own: ``python -m bench.function.probe SPEC
OUT``.

When the catalogue is generated, every kept call is run on the CPU to find what the
operator-function test may ask of it (``bench.function.catalogue``): the reference dtype,
whether it takes fp16 and bf16 in place of its float32 inputs (the loss scaler's operators,
for one, take float32 scales by definition), whether its backward runs, and whether it takes
int8. Some kernels crash the process when fed
a dtype they do not check for (an LSTM given int8 weights), so the probes run here, one event
per step, under ``bench.function.isolate``: a crash only marks the step it happened in.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.documents import JsonObject, WorkerEvent

STEPS = ("reference", "fp16", "bf16", "backward", "int8")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _run(op: str, call: JsonObject, variant: str, reference: str, grad: bool,
         creation: bool, device_side: bool = False) -> None:
    import torch

    from bench.function import replay

    fn = replay.resolve(op)
    prepared = replay.prepare(call, variant, torch.device("cpu"), 0, reference, grad=grad,
                              creation=creation)
    side = prepared.device if device_side else prepared.reference
    out = replay.call_op(fn, side, clone_leaves=grad and replay.is_inplace(op))
    if grad:
        outs = replay.differentiable_outputs(out)
        if not outs:
            raise RuntimeError("no output depends on a differentiable input")
        replay.backward(out, side.leaves, replay.output_gradients(outs, 0, torch.device("cpu")))


def probe(item: JsonObject, emit: Any) -> None:
    """The steps of one call: ``reference`` (float64, else float32, else not replayable),
    ``backward`` (float64 backward runs) and ``int8`` (the CPU takes int8 for its float32
    inputs), each announced before it runs."""
    op, call, first = item["op"], item["call"], item["variants"][0]
    creation = item["creation"]
    emit({"event": "start", "case": item["id"], "pass": "reference"})
    reference, note = None, None
    for dtype in ("float64", "float32"):
        try:
            _run(op, call, first, dtype, False, creation)
            reference = dtype
            break
        except Exception as exc:
            note = _first_line(exc)
    emit({"event": "row", "row": {"case": item["id"], "pass": "reference",
                                  "reference": reference, "note": note}})
    if reference is None:
        return
    reduced = [v for v in ("fp16", "bf16") if v in item["variants"]]
    steps = [*((v, True) for v in reduced), ("backward", item["try_backward"]),
             ("int8", item["try_int8"])]
    for step, wanted in steps:
        if not wanted:
            continue
        emit({"event": "start", "case": item["id"], "pass": step})
        try:
            if step == "backward":
                _run(op, call, "fp32", reference, True, creation)
            elif step == "int8":
                _run(op, call, "int8", reference, False, creation)
            else:
                _run(op, call, step, reference, False, creation, device_side=True)
            ok, why = True, None
        except Exception as exc:
            ok, why = False, _first_line(exc)
        emit({"event": "row", "row": {"case": item["id"], "pass": step, "ok": ok,
                                      "note": why}})


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    with open(argv[1], "a", encoding="utf-8") as out:
        def emit(event: WorkerEvent) -> None:
            out.write(json.dumps(event) + "\n")
            out.flush()

        for item in spec["items"]:
            probe(item, emit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
