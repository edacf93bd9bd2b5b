"""One repeat of one workload, in a fresh process: ``python -m bench.child SPEC OUT``.

The parent (``bench.runner``) starts this module per repeat, so a crash, a leak or an
out-of-memory in one measurement cannot spoil the next. The child writes its measurement (or
its failure) to OUT atomically and reports progress on stdout as JSON lines prefixed with
``bench.events.PROGRESS_PREFIX``.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import Entry
from bench.documents import CompileRecord, HostThreads, PointDoc, ThreadsRequested
from bench.events import emit_progress
from bench.records import RepeatResult, RepeatSpec, repeat_result
from bench.timing import first_step

TRACEBACK_LINES = 30
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def apply_device_settings(settings: ThreadsRequested) -> None:
    """Pin this process and size its thread pools, before torch is imported.

    Called first in a child's ``main``: the OpenMP runtime reads its thread count when torch
    loads, and the affinity set here is inherited by every thread and by the data-loader
    workers and ranks the repeat starts. In-process callers (tests) never pin themselves.
    """
    import os

    from bench.config import DeviceSettings

    wanted = DeviceSettings.from_dict(settings).effective()
    if wanted.cpus:
        os.sched_setaffinity(0, wanted.cpus)
    if wanted.threads:
        for name in THREAD_ENV:
            os.environ[name] = str(wanted.threads)
    import torch

    if wanted.threads:
        torch.set_num_threads(wanted.threads)
    if wanted.interop_threads:
        torch.set_num_interop_threads(wanted.interop_threads)


def host_threads() -> HostThreads:
    """The thread pools and CPUs this repeat actually ran with (provenance)."""
    import os

    import torch

    from bench.config import format_cpus

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return {"threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "cpus": format_cpus(cpus) if cpus else None, "cpu_count": len(cpus) or None,
            "env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ}}


def partial_path(out_path: Path) -> Path:
    """Where a repeat keeps the grid points measured so far (read if it never finishes)."""
    return out_path.with_name(out_path.name + ".partial")


@dataclass
class Measured:
    """The repeat's result and the live objects that made it (they stay in this process)."""

    result: RepeatResult
    backend: Any = None
    workload: Any = None


def run_repeat(spec: RepeatSpec, out_path: Path | None = None) -> RepeatResult:
    # here, not at the top: bench.devices loads torch, which must wait for
    # apply_device_settings
    from bench.devices.base import cpu_fallbacks

    started = time.time()
    entry = spec.entry

    def save_points(points: list[PointDoc]) -> None:
        if out_path is not None:
            from bench.jsonio import atomic_write_json, sanitize

            atomic_write_json(partial_path(out_path), sanitize({"points": points}))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        measured = _measure(spec, save_points)
    result, backend, workload = measured.result, measured.backend, measured.workload
    shown = set()
    # Still written once each, as Python's default filter would (the parent keeps the child's
    # stderr for the error message of a failed repeat).
    for w in caught:
        key = (str(w.message), w.category, w.filename, w.lineno)
        if key not in shown:
            shown.add(key)
            sys.stderr.write(warnings.formatwarning(w.message, w.category, w.filename,
                                                    w.lineno))
    if backend is not None:
        try:
            if "memory" not in result:  # the function check records it before it runs
                own = workload.memory_stats() if workload is not None else None
                result["memory"] = own or backend.memory_stats().as_dict()
            result["device"] = backend.info()
        except Exception as exc:
            result.setdefault("device", {"error": str(exc)})
        result["host_threads"] = host_threads()
    if workload is not None:
        result["precision_used"] = workload.precision_used
        result["precision_reason"] = workload.precision_reason
        result["info"] = workload.info()
        if entry.substitution:
            result["info"]["substitution"] = entry.substitution
        fallbacks = cpu_fallbacks(caught)
        if fallbacks:
            result["info"]["cpu_fallback"] = fallbacks
        result["series"] = workload.series
        result["devices_used"] = list(workload.devices_used)
    result["started_at"] = started
    result["ended_at"] = time.time()
    return repeat_result(result)


def compile_workload(workload: Any, backend: Any, requested: bool) -> CompileRecord:
    """``torch.compile`` the workload's model in place when asked; what was done, for the
    result. Compiling is lazy: the first iteration pays for it (the cold start shows it)."""
    if not requested:
        return {"requested": False, "used": False, "mode": "eager"}
    from bench.errors import Unsupported

    reason = backend.compile_unsupported()
    if reason is not None:
        raise Unsupported(f"torch.compile: {reason}")
    modules = workload.compile_model()
    if not modules:
        raise Unsupported(f"torch.compile: workload {workload.name} has no model to compile "
                          "(it times operators, copies or collectives)")
    return {"requested": True, "used": True, "mode": "torch.compile", "backend": "inductor",
            "modules": modules}


def check_compiled(record: CompileRecord) -> None:
    """After the measurement: how many graphs TorchDynamo compiled. None means the model ran
    eager after all (a call path Dynamo skipped), and the record says so rather than claim a
    compiled figure."""
    if not record.get("used"):
        return
    try:
        from torch._dynamo.utils import counters

        graphs = int(counters["stats"]["unique_graphs"])
    except Exception:  # a private counter: if it moves, the record stays as it was
        return
    record["graphs"] = graphs
    if graphs == 0:
        record.update(used=False, mode="eager", reason="torch.compile was applied but "
                      "TorchDynamo compiled no graph: the figures are eager")


