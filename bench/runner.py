"""The parent side of a run: one child process per repeat, telemetry, result documents.

The parent samples telemetry for the whole run in a background thread (in the parent, so the
sampler never competes with the measured process for its interpreter lock), measures idle
power before the first workload, and starts each repeat as ``python -m bench.child`` in a new
process session. A repeat that raises, exceeds its timeout or is killed becomes that
workload's status; the next workload still runs, and every finished result is already on disk
(written atomically) before the next one starts.

The run directory is claimed atomically and keeps room for its last manifest
(``bench.rundir``); children die with the parent even when it is killed (``bench.watchdog``);
a write that fails for lack of space ends the run with a manifest true to what is on disk.

Each repeat's timed window also records what else used the machine (``bench.contention``:
other processes' CPU time, the benchmark threads' run-queue wait and the slowdown it implies,
steal, clock throttling, other processes on the device), and each result says whether its
measurement was ``disturbed`` by the suite's quiet thresholds. Before the first entry a
preflight says when the machine is busy; it never refuses to run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import __version__
from bench.child import partial_path
from bench.config import Entry, Suite
from bench.contention import ContentionMonitor, judge, throttle_figures
from bench.devices import DeviceBackend
from bench.distributed import Placement
from bench.documents import (
    CompileRecord,
    Contention,
    DeviceInfo,
    Disturbed,
    IdleRecord,
    Info,
    ManifestDoc,
    ManifestEntry,
    Metrics,
    PlacementRecord,
    Preflight,
    ProgressEvent,
    RepeatDoc,
    RepeatResult,
    ResultDoc,
    Snapshot,
    TelemetrySelection,
    Window,
    WindowFigures,
)
from bench.events import relay
from bench.flops import count_work, work_metrics
from bench.ids import MANIFEST_FILE, result_file, slug
from bench.jsonio import atomic_write_json, sanitize, seal
from bench.progress import Display
from bench.provenance import provenance
from bench.records import RepeatSpec, repeat_result
from bench.results import (
    EXPECTED_FAILURES,
    SCHEMA_VERSION,
    TelemetryContext,
    build_metrics,
    build_points,
    entry_idle,
    implausible_measurement,
    window_telemetry,
    workload_status,
)
from bench.rundir import (
    STORAGE_ERRNOS,
    StorageError,
    release_reserve,
    what_is_on_disk,
)
from bench.schema import validation_errors
from bench.telemetry import SAMPLE_FIELDS, Sampler, TelemetryAdapter, open_adapter
from bench.watchdog import PARENT_PID_ENV, Watchdog

STDERR_TAIL_LINES = 40
TERM_GRACE_S = 5.0
PREFLIGHT_S = 0.3  # the shortest look at the machine before the first entry
LOADGEN_DIR = "loadgen"  # LoadGen's summary and detail logs of scenario entries


def utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds")


def new_run_id(vendor: str, suite: str) -> str:
    """``<time>-<vendor>-<suite>-<random>``: a path id (bench.ids) whatever the suite file
    is called."""
    stamp = datetime.now(tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{slug(vendor)}-{slug(suite, 'suite')}-{uuid.uuid4().hex[:6]}"


@dataclass
class ChildRun:
    """Outcome of one child process: its result document, or why there is none."""

    result: RepeatResult
    returncode: int | None
    stderr_tail: list[str] = field(default_factory=list)


class Interrupted(Exception):
    pass


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """`docker stop` sends SIGTERM: treat it as Ctrl-C so finished results are kept."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the child's process group, then SIGKILL after a grace period."""
    for sig, wait in ((signal.SIGTERM, TERM_GRACE_S), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_child(spec: RepeatSpec, timeout_s: float,
              on_progress: Callable[[ProgressEvent], None],
              watchdog: Watchdog | None = None,
              on_start: Callable[[int | None], None] = lambda _pid: None) -> ChildRun:
    """One repeat in ``python -m bench.child``, in its own process group; with a
    ``watchdog``, the child and its scratch directory are cleaned up even if this process
    is killed. ``on_start`` gets the child's pid when it starts and None when it has ended
    (the telemetry measures that process tree in between)."""
    with tempfile.TemporaryDirectory(prefix="bench-child-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec.to_dict()), encoding="utf-8")
        stderr_path = Path(tmp) / "stderr.txt"
        with open(stderr_path, "w+", encoding="utf-8") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.child", str(spec_path), str(out_path)],
                stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", PARENT_PID_ENV: str(os.getpid())})
            if watchdog is not None:
                watchdog.watch(proc.pid, Path(tmp))
            log: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
            on_start(proc.pid)

            def pump() -> None:
                assert proc.stdout is not None
                relay(proc.stdout, on_progress, log.append)

            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            timed_out = False
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _stop(proc)
            except KeyboardInterrupt:
                _stop(proc)
                raise
            finally:
                if watchdog is not None and proc.returncode is not None:
                    watchdog.release(proc.pid)
                on_start(None)
            reader.join(timeout=5)
            stderr.seek(0)
            tail = [*log, *stderr.read().splitlines()][-STDERR_TAIL_LINES:]
        partial = partial_path(out_path)
        kept = json.loads(partial.read_text(encoding="utf-8")) if partial.exists() else {}
        if timed_out:
            return ChildRun(repeat_result({**kept, "status": "timeout", "error": {
                "type": "Timeout", "message": f"repeat exceeded its timeout of {timeout_s:g} s "
                f"(rules.timeout_s) and was stopped", "traceback": tail}}), proc.returncode,
                tail)
        if out_path.exists():
            return ChildRun(repeat_result(json.loads(out_path.read_text(encoding="utf-8"))),
                            proc.returncode, tail)
        code = proc.returncode
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            hint = " (the kernel's OOM killer sends SIGKILL)" if name == "SIGKILL" else ""
            return ChildRun(repeat_result({**kept, "status": "killed", "error": {
                "type": "Killed", "message": f"child process killed by {name}{hint}",
                "signal": name, "traceback": tail}}), code, tail)
        return ChildRun(repeat_result({"status": "error", "error": {
            "type": "ChildExit", "message": f"child process exited with code {code} without a "
            "result", "traceback": tail}}), code, tail)


def compile_record(entry: Entry, first: RepeatResult) -> CompileRecord:
    """Whether the figures are compiled (``torch.compile``) or eager, as the child did it;
    a compiled run that could not compile says why."""
    done = (first.get("info") or {}).get("compile")
    if done:
        return done
    if not entry.compile:
        return {"requested": False, "used": False, "mode": "eager"}
    why = (first.get("error") or {}).get("message") or "the repeat ended before compiling"
    return {"requested": True, "used": False, "mode": "eager", "reason": why}


def no_device_telemetry(vendor: str, adapter: TelemetryAdapter,
                        selection: TelemetrySelection) -> str | None:
    """Why the telemetry does not measure the device the workloads run on (None if it does).

    An accelerator run whose vendor telemetry failed falls back to host telemetry; the host's
    CPU utilisation and RAPL power must then never be reported as the accelerator's.
    """
    if adapter.measures == "device" or vendor == "cpu":
        return None
    return (f"no {vendor} device telemetry ({selection.get('note') or 'host adapter used'}); "
            "the series hold host readings")


def visible_device_indices(backend: DeviceBackend, devices: list[int] | None) -> list[int]:
    """The run's devices as its processes number them (0..n-1): telemetry samples them all."""
    if devices is not None:
        return list(range(len(devices)))
    try:
        return list(range(max(1, backend.device_count())))
    except Exception:
        return [0]


def placement_record(placement: Placement, info: Info,
                     devices_used: list[int]) -> PlacementRecord:
    """Where the entry ran, for the result: the launcher, world size and each node's ranks.

    A multi-rank workload says which node each rank ran on (``info.rank_nodes``); anything
    else ran once, on this node."""
    rank_nodes = info.get("rank_nodes") or [placement.node]
    nodes: dict[str, list[int]] = {}
    for rank, node in enumerate(rank_nodes):
        nodes.setdefault(str(node), []).append(rank)
    return {"launcher": placement.launcher, "job_id": placement.job_id,
            "world_size": int(info.get("world_size") or len(rank_nodes)),
            "nnodes": placement.nnodes, "node": placement.node,
            "node_rank": placement.node_rank, "devices": list(devices_used),
            "telemetry_devices": len(devices_used),
            "nodes": [{"node": n, "ranks": r} for n, r in nodes.items()],
            "per_node": placement.per_node}


def idle_record(figures: WindowFigures, duration_s: float, not_the_device: str | None,
                adapter: TelemetryAdapter) -> IdleRecord:
    """The idle baseline from the idle window's figures, per device where there are several."""
    idle: IdleRecord = {"duration_s": duration_s, "samples": figures["samples"],
                            "errors": figures["errors"]}
    if not_the_device:
        idle.update(power_w=None, util_pct=None, temp_c=None, energy_j=None,
                    reason=not_the_device)
        return idle
    idle.update(util_pct=figures.get("util_pct"), temp_c=figures.get("temp_c"),
                power_w=figures.get("power_w"), energy_j=figures.get("energy_integrated_j"),
                power_scope=adapter.scope.get("power_w"))
    if idle["power_w"] is None:
        idle["reason"] = adapter.unavailable.get("power_w", "no power samples")
    if figures.get("devices"):
        idle["devices"] = [{"index": d["index"], "power_w": d.get("power_w"),
                            "util_pct": d.get("util_pct"), "temp_c": d.get("temp_c")}
                           for d in figures["devices"]]
    return idle


class Runner:
    def __init__(self, suite: Suite, backend: DeviceBackend, out_dir: Path, run_id: str,
                 display: Display, argv: list[str], placement: Placement | None = None,
                 devices: list[int] | None = None, idle_file: Path | None = None,
                 label: str | None = None, require_quiet: bool = False) -> None:
        self.suite = suite
        self.backend = backend
        self.vendor = backend.vendor
        self.out_dir = out_dir
        self.run_id = run_id
        self.display = display
        self.argv = argv
        self.manifest: ManifestDoc = {}  # type: ignore[typeddict-item]  # set by _start_manifest
        self.device_info: DeviceInfo | None = None
        self.selection: TelemetrySelection = {}  # type: ignore[typeddict-item]  # set by run
        self.not_the_device: str | None = None
        self.watchdog: Watchdog | None = None
        self.placement = placement or Placement()
        self.device_indices = visible_device_indices(backend, devices)
        self.idle_file = idle_file
        self.label = label
        self.require_quiet = require_quiet

    # -- manifest --------------------------------------------------------------------
    def _write_manifest(self) -> None:
        try:
            atomic_write_json(self.out_dir / MANIFEST_FILE, sanitize(self.manifest))
        except OSError as exc:
            if exc.errno in STORAGE_ERRNOS:
                raise StorageError(f"cannot write {self.out_dir / MANIFEST_FILE}", exc) from exc
            raise

    def _start_manifest(self) -> None:
        self.manifest = {
            "schema_version": SCHEMA_VERSION,
            "kind": "bench.manifest",
            "run_id": self.run_id,
            "suite": {"name": self.suite.name, "path": str(self.suite.path)},
            "vendor": self.vendor,
            "state": "running",
            "started_at": utc_iso(time.time()),
            "ended_at": None,
            "bench_version": __version__,
            "placement": self.placement.to_dict(),
            "telemetry_note": self.selection.get("note"),
            "telemetry": self.selection,
            "idle": None,
            "preflight": None,
            "entries": [{"id": e.id, "workload": e.workload, "mode": e.mode,
                         "status": "pending", "file": None, "sha256": None}
                        for e in self.suite.entries],
        }
        self._write_manifest()

    def _item(self, entry: Entry) -> ManifestEntry:
        return next(item for item in self.manifest["entries"] if item["id"] == entry.id)

    def _record_entry(self, entry: Entry, status: str, doc: ResultDoc | None,
                      problems: list[str]) -> None:
        item = self._item(entry)
        item["status"] = status
        if doc is not None:
            item["file"] = result_file(entry.id)
            item["sha256"] = doc["sha256"]
            item["disturbed"] = (doc.get("disturbed") or {}).get("value")
        if problems:
            item["schema_problems"] = problems
        self._write_manifest()

    def _record_failure(self, entry: Entry, exc: Exception) -> None:
        message = f"the harness failed to record this workload: {type(exc).__name__}: {exc}"
        item = self._item(entry)
        item["status"] = "error"
        item["error"] = message
        self._write_manifest()
        self.display.note(f"{entry.id}: {message}")

    def _end_on_storage_error(self, exc: StorageError) -> int:
        """The disk is full (or read-only, or failing): nothing more can be recorded. Give
        back the reserved room and write the manifest once more, true to what is on disk:
        state ``failed``, every result that was written listed with its hash."""
        release_reserve(self.out_dir)
        self.manifest["state"] = "failed"
        self.manifest["error"] = str(exc)
        self.manifest["ended_at"] = utc_iso(time.time())
        try:
            self._write_manifest()
            said = f"the manifest says so and lists the {len(what_is_on_disk(self.out_dir))} " \
                   "result(s) on disk"
        except (StorageError, OSError) as again:
            said = (f"even the last manifest could not be written ({again}); the results on "
                    f"disk are {', '.join(what_is_on_disk(self.out_dir)) or 'none'}")
        self.display.error(f"the run stopped: {exc}. {said}. Free some space (or choose "
                           "another --out) and run the remaining entries again with --only.")
        return 1

    # -- running ---------------------------------------------------------------------
    def _context(self, sampler: Sampler, snap: Snapshot,
                 devices: list[int] | None = None) -> TelemetryContext:
        return TelemetryContext(snapshot=snap, interval_s=sampler.interval_s,
                                unavailable=dict(sampler.adapter.unavailable),
                                scope=dict(sampler.adapter.scope),
                                not_the_device=self.not_the_device,
                                power_elsewhere=frozenset(
                                    sampler.adapter.power_counted_elsewhere()),
                                devices=tuple(devices) if devices is not None else None)

    def _idle(self, sampler: Sampler) -> IdleRecord:
        """Idle telemetry before the first workload: the baseline for energy above idle.

        With ``idle_file`` (a Slurm job runs one step per entry on each node) the node's first
        step measures it and writes it there; the later steps of the job on that node read it.
        """
        if self.idle_file is not None and self.idle_file.exists():
            with contextlib.suppress(OSError, ValueError):
                idle = json.loads(self.idle_file.read_text(encoding="utf-8"))
                self.display.note(f"idle telemetry measured earlier on this node "
                                  f"({self.idle_file})")
                return {**idle, "source": str(self.idle_file)}
        seconds = self.suite.telemetry.idle_s
        self.display.note(f"measuring idle telemetry for {seconds:g} s")
        start = time.monotonic()
        time.sleep(seconds)
        end = time.monotonic()
        sampler.wait_past(end)
        margin = 2 * sampler.interval_s
        tel = self._context(sampler, sampler.snapshot(start - margin, end + margin))
        idle = idle_record(window_telemetry(tel, start, end), end - start, self.not_the_device,
                           sampler.adapter)
        if self.idle_file is not None:
            atomic_write_json(self.idle_file, sanitize(idle))
        return idle

    def _preflight(self, sampler: Sampler) -> tuple[IdleRecord, Preflight]:
        """The idle telemetry, measured while the contention monitor looks at the machine
        (at least ``PREFLIGHT_S``): the idle record and the preflight's. It says when the
        machine is busy and never refuses to run."""
        pid = os.getpid()
        with ContentionMonitor(lambda: [pid]) as monitor:
            start = time.monotonic()
            idle = self._idle(sampler)
            time.sleep(max(0.0, PREFLIGHT_S - (time.monotonic() - start)))
            end = time.monotonic()
        seen = monitor.window(start, end)
        quiet = self.suite.quiet
        cpus, other, steal = seen["cpus"], seen["other_cpus"], seen["steal_cpus"]
        record = {k: seen[k] for k in ("window_s", "cpus", "other_cpus", "steal_cpus",
                                       "load_avg_1m_max", "cpu_pressure_avg10_max")}
        if other is None or not cpus:
            record["busy"] = None
            self.display.note("preflight: the machine's load could not be read ("
                              + seen.get("reason", "no reading") + ")")
            return idle, record
        busy = other > quiet.max_other_cpu_share * cpus or (
            steal is not None and steal > quiet.max_steal_share * cpus)
        record["busy"] = busy
        load = seen["load_avg_1m_max"]
        said = f"other processes kept {other:.1f} of {cpus} CPUs busy" + (
            f", the hypervisor took {steal:.2f} (steal)" if steal else "") + (
            f", load average {load:.1f}" if load is not None else "")
        if busy:
            self.display.note(f"preflight: the machine is busy ({said}): figures measured now "
                              "may be slowed; each entry says whether it was disturbed. A "
                              "quiet machine gives representative figures.")
        else:
            self.display.note(f"preflight: the machine is quiet ({said})")
        return idle, record

    def _repeat_spec(self, entry: Entry, repeat: int) -> RepeatSpec:
        log_dir = run_dir = None
        if entry.scenario:
            # LoadGen's own logs stay with the run, beside (never among) the result files.
            log_dir = str(self.out_dir / LOADGEN_DIR / entry.id / f"repeat-{repeat}")
            run_dir = str(self.out_dir)
        return RepeatSpec(self.vendor, entry, self.suite.seed, repeat, self.placement,
                          log_dir=log_dir, run_dir=run_dir)

    def run_entry(self, entry: Entry, index: int, sampler: Sampler,
                  idle: IdleRecord) -> ResultDoc:
        repeats: list[RepeatResult] = []
        started = time.time()
        t_start = time.monotonic()
        self.display.entry_started(index, len(self.suite.entries), entry)
        interrupted = False
        for r in range(entry.rules.repeats):
            self.display.repeat_started(r, entry.rules.repeats)
            try:
                with self._monitor(sampler) as monitor:
                    child = run_child(self._repeat_spec(entry, r), entry.rules.timeout_s,
                                      self.display.progress, self.watchdog,
                                      sampler.adapter.track)
            except KeyboardInterrupt:
                repeats.append(RepeatResult(index=r, status="interrupted", error={
                    "type": "Interrupted", "message": "stopped by the user (Ctrl-C / SIGTERM)"}))
                interrupted = True
                break
            if entry.scenario:
                from bench.scenarios.loadgen import tidy_tree

                tidy_tree(self.out_dir / LOADGEN_DIR / entry.id)
            result = RepeatResult(index=r, **child.result)
            if "window" in result:
                result["contention"] = self._contention(monitor, result["window"], sampler)
            problem = implausible_measurement(result)
            if problem:
                result.pop("throughput_items_per_s", None)  # kept in the message
                result.update(status="error", error={"type": "ImplausibleMeasurement",
                                                     "message": problem})
            repeats.append(result)
            if result.get("device") and "error" not in result["device"]:
                self.device_info = result["device"]
            if result["status"] != "ok":
                break
        t_end = time.monotonic()
        doc = self.build_document(entry, repeats, sampler, idle, started, t_start, t_end)
        if interrupted:
            raise Interrupted(doc)
        return doc

    def _monitor(self, sampler: Sampler) -> ContentionMonitor:
        """The contention monitor of one repeat: this process is the harness, its children
        measure; the device's processes are read where the telemetry can list them."""
        adapter = sampler.adapter
        probe = adapter.device_processes if adapter.measures == "device" and \
            adapter.processes_unavailable is None else None
        pid = os.getpid()
        return ContentionMonitor(lambda: [pid], probe=probe)

    def _contention(self, monitor: ContentionMonitor, window: Window,
                    sampler: Sampler) -> Contention:
        record = monitor.window(window["start_mono"], window["end_mono"])
        adapter = sampler.adapter
        if adapter.measures == "device" and "device_processes" not in record:
            record["device_processes"] = {"other": None, "processes": [],
                                          "reason": adapter.processes_unavailable}
        return record

    def _judge(self, repeats: list[RepeatResult], tel: TelemetryContext,
               metrics: Metrics) -> Disturbed:
        """The entry's disturbed record: each repeat's throttle readings from the telemetry
        (the devices the entry used), then the judgment over the repeats."""
        snap = tel.snapshot
        throttles = [d["series"].get("throttle") or [] for d in snap["devices"]]
        reasons = self.suite.quiet.throttle_reasons
        for r in repeats:
            if "contention" not in r:
                continue
            w = r["window"]
            figures = throttle_figures(snap["t_mono_s"], throttles, w["start_mono"],
                                       w["end_mono"], reasons)
            if not figures["readings"]:
                figures["reason"] = tel.not_the_device or tel.unavailable.get(
                    "throttle", "no throttle reading inside the timed window")
            r["contention"]["throttle"] = figures
        thr = metrics.get("throughput_items_per_s") or {}
        cv = thr.get("cv") if (thr.get("n") or 0) >= 2 else None
        return judge([r["contention"] for r in repeats if "contention" in r], cv,
                     self.suite.quiet, self.require_quiet)

    def build_document(self, entry: Entry, repeats: list[RepeatResult], sampler: Sampler,
                       idle: IdleRecord, started: float, t_start: float,
                       t_end: float) -> ResultDoc:
        from bench.workload import get_workload

        workload = get_workload(entry.workload)
        sampler.wait_past(t_end)  # the last window's end must be bracketed by a sample
        margin = 2 * sampler.interval_s
        snap = sampler.snapshot(t_start - margin, t_end + margin)
        ok = [r for r in repeats if r["status"] == "ok"]
        first = ok[0] if ok else (repeats[0] if repeats else {})
        # The devices this entry used (a multi-rank workload says which); only theirs are kept.
        used = [d for d in first.get("devices_used", [0]) if d in self.device_indices] or [0]
        snap["devices"] = [d for d in snap["devices"] if d["index"] in used]
        tel = self._context(sampler, snap, used)
        idle = entry_idle(idle, used)
        for r in repeats:
            if r["status"] == "ok" and "window" in r:
                r["telemetry"] = window_telemetry(tel, r["window"]["start_mono"],
                                                  r["window"]["end_mono"])
        status, error = workload_status(repeats)
        metrics = build_metrics(repeats, tel, workload.item_unit, self.vendor,
                                entry.rules.host_bound_util_pct, idle)
        metrics.update(self._work_metrics(entry, workload, repeats, metrics, first))
        disturbed = self._judge(repeats, tel, metrics)
        if self.require_quiet and disturbed["value"] and status == "ok":
            status, error = "error", {
                "type": "Disturbed",
                "message": "the measurement was disturbed and --require-quiet asks for a quiet "
                           "machine: " + "; ".join(r["message"] for r in disturbed["reasons"])}
        origin = t_start - margin
        doc: ResultDoc = {
            "schema_version": SCHEMA_VERSION,
            "kind": "bench.result",
            "run_id": self.run_id,
            "suite": {"name": self.suite.name, "path": str(self.suite.path),
                      "seed": self.suite.seed},
            "workload": {
                "id": entry.id, "name": workload.name, "mode": entry.mode,
                "group": workload.group, "config": entry.config, "params": entry.params,
                "item_unit": workload.item_unit,
                "precision_requested": entry.precision,
                "precision_used": first.get("precision_used", entry.precision),
                "precision_reason": first.get("precision_reason"),
                "overrides": entry.overrides,
                "compile": compile_record(entry, first),
                "info": {k: v for k, v in first.get("info", {}).items() if k != "compile"},
            },
            "rules": entry.rules.to_dict(),
            "status": status,
            "error": error,
            "metrics": metrics,
            "disturbed": disturbed,
            "repeats": [self._repeat_record(r, origin) for r in repeats],
            "telemetry": {
                "backend": sampler.adapter.name,
                "description": sampler.description,
                "note": self.selection.get("note"),
                "selection": self.selection,
                "measures": sampler.adapter.measures,
                "not_the_device": self.not_the_device,
                "interval": sampler.achieved_interval(t_start, t_end),
                "overhead": sampler.overhead(),
                "fields": SAMPLE_FIELDS,
                "scope": dict(sampler.adapter.scope),
                "unavailable": dict(sampler.adapter.unavailable),
                "errors": sampler.error_report(t_start, t_end),
                "idle": idle,
                "origin_mono_s": origin,
                "t_s": snap["t_s"],
                "t_wall": snap["t_wall"],
                "errors_t_s": [t - origin for t in snap["error_t_mono_s"]],
                "devices": snap["devices"],
            },
            "points": build_points(repeats, tel, workload.item_unit, origin),
            "placement": placement_record(self.placement, first.get("info", {}), used),
            "provenance": {**provenance(self.vendor, self.device_info,
                                        {"suite_seed": self.suite.seed,
                                         "repeat_seeds": [self.suite.seed] * len(repeats)},
                                        self.argv, self.label),
                           "device_settings": {"requested": entry.device.as_dict(),
                                               "applied": first.get("host_threads")}},
            "started_at": utc_iso(started),
            "ended_at": utc_iso(time.time()),
        }
        if doc["points"] is None:
            del doc["points"]
        if first.get("function"):
            doc["function"] = first["function"]
        if entry.scenario:
            from bench.scenarios.measure import scenario_document

            doc["scenario"] = scenario_document(entry.workload, entry.scenario_rules or {},
                                                repeats)
        return seal(sanitize(doc))

    def _work_metrics(self, entry: Entry, workload: Any, repeats: list[RepeatResult],
                      metrics: Metrics, first: RepeatResult) -> Metrics:
        """FLOPs per item (counted once here, on the meta device, unless the workload
        reported its own), achieved FLOP/s and MFU against the device's spec sheet (the
        report's reference for it: a published sheet, else the cpu's labelled estimate)."""
        from bench.micro.peaks import DevicePeaks
        from bench.specs import recorded_spec

        timed = [r for r in repeats if r["status"] == "ok" and "window" in r]
        if not timed:
            return {}
        precision = first.get("precision_used", entry.precision)
        count = None
        if "flop_per_item" not in metrics:
            count = count_work(lambda: workload.work_probe(entry.mode, entry.params, precision,
                                                           first.get("info") or {}))
        name = str((self.device_info or {}).get("name") or self.vendor)
        peaks = DevicePeaks.from_spec(recorded_spec(self.vendor, self.device_info), name,
                                      self.vendor)
        return work_metrics(metrics, count, [r["throughput_items_per_s"] for r in timed],
                            workload.item_unit, peaks, precision)

    @staticmethod
    def _repeat_record(r: RepeatResult, origin: float) -> RepeatDoc:
        rec = {k: r[k] for k in ("index", "status", "error", "iterations", "items",
                                 "throughput_items_per_s", "latencies_s",
                                 "cold_start", "memory", "series", "metrics", "telemetry",
                                 "headline", "scenario", "streams", "contention") if k in r}
        if "window" in r:
            w = r["window"]
            rec["window"] = {**w, "start_s": w["start_mono"] - origin,
                             "end_s": w["end_mono"] - origin}
        return rec

    def write(self, entry: Entry, doc: ResultDoc) -> list[str]:
        problems = [str(p) for p in validation_errors(doc, "result")]
        path = self.out_dir / result_file(entry.id)
        try:
            atomic_write_json(path, doc)
        except OSError as exc:
            if exc.errno not in STORAGE_ERRNOS:
                raise
            item = self._item(entry)
            item["status"] = "error"
            item["error"] = f"the result could not be written: {exc.strerror or exc}"
            raise StorageError(f"cannot write {path}", exc) from exc
        self._record_entry(entry, doc["status"], doc, problems)
        return problems

    def run(self) -> int:
        """Run every entry; 0 when all ended as expected, 1 otherwise, 130 when interrupted."""
        try:
            return self._run()
        except StorageError as exc:
            return self._end_on_storage_error(exc)

    def _run(self) -> int:
        interval_s = self.suite.telemetry.interval_s
        adapter, self.selection = open_adapter(self.backend.telemetry, self.device_indices,
                                               interval_s)
        self.not_the_device = no_device_telemetry(self.vendor, adapter, self.selection)
        self._start_manifest()
        if self.selection.get("note"):
            self.display.note(self.selection["note"])
        failures = 0
        sampler = Sampler(adapter, interval_s)
        with sigterm_as_interrupt(), sampler, Watchdog() as self.watchdog:
            try:
                idle, self.manifest["preflight"] = self._preflight(sampler)
                self.manifest["idle"] = idle
                self._write_manifest()
                for i, entry in enumerate(self.suite.entries):
                    try:
                        doc = self.run_entry(entry, i, sampler, idle)
                        problems = self.write(entry, doc)
                    except Interrupted as stop:
                        doc = stop.args[0]
                        self.write(entry, doc)
                        raise KeyboardInterrupt from None
                    except StorageError:
                        raise
                    except Exception as exc:
                        # No document could be made: the manifest says why, the next entry
                        # still runs, and the run's exit code reports the failure.
                        self._record_failure(entry, exc)
                        failures += 1
                        continue
                    sampler.discard_before(time.monotonic() - 2 * interval_s)
                    self.display.entry_finished(entry, doc,
                                                self.out_dir / result_file(entry.id), problems)
                    if problems or doc["status"] not in ("ok", *EXPECTED_FAILURES):
                        failures += 1
            except KeyboardInterrupt:
                self.manifest["state"] = "interrupted"
                self.manifest["ended_at"] = utc_iso(time.time())
                self._write_manifest()
                release_reserve(self.out_dir)
                self.display.note(f"interrupted: finished results kept in {self.out_dir}")
                return 130
        self.manifest["state"] = "finished"
        self.manifest["ended_at"] = utc_iso(time.time())
        self._write_manifest()
        release_reserve(self.out_dir)
        self.display.run_finished(self.manifest, self.out_dir)
        return 1 if failures else 0
