"""The operator catalogue: the ATen operators the suite's models execute, plus a curated long
tail, as generated data (``bench/function/catalogue.yaml``).

Regenerate it with ``invoke function-catalogue`` (``python -m bench.tools.function_catalogue
--write``, which needs the workloads and the suites, so it is not here): every model workload
is traced once on the CPU at its small configuration (``bench.function.trace``), and so is
every long-tail operator (``bench.function.longtail``).
Each operator overload seen becomes an entry: where it was seen, in which phase, whether
training differentiates it, the argument forms seen, and up to ``trace.KEEP`` replayable calls.
Each call is probed on the CPU once, here, to write down what the operator-function test may
ask of it: its dtype variants (``fp32``, and ``fp16``/``bf16``/``int8`` where the CPU runs it
with that dtype in place of its float32 inputs; ``native`` when its floating-point inputs are
not all float32: the call as recorded), its reference dtype (float64, or float32 where the CPU
has no float64 kernel) and whether its backward runs. The probes run in isolated processes
(``bench.function.probe``): some kernels crash when fed a dtype they do not check for.

Operators that are not the device's business are listed under ``excluded`` with the reason
(a CPU kernel reached through a portable operator that is tested, a profiler marker), so the
coverage test can tell "excluded on purpose" from "never seen".
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.documents import JsonObject, WorkerRow
from bench.errors import UserError

CATALOGUE_PATH = Path(__file__).resolve().parent / "catalogue.yaml"
VERSION = 1
FLOAT_VARIANTS = ("fp32", "fp16", "bf16")
VARIANTS = (*FLOAT_VARIANTS, "int8", "native")
REGENERATE = "invoke function-catalogue"
PROBE_TIMEOUT_S = 300.0
# (pattern, reason): operators no device is asked for.
EXCLUDED_RULES: tuple[tuple[str, str], ...] = (
    (r"^(?!aten\.)", "not an ATen operator (a profiler marker or the like)"),
    (r"^aten\.(_?mkldnn|_nnpack|miopen|_?cudnn)",
     "the CPU's (or a vendor library's) own kernel, reached through a portable operator "
     "that is tested (aten.lstm.input, aten.convolution)"),
    (r"^aten\._scaled_dot_product_flash_attention_for_cpu",
     "the CPU's attention kernel, reached through aten.scaled_dot_product_attention, which "
     "is tested (each device picks its own kernel for it)"),
)


@dataclass
class CatalogueCall:
    """A replayable call of an entry, with what the CPU probe found it supports."""

    source: str
    elements: int
    variants: list[str]
    reference: str  # dtype of the CPU reference
    backward: bool
    creation: bool
    args: list[Any]
    kwargs: dict[str, Any]
    note: str | None = None


@dataclass
class CatalogueEntry:
    op: str
    seen_in: list[str]
    phases: list[str]
    differentiated: bool
    calls_traced: int
    shapes: list[str]
    calls: list[CatalogueCall] = field(default_factory=list)
    note: str | None = None

    @property
    def variants(self) -> list[str]:
        return [v for v in VARIANTS if any(v in c.variants for c in self.calls)]

    def call_for(self, variant: str) -> tuple[int, CatalogueCall] | None:
        """The smallest call offering ``variant`` (calls are kept smallest first)."""
        return next(((i, c) for i, c in enumerate(self.calls) if variant in c.variants), None)


@dataclass
class Catalogue:
    entries: list[CatalogueEntry]
    excluded: list[dict[str, Any]]
    targets: list[dict[str, str]]
    generated_with: dict[str, str]
    sha256: str = ""

    @property
    def by_op(self) -> dict[str, CatalogueEntry]:
        return {e.op: e for e in self.entries}

    def covers(self, op: str) -> bool:
        return op in self.by_op or any(x["op"] == op for x in self.excluded)

    def summary(self) -> dict[str, Any]:
        """What a result records about the catalogue it tested against."""
        return {"sha256": self.sha256, "operators": len(self.entries),
                "excluded": len(self.excluded),
                "curated": sum(any(s.startswith("longtail:") for s in e.seen_in)
                               for e in self.entries),
                "generated_with": self.generated_with}


def excluded_reason(op: str) -> str | None:
    for pattern, reason in EXCLUDED_RULES:
        if re.search(pattern, op):
            return reason
    return None


# -- loading -------------------------------------------------------------------------------
def load(path: Path = CATALOGUE_PATH) -> Catalogue:
    """Read the catalogue; a missing or malformed file is a ``UserError`` naming the fix."""
    try:
        text = path.read_text(encoding="utf-8")
        doc = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"Operator catalogue {path} cannot be read: {exc}.",
                        f"Regenerate it with `{REGENERATE}`.") from exc
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise UserError(f"Operator catalogue {path} is not a version {VERSION} catalogue.",
                        f"Regenerate it with `{REGENERATE}`.")
    try:
        entries = [CatalogueEntry(**{**e, "calls": [CatalogueCall(**c) for c in e["calls"]]})
                   for e in doc["operators"]]
        return Catalogue(entries, doc["excluded"], doc["targets"], doc["generated_with"],
                         hashlib.sha256(text.encode()).hexdigest())
    except (KeyError, TypeError) as exc:
        raise UserError(f"Operator catalogue {path} is malformed ({exc}).",
                        f"Regenerate it with `{REGENERATE}`.") from exc


# -- probing -------------------------------------------------------------------------------
def _floats(call: dict[str, Any]) -> list[str]:
    from bench.function.args import tensors_in

    return [t["dtype"] for t in tensors_in([call["args"], call["kwargs"]])
            if t["dtype"] in ("float16", "bfloat16", "float32", "float64")]


def _has_float32_dtype_arg(value: Any) -> bool:
    if isinstance(value, dict):
        return value.get("dtype") == "float32" or any(_has_float32_dtype_arg(v)
                                                       for v in value.values()
                                                       if isinstance(v, list | dict))
    if isinstance(value, list):
        return any(_has_float32_dtype_arg(v) for v in value)
    return False


def probe_items(uses: JsonObject) -> list[JsonObject]:
    """One probe item per kept call, with what may be asked of it: its floating-point
    variants when its floating inputs are float32 (or it creates float32), else ``native``;
    a backward when training differentiated it; int8 in place of its float32 inputs."""
    from bench.function.args import tensors_in
    from bench.function.compare import RANDOM_PACKETS, packet

    items = []
    for name in sorted(uses):
        if excluded_reason(name):
            continue
        use = uses[name]
        for call in sorted(use.kept.values(), key=lambda c: (c.elements, c.source)):
            raw = {"args": call.args, "kwargs": call.kwargs}
            floats = _floats(raw)
            creation = not tensors_in([raw["args"], raw["kwargs"]]) and \
                _has_float32_dtype_arg([raw["args"], raw["kwargs"]])
            vary = (bool(floats) and set(floats) == {"float32"}) or creation
            random = packet(name) in RANDOM_PACKETS
            items.append({"id": len(items), "op": name, "call": raw,
                          "source": call.source, "elements": call.elements,
                          "variants": list(FLOAT_VARIANTS) if vary else ["native"],
                          "creation": creation,
                          "try_backward": use.grad and vary and not random,
                          "try_int8": vary and not creation and not random})
    return items


def probe_calls(items: list[JsonObject], log: Any = print) -> dict[int, CatalogueCall]:
    """Run the probes in isolated processes (bench.function.probe); a call per item."""
    from bench.function.isolate import run_isolated

    def crashed(item: JsonObject, step: str, message: str, stderr: list[str]
                ) -> list[WorkerRow]:
        row: WorkerRow = {"case": item["id"], "pass": step,
                               "note": f"the CPU process crashed: {message}"}
        if step == "reference":
            row["reference"] = None
        else:
            row["ok"] = False
        return [row]

    run = run_isolated(items, "bench.function.probe", {}, PROBE_TIMEOUT_S, crashed)
    if run.crashes:
        log(f"{run.crashes} probe(s) crashed the CPU process (recorded in the calls' notes)")
    rows: dict[int, dict[str, WorkerRow]] = {}
    for row in run.rows:
        rows.setdefault(row["case"], {})[row["pass"]] = row
    out = {}
    for item in items:
        got = rows.get(item["id"], {})
        ref = got.get("reference", {})
        notes = []
        variants = list(item["variants"])
        reference = ref.get("reference")
        if reference is None:
            variants = []
            notes.append(f"not replayable on the CPU: {ref.get('note') or 'not probed'}")
        elif reference != "float64":
            notes.append(f"reference in float32: the CPU does not run it in float64 "
                         f"({ref.get('note')})")
        for v in ("fp16", "bf16"):
            if v in variants and not got.get(v, {}).get("ok"):
                variants.remove(v)
                notes.append(f"{v}: the CPU does not run it so: {got.get(v, {}).get('note')}")
        if got.get("int8", {}).get("ok"):
            variants.append("int8")
        elif "crashed" in (got.get("int8", {}).get("note") or ""):
            notes.append(f"int8: {got['int8']['note']}")
        backward = bool(got.get("backward", {}).get("ok"))
        if "crashed" in (got.get("backward", {}).get("note") or ""):
            notes.append(f"backward: {got['backward']['note']}")
        out[item["id"]] = CatalogueCall(item["source"], item["elements"], variants,
                                        reference or "float64", backward, item["creation"],
                                        item["call"]["args"], item["call"]["kwargs"],
                                        "; ".join(notes) or None)
    return out


def trace_longtail(recorder: Any, seed: int = 0) -> None:
    """Trace every long-tail operator at a tiny size, forward and backward, in float32."""
    import torch

    from bench.function.longtail import LONG_TAIL
    from bench.function.trace import recording

    for op in LONG_TAIL:
        gen = torch.Generator().manual_seed(seed)
        case = op.build(256, torch.float32, torch.device("cpu"), gen)
        inputs = list(case.inputs)
        for i in case.grad:
            inputs[i] = inputs[i].detach().requires_grad_(True)
        case.inputs = tuple(inputs)
        with recording(recorder, f"longtail:{op.name}"):
            out = case()
            if case.grad:
                from bench.function.args import flat_tensors

                outs = [t for t in flat_tensors(out) if t.requires_grad]
                grads = [torch.ones_like(t) for t in outs]
                torch.autograd.grad(outs, [case.inputs[i] for i in case.grad], grads,
                                    allow_unused=True)


def missing_from(cat: Catalogue, recorder: Any) -> dict[str, list[str]]:
    """Operators the recorder saw that ``cat`` neither lists nor excludes, with where."""
    seen = set(recorder.uses) | set(recorder.translated)
    return {op: sorted(recorder.uses[op].sources) if op in recorder.uses else []
            for op in sorted(seen) if not cat.covers(op)}


def assemble(recorder: Any, targets: list[dict[str, str]], log: Any = print) -> Catalogue:
    import torch

    entries: list[CatalogueEntry] = []
    excluded: list[dict[str, Any]] = []
    for raw, portable in sorted(recorder.translated.items()):
        excluded.append({"op": raw, "reason": f"the CPU's own kernel, recorded as the portable "
                                              f"{portable}, which is tested",
                         "seen_in": []})
    started = time.monotonic()
    items = probe_items(recorder.uses)
    probed = probe_calls(items, log)
    calls_of: dict[str, list[CatalogueCall]] = {}
    for item in items:
        calls_of.setdefault(item["op"], []).append(probed[item["id"]])
    for name in sorted(recorder.uses):
        use = recorder.uses[name]
        reason = excluded_reason(name)
        if reason:
            known = next((x for x in excluded if x["op"] == name), None)
            if known is None:
                excluded.append({"op": name, "reason": reason, "seen_in": sorted(use.sources)})
            else:
                known["seen_in"] = sorted(use.sources)
            continue
        calls = calls_of.get(name, [])
        entries.append(CatalogueEntry(
            op=name, seen_in=sorted(use.sources), phases=sorted(use.phases),
            differentiated=use.grad, calls_traced=use.calls, shapes=list(use.shapes),
            calls=calls, note=None if calls else f"no replayable call: {use.unrecordable}"))
    log(f"probed {len(entries)} operators on the CPU in {time.monotonic() - started:.1f} s")
    import diffusers
    import transformers

    return Catalogue(entries, sorted(excluded, key=lambda x: x["op"]), targets,
                     {"torch": str(torch.__version__),
                      "transformers": str(transformers.__version__),
                      "diffusers": str(diffusers.__version__)})


def to_yaml(cat: Catalogue) -> str:
    header = ("# The operator catalogue: generated data, do not edit by hand.\n"
              f"# Regenerate: `{REGENERATE}` (python -m bench.tools.function_catalogue --write).\n"
              "# docs/function.md explains every field.\n")
    doc = {"version": VERSION, "generated_with": cat.generated_with, "targets": cat.targets,
           "excluded": cat.excluded,
           "operators": [{**{k: v for k, v in asdict(e).items() if k != "calls"},
                          "calls": [asdict(c) for c in e.calls]} for e in cat.entries]}
    return header + yaml.safe_dump(doc, sort_keys=False, width=100, default_flow_style=None)


def write(cat: Catalogue, path: Path = CATALOGUE_PATH) -> Path:
    from bench.jsonio import atomic_write_text

    atomic_write_text(path, to_yaml(cat))
    return path