def compile_failure(exc: BaseException, entry: Entry) -> bool:
    """A compiled run that failed inside TorchDynamo or its backend: the stack cannot
    compile this model on this device (recorded ``unsupported`` with the message)."""
    if not entry.compile:
        return False
    dynamo = sys.modules.get("torch._dynamo.exc")
    base = getattr(dynamo, "TorchDynamoException", None)
    return base is not None and isinstance(exc, base)


def _measure(spec: RepeatSpec,
             save_points: Callable[[list[PointDoc]], None]) -> Measured:
    from bench.devices import get_backend
    from bench.errors import Unsupported
    from bench.workload import WorkloadContext, get_workload

    entry = spec.entry
    backend = None
    workload = None
    try:
        import torch

        backend = get_backend(spec.vendor)
        torch.manual_seed(spec.seed)
        cls = get_workload(entry.workload)
        ctx = WorkloadContext(backend=backend, mode=entry.mode, params=entry.params,
                              precision=entry.precision, seed=spec.seed, rules=entry.rules,
                              progress=emit_progress, save_points=save_points,
                              placement=spec.placement)
        workload = cls(ctx)
        # fp32 means fp32 on every device (cuDNN would use TF32 for convolutions by default);
        # a workload that falls back to another precision sets it again.
        workload.extra["tf32"] = backend.set_tf32(entry.precision == "tf32")
        emit_progress({"phase": "setup"})
        t0 = time.monotonic()
        workload.setup()
        backend.synchronize()
        setup_s = time.monotonic() - t0
        workload.extra["compile"] = compile_workload(workload, backend, entry.compile)
        backend.reset_peak_memory()
        with first_step() as first:
            measurement = (_measure_scenario(spec, workload) if entry.scenario
                           else workload.measure())
        backend.synchronize()
        check_compiled(workload.extra["compile"])
        result: RepeatResult = {"status": "ok", **measurement,
                                  "cold_start": {"load_s": setup_s,
                                                 "first_iter_s": first.latency_s}}
        if entry.rules.function_check and spec.repeat == 0:
            # After the timed loop, so it disturbs no measurement; memory as it was then.
            from bench.function.model import workload_check

            result["memory"] = workload.memory_stats() or backend.memory_stats().as_dict()
            emit_progress({"phase": "function", "message": "model function check"})
            check = workload_check(workload)
            if check is not None:
                result["function"] = check
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        if isinstance(exc, Unsupported) or compile_failure(exc, entry):
            status = "unsupported"
        elif backend is not None and backend.is_oom(exc):
            status = "oom"
        else:
            status = "error"
        tb = traceback.format_exception(exc)
        result = {"status": status, "error": {
            "type": type(exc).__name__, "message": str(exc) or type(exc).__name__,
            "traceback": "".join(tb).splitlines()[-TRACEBACK_LINES:]}}
    return Measured(result, backend, workload)


def _measure_scenario(spec: RepeatSpec, workload: Any) -> Any:
    """An MLPerf scenario entry: the workload served to LoadGen (``bench.scenarios``), its
    logs written where the parent keeps them (the run directory's ``loadgen/``)."""
    import tempfile

    from bench.scenarios.measure import measure_scenario
    from bench.scenarios.rules import ScenarioRules

    log_dir = spec.log_dir or tempfile.mkdtemp(prefix="bench-loadgen-")
    root = spec.run_dir
    timeout_s = spec.entry.rules.timeout_s
    # The Server search must end inside the repeat's timeout, leaving the result time to be
    # written: a tenth of the timeout, at least 10 s.
    deadline = repeat_deadline(timeout_s) - max(10.0, 0.1 * timeout_s)
    return measure_scenario(workload, ScenarioRules(**(spec.entry.scenario_rules or {})),
                            Path(log_dir), Path(root) if root else None, deadline)


def repeat_deadline(timeout_s: float) -> float:
    """When (``time.monotonic``) the runner stops this process: its timeout counts from the
    process's start (``psutil``'s creation time, before Python and torch were loaded)."""
    import psutil

    age_s = max(time.time() - psutil.Process().create_time(), 0.0)
    return time.monotonic() - age_s + timeout_s


def main(argv: list[str]) -> int:
    from bench.jsonio import atomic_write_json, sanitize
    from bench.watchdog import die_with_parent

    die_with_parent()  # a parent killed with SIGKILL takes its hung child with it
    spec_path, out_path = Path(argv[0]), Path(argv[1])
    raw = json.loads(spec_path.read_text(encoding="utf-8"))
    try:
        apply_device_settings(raw["entry"].get("device") or {})
    except (OSError, RuntimeError, ValueError) as exc:
        atomic_write_json(out_path, {"status": "error", "error": {
            "type": type(exc).__name__, "message": "the device settings (threads, CPUs) could "
            f"not be applied: {exc}", "traceback": []}})
        return 0
    spec = RepeatSpec.from_dict(raw)
    result = run_repeat(spec, out_path)
    atomic_write_json(out_path, sanitize(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
