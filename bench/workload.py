"""The workload interface and the registry of workloads by name.

A workload builds its model and synthetic on-device data in ``setup`` and does one iteration
in ``step`` (returning the items it processed). The harness owns the timing (``bench.timing``),
so every workload is measured by the same rules. Workloads whose measurement is not a loop of
identical steps (a grid of generation lengths, an operator sweep) override ``measure``.

With the run rule ``input_variants`` K > 1 (the audit's caching check) the default
``measure`` cycles the synthetic inputs named in ``input_attrs`` through K permuted copies
(``bench.data.variants``); a workload that cannot vary its inputs runs as usual and says why
in its info.

The workloads themselves (``bench/workloads/``, and the modules ``BENCH_WORKLOAD_MODULES``
names) register their classes here with ``@register``; ``get_workload`` imports them by name
(``bench.plugins``). So this module sits low in the layers: the suite loader, the runner, the
LLM helpers and the tools find a workload through it and never import ``bench.workloads``,
which sits above everything a workload uses (docs/architecture.md, "The layers").
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from bench.data.variants import make_variants, variants_info
from bench.devices import DeviceBackend
from bench.devices.base import PRECISION_DTYPES
from bench.distributed import Placement
from bench.documents import Info, Metrics, Params, PointDoc, RepeatResult
from bench.errors import Unsupported, UserError
from bench.flops import WorkProbe
from bench.plugins import import_workload_modules
from bench.rules import RunRules
from bench.timing import ProgressFn, StreamStep, concurrent_loop, timed_loop

if TYPE_CHECKING:
    from bench.function.model import ModelProbe


@dataclass
class WorkloadContext:
    backend: DeviceBackend
    mode: str
    params: Params
    precision: str
    seed: int
    rules: RunRules
    progress: ProgressFn = field(default=lambda _event: None)
    # Grid workloads hand over the points measured so far after each point: if the repeat
    # then times out or is killed, those points are kept in the result.
    save_points: Callable[[list[PointDoc]], None] = field(
        default=lambda _points: None)
    # Where the launcher placed this part of the entry (nodes, ranks per node, rendezvous).
    placement: Placement = field(default_factory=Placement)

    @property
    def device(self) -> torch.device:
        return self.backend.device(0)


class Workload(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    group: ClassVar[str]  # report grouping: cv, nlp, llm, micro
    modes: ClassVar[tuple[str, ...]]
    item_unit: ClassVar[str]  # what one item is: images, sequences, tokens, GEMMs
    configs: ClassVar[dict[str, Params]]  # named parameter sets: small, full
    default_precision: ClassVar[str] = "fp32"
    # Attributes holding the on-device synthetic inputs that step() reads every iteration,
    # set in synthetic mode only: the default measure() varies them (run rule input_variants).
    input_attrs: ClassVar[tuple[str, ...]] = ()
    # A workload whose own measure() cycles its inputs under input_variants (make_input_variants)
    # says so here, so the audit's caching check knows whom to re-run with distinct inputs.
    varies_inputs: ClassVar[bool] = False
    # A workload that runs several ranks (``bench.launch.launch_ranks``): a launcher may
    # place it on several nodes; the others run once, on one device of one node.
    distributed: ClassVar[bool] = False
    # Post-training int8 flow the workload supports for inference (bench.quantize): "static"
    # or "dynamic"; None: int8 is the device's business (GEMM) or not offered.
    int8_kind: ClassVar[str | None] = None

    def __init__(self, ctx: WorkloadContext) -> None:
        self.ctx = ctx
        self.params = ctx.params
        self.precision_used = ctx.precision
        self.precision_reason: str | None = None
        self.series: dict[str, list[float]] = {}
        self.extra: Info = {}
        # Local indices of the devices this node's ranks use: telemetry reports these.
        self.devices_used: list[int] = [0]

    # -- to implement ------------------------------------------------------------------
    @abstractmethod
    def setup(self) -> None:
        """Build the model and the input data on the device (not timed)."""

    def step(self) -> int:
        """One iteration; returns the number of items processed."""
        raise NotImplementedError(f"{self.name} defines neither step() nor measure()")

    @classmethod
    def places_on_every_node(cls, params: Params) -> bool:
        """Whether an entry with these parameters runs on every node of a multi-node run
        together (its ranks joined by one rendezvous), rather than once, on the first node."""
        return cls.distributed

    @classmethod  # noqa: B027 - an optional hook: most workloads accept any known param
    def validate_params(cls, params: Params) -> None:
        """Refuse parameter values that make the measurement meaningless (``UserError``).

        Called when the suite is loaded, so a bad value stops the run before anything starts.
        """

    @classmethod  # noqa: B027 - an optional hook, like validate_params
    def validate_rules(cls, rules: RunRules) -> None:
        """Refuse run rules the workload's protocol forbids (``UserError``), at suite load."""

    def memory_stats(self) -> Info | None:
        """The device memory of the measurement where the harness's own process did not do
        the work (ranks started by a launcher); None: the backend's figures of this process."""
        return None

    def metrics(self, loop: RepeatResult) -> Metrics:
        """Workload-specific metrics derived from the timed loop (e.g. FLOP/s)."""
        return {}

    @classmethod
    def work_probe(cls, mode: str, params: Params, precision: str,
                   info: Info) -> WorkProbe | None:
        """One batch at the configured shape, for counting the FLOPs of an item.

        Called by the runner once per result (and by ``invoke import`` for a published
        table's row) inside ``torch.device("meta")``: build the model and inputs as
        ``setup`` does, with no ``.to(device)``. ``info`` is what the run recorded in the
        result's ``workload.info`` (empty for a published row). None (the default): the
        workload is not a model (operator micro-benchmarks report FLOP/s themselves), or it
        reports ``flop_per_item`` from its own ``metrics``. See ``bench.flops``.
        """
        return None

    def compile_model(self) -> list[str]:
        """``--set ENTRY.compile=true``: compile the workload's model with ``torch.compile``
        (default backend) after ``setup``; returns the names of what was compiled.

        By default ``self.model`` is replaced by its compiled module (``step`` calls it; its
        parameters, which the optimiser holds, are the same). A workload that calls its model
        another way (``generate``, a pipeline) overrides this; an empty list (operator
        micro-benchmarks have no model) makes the compiled run ``unsupported``.
        """
        model = getattr(self, "model", None)
        if not isinstance(model, torch.nn.Module):
            return []
        self.model = torch.compile(model)
        return [type(model).__name__]

    # -- provided ----------------------------------------------------------------------
    def check_precision(self) -> None:
        """Refuse a precision the device cannot run (status ``unsupported``, recorded)."""
        p = self.ctx.precision
        if p == "int8" and self.int8_kind is not None:
            if self.ctx.mode != "infer":
                raise Unsupported(f"{self.name}: int8 is post-training quantization for "
                                  "inference; training runs in fp32, tf32, bf16 or fp16")
            reason = self.ctx.backend.int8_unsupported(self.int8_kind)
            if reason:
                raise Unsupported(reason)
            return
        if p not in PRECISION_DTYPES and p != "int8":
            raise Unsupported(f"precision {p!r} is not one of {', '.join(PRECISION_DTYPES)}")
        if not self.ctx.backend.supports_precision(p):
            raise Unsupported(f"{self.ctx.backend.vendor} device does not support {p}")

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Mixed precision for fp16/bf16 through ``torch.autocast``; nothing for fp32."""
        p = self.precision_used
        if p in ("fp16", "bf16"):
            with torch.autocast(self.ctx.backend.device_type, dtype=PRECISION_DTYPES[p]):
                yield
        else:
            yield

    def quantize_int8(self, example: tuple[Any, ...], calibration: list[tuple[Any, ...]],
                      check: list[tuple[Any, ...]],
                      logits: Callable[[Any], list[torch.Tensor]],
                      dynamic_types: tuple[type[torch.nn.Module], ...] = (torch.nn.Linear,),
                      ) -> None:
        """Replace ``self.model`` by its int8 version and record the flow and its agreement
        with the fp32 model on ``check`` (inputs the measurement does not calibrate on)."""
        from bench.quantize import compare, quantize

        fp32 = self.model
        q, how = quantize(fp32, self.int8_kind or "dynamic", example, calibration,
                          dynamic_types)
        ag = compare(fp32, q, check, logits)
        self.extra["int8"] = {**how, "agreement": ag.as_dict(),
                              "agreement_inputs": f"{len(check)} synthetic batch(es) of the "
                                                  "measured shape"}
        self.model = q

    def record(self, name: str, value: float) -> None:
        self.series.setdefault(name, []).append(float(value))

    def measure(self) -> RepeatResult:
        """Time ``step`` under the run rules; returns the repeat's measurement.

        With the parameter ``streams`` N > 1, N host threads each run their own copy of the
        workload (own input batch, own device stream where the device has streams) and the
        window covers them all (``bench.timing.concurrent_loop``)."""
        if self.streams > 1:
            loop = concurrent_loop(self.stream_steps(self.streams), self.ctx.rules,
                                   self.ctx.progress).as_dict()
        else:
            loop = timed_loop(self.varied_step(), lambda: self.ctx.backend.synchronize(),
                              self.ctx.rules, self.ctx.progress).as_dict()
        loop["metrics"] = self.metrics(loop)
        return loop

    # -- concurrent streams and serving ------------------------------------------------
    @property
    def streams(self) -> int:
        """Concurrent streams (the ``streams`` parameter of inference workloads; 1 without)."""
        return int(self.params.get("streams", 1) or 1)

    def for_stream(self, index: int) -> Workload:
        """A copy of this workload for stream ``index``: the same model, its own inputs.

        Stream 0 keeps the original batch, stream i > 0 gets a permuted copy of it
        (``bench.data.variants``), so no two streams read the same tensors. A workload with
        other per-call state (a random generator) overrides this and renews it."""
        clone = copy.copy(self)
        if index > 0:
            from bench.data.variants import permuted_inputs, variant_seed

            for name in self.input_attrs:
                if hasattr(self, name):
                    setattr(clone, name, permuted_inputs(
                        getattr(self, name), variant_seed(self.ctx.seed, 1000 + index)))
        return clone

    def stream_steps(self, count: int) -> list[StreamStep]:
        backend = self.ctx.backend
        out = []
        for i in range(count):
            clone = self.for_stream(i)
            stream = backend.new_stream()
            step = clone.varied_step()

            def run(step: Callable[[], int] = step, stream: Any = stream) -> int:
                with backend.stream_context(stream):
                    return step()

            out.append(StreamStep(run, lambda stream=stream: backend.stream_synchronize(stream)))
        backend.synchronize()  # every stream's inputs exist before any stream starts
        has_streams = backend.new_stream() is not None
        self.extra["streams"] = {
            "count": count, "device_streams": has_streams,
            "note": "one host thread per stream, each with its own input batch"
                    + ("; one device stream each" if has_streams else
                       "; this device has no streams: the threads share its cores")}
        return out

    def items_per_sample(self) -> int:
        """Items (``item_unit``) one served sample makes: 1, or e.g. the characters an LSTM
        generates per prompt."""
        return 1

    def serving_batch_size(self) -> int:
        """The batch size a serving system would form at most (the configuration's)."""
        return int(self.params.get("batch_size", 1))

    def serving_runners(self, count: int, rules: Any) -> list[Any]:
        """One runner per stream that serves any set of the scenario's sample library as a
        batch (``bench.scenarios``). The default gathers rows of the synthetic inputs named
        in ``input_attrs``; a workload without a fixed synthetic batch cannot be served."""
        from bench.scenarios.samples import WorkloadRunner, sample_library

        reason = self.fixed_inputs_reason()
        if reason is not None:
            raise Unsupported(f"no sample library for a scenario: {reason}")
        library = {name: sample_library(getattr(self, name), rules.performance_sample_count,
                                        self.ctx.seed) for name in self.input_attrs}
        backend = self.ctx.backend
        runners = []
        for i in range(count):
            stream = backend.new_stream()
            runners.append(WorkloadRunner(self.for_stream(i), library, stream,
                                          backend.stream_context,
                                          lambda s=stream: backend.stream_synchronize(s)))
        backend.synchronize()
        return runners

    @property
    def input_variants(self) -> int:
        """K of the run rule ``input_variants`` (1: the same inputs every iteration)."""
        return int(self.ctx.rules.input_variants)

    def varied_step(self) -> Callable[[], int]:
        """``step`` itself, or with K input variants a step that first sets the attributes
        of ``input_attrs`` to variant ``i % K`` (warm-up included).

        The variants are built here, before anything is timed, so a timed step does nothing
        beyond the attribute assignments. A workload that cannot vary its inputs (including
        one whose K copies do not fit in device memory) gets its plain ``step`` and the
        reason in its info: the check must never fail a run.
        """
        k = self.input_variants
        if k <= 1:
            return self.step
        reason = self.fixed_inputs_reason()
        if reason is not None:
            self.extra["input_variants"] = variants_info(k, reason=reason)
            return self.step
        names = self.input_attrs
        try:
            per_attr = [make_variants(getattr(self, name), k, self.ctx.seed) for name in names]
        except Exception as exc:
            if not self.ctx.backend.is_oom(exc):
                raise
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self.extra["input_variants"] = variants_info(
                k, reason=f"{k} copies of {', '.join(names)} do not fit in device memory "
                          f"({first_line}): ran on the one batch")
            return self.step
        variants = list(zip(*per_attr, strict=True))
        self.extra["input_variants"] = variants_info(k, list(names))
        counter = itertools.count()
        step = self.step

        def cycled() -> int:
            for name, value in zip(names, variants[next(counter) % k], strict=True):
                setattr(self, name, value)
            return step()

        return cycled

    def fixed_inputs_reason(self) -> str | None:
        """Why the default ``measure`` cannot vary this workload's inputs (None: it can)."""
        if not self.input_attrs:
            return f"workload {self.name} names no synthetic inputs to vary (input_attrs)"
        missing = [name for name in self.input_attrs if not hasattr(self, name)]
        if missing:
            return (f"no fixed synthetic batch on the device ({', '.join(missing)} not built): "
                    "in loader mode every step already reads a new batch")
        return None

    def make_input_variants(self, value: Any) -> list[Any]:
        """The K variants of an input that a workload's own ``measure`` builds (a grid
        point's prompt ids, a GEMM's operands); ``[value]`` alone when K is 1. That
        ``measure`` says what it varies with ``record_input_variants``."""
        return make_variants(value, self.input_variants, self.ctx.seed)

    def record_input_variants(self, names: list[str]) -> None:
        """Record, as the default ``measure`` does, the inputs a workload's own ``measure``
        varies; called before its first point, so a run that fails midway still says."""
        if self.input_variants > 1:
            self.extra["input_variants"] = variants_info(self.input_variants, names)

    def function_probe(self) -> ModelProbe | None:
        """What the model-function check compares (``bench.function.model``): the model, a
        slice of its inputs, its outputs or loss. None: the workload has no model to check."""
        return None

    def info(self) -> Info:
        """Facts about the built workload for the result (e.g. parameter count)."""
        out = dict(self.extra)
        k = self.input_variants
        if k > 1 and "input_variants" not in out and type(self).measure is not Workload.measure:
            out["input_variants"] = variants_info(
                k, reason=f"workload {self.name} times its own loop (a sweep or grid) that "
                          "does not cycle its inputs: it ran on its usual inputs")
        return out


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- the registry ---------------------------------------------------------------------------
_REGISTRY: dict[str, type[Workload]] = {}


def register(cls: type[Workload]) -> type[Workload]:
    """Class decorator: make ``cls`` a workload found by its ``name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two workloads are named {cls.name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def all_workloads() -> dict[str, type[Workload]]:
    """Every workload (built-in and ``BENCH_WORKLOAD_MODULES``), by name, A-Z."""
    import_workload_modules()
    return dict(sorted(_REGISTRY.items()))


def get_workload(name: str) -> type[Workload]:
    workloads = all_workloads()
    if name not in workloads:
        raise UserError(f"Unknown workload {name!r}.",
                        f"Choose one of: {', '.join(workloads)} (see `python -m bench list`).")
    return workloads[name]
