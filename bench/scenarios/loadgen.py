"""A thin shell around MLPerf's LoadGen (``mlperf_loadgen``, PyPI ``mlcommons-loadgen``):
its test settings from our rules, one test run with its logs in a directory we name, and the
results read back from LoadGen's own detail log.

The detail log (``mlperf_log_detail.txt``) is one JSON object per line after a ``:::MLLOG``
marker, the format MLPerf's submission checker reads; we read the same keys (validity,
percentiles, rates), so every figure the result takes from LoadGen can be re-derived from the
log kept beside it. LoadGen also writes an accuracy log and a trace; in performance mode
without accuracy sampling and with tracing off both are empty and are removed, so the run
directory holds no JSON file that is not a result.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import Unsupported
from bench.scenarios.rules import LOADGEN_NAMES, ScenarioRules, loadgen_seeds

SUMMARY = "mlperf_log_summary.txt"
DETAIL = "mlperf_log_detail.txt"
EMPTY_LOGS = ("mlperf_log_accuracy.json", "mlperf_log_trace.json")
MARKER = ":::MLLOG "
NS = 1e-9


def import_loadgen() -> Any:
    """The LoadGen module, or ``Unsupported`` with the reason (no wheel for this platform)."""
    try:
        import mlperf_loadgen
    except ImportError as exc:
        import platform

        raise Unsupported(
            f"MLPerf LoadGen (package mlcommons-loadgen) cannot be imported here ({exc}); it "
            f"publishes wheels for x86-64 Linux only and this is {platform.machine()} with "
            f"Python {platform.python_version()}") from exc
    return mlperf_loadgen


def loadgen_version(lg: Any | None = None) -> str | None:
    try:
        from importlib.metadata import version

        return version("mlcommons-loadgen")
    except Exception:
        return None


@dataclass(frozen=True)
class Hints:
    """What LoadGen needs to know in advance to generate enough queries (measured in the
    warm-up): it sizes a test from them, they bound nothing."""

    sample_latency_s: float  # one sample alone
    query_latency_s: float  # one multi-stream query
    samples_per_s: float  # at the maximum batch, every stream busy


def test_settings(lg: Any, rules: ScenarioRules, hints: Hints,
                  target_qps: float | None = None, cap_s: float | None = None) -> Any:
    """LoadGen's TestSettings for one performance run under ``rules``; ``cap_s``: a time
    budget that ends the run earlier than ``rules.max_duration_s`` would (LoadGen stops
    issuing queries then, and the run is INVALID if too few were issued)."""
    ts = lg.TestSettings()
    ts.scenario = getattr(lg.TestScenario, LOADGEN_NAMES[rules.scenario])
    ts.mode = lg.TestMode.PerformanceOnly
    ts.min_duration_ms = round(rules.min_duration_s * 1000)
    ts.max_duration_ms = round(effective_max_duration_s(rules, cap_s) * 1000)
    ts.min_query_count = int(rules.min_query_count)
    ts.performance_sample_count_override = int(rules.performance_sample_count)
    for name, value in loadgen_seeds().items():
        setattr(ts, name, int(value))
    pct = (rules.target_latency_percentile or 90) / 100
    if rules.scenario == "single_stream":
        ts.single_stream_expected_latency_ns = max(1, int(hints.sample_latency_s / NS))
        ts.single_stream_target_latency_percentile = pct
    elif rules.scenario == "multi_stream":
        ts.multi_stream_expected_latency_ns = max(1, int(hints.query_latency_s / NS))
        ts.multi_stream_target_latency_percentile = pct
        ts.multi_stream_samples_per_query = int(rules.samples_per_query or 8)
    elif rules.scenario == "server":
        ts.server_target_qps = float(target_qps or 1.0)
        ts.server_target_latency_ns = round((rules.target_latency_s or 0) / NS)
        ts.server_target_latency_percentile = pct
    else:
        ts.offline_expected_qps = max(hints.samples_per_s, 1e-3)
    if rules.token_latencies:
        ts.use_token_latencies = True
        ts.ttft_latency = round((rules.ttft_latency_s or 0) / NS)
        ts.tpot_latency = round((rules.tpot_latency_s or 0) / NS)
    return ts


def effective_max_duration_s(rules: ScenarioRules, cap_s: float | None) -> float:
    """The longest a run may last (0: no limit, as LoadGen reads it)."""
    limits = [x for x in (rules.max_duration_s, cap_s) if x]
    return max(min(limits), 0.001) if limits else 0.0


@dataclass
class TestRun:
    """One LoadGen performance run: its window (our monotonic clock) and its log."""

    start_mono: float
    end_mono: float
    start_wall: float
    log_dir: Path
    detail: dict[str, Any] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.end_mono - self.start_mono

    @property
    def valid(self) -> bool:
        return self.detail.get("result_validity") == "VALID"

    def window(self) -> dict[str, float]:
        return {"start_mono": self.start_mono, "end_mono": self.end_mono,
                "start_wall": self.start_wall,
                "end_wall": self.start_wall + self.duration_s, "duration_s": self.duration_s}


def start_test(lg: Any, sut: Any, qsl: Any, settings: Any, log_dir: Path,
               run_root: Path | None = None) -> TestRun:
    """Run one LoadGen test with its logs in ``log_dir`` and read the results back."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = lg.LogSettings()
    log.log_output.outdir = str(log_dir)
    log.log_output.copy_summary_to_stdout = False
    log.enable_trace = False
    start_wall, start = time.time(), time.monotonic()
    lg.StartTestWithLogSettings(sut, qsl, settings, log)
    end = time.monotonic()
    run = TestRun(start, end, start_wall, log_dir, read_detail(log_dir / DETAIL))
    run.files = keep_logs(log_dir, run_root)
    return run


def keep_logs(log_dir: Path, run_root: Path | None) -> list[dict[str, Any]]:
    """Remove LoadGen's empty JSON logs; list the kept ones with their sha256 (relative to the
    run directory), so an auditor can tell an edited log from the one the run wrote."""
    for name in EMPTY_LOGS:
        path = log_dir / name
        if path.exists():
            text = path.read_text(encoding="utf-8", errors="replace").strip()
            if text in ("", "[", "[\n]", "[]") or text.replace("\n", "") == "[]":
                path.unlink()
            else:  # not expected in performance mode; kept, but never read as a result
                path.rename(path.with_name(path.name + ".txt"))
    out = []
    for path in sorted(log_dir.iterdir()):
        if path.is_file():
            shown = path.relative_to(run_root) if run_root else path
            out.append({"path": str(shown),
                        "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    return out


def tidy_tree(root: Path) -> None:
    """``keep_logs`` on every directory under ``root``: a repeat stopped mid-test (timeout,
    kill) leaves LoadGen's files as they were, and no JSON among them may look like a result."""
    if root.is_dir():
        for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            keep_logs(directory, None)


def read_detail(path: Path) -> dict[str, Any]:
    """Key -> value of LoadGen's detail log (the last value of a repeated key). Lines that are
    not LoadGen's JSON are skipped: the log is LoadGen's, and a missing key reads as absent."""
    out: dict[str, Any] = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith(MARKER):
            continue
        try:
            record = json.loads(line[len(MARKER):])
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "key" in record:
            out[record["key"]] = record.get("value")
    return out


def latency_s(detail: dict[str, Any], percentile: float, kind: str = "") -> float | None:
    """A latency percentile from the detail log in seconds (``kind``: "" per sample,
    "per_query" for multi-stream queries, "first_token" for TTFT)."""
    if kind == "first_token":
        key = f"result_first_token_{percentile:.2f}_percentile_latency_ns"
    elif kind == "per_query":
        key = f"result_{percentile:.2f}_percentile_per_query_latency_ns"
    elif kind == "tpot":
        key = f"result_time_per_output_token_{percentile:.2f}_percentile_ns"
    else:
        key = f"result_{percentile:.2f}_percentile_latency_ns"
    value = detail.get(key)
    return value * NS if isinstance(value, int | float) else None


def verdict(detail: dict[str, Any]) -> dict[str, Any]:
    """LoadGen's VALID/INVALID and each condition it checked, as it logged them."""
    out = {"result": detail.get("result_validity", "missing")}
    for key, name in (("result_perf_constraints_met", "latency_constraints_met"),
                      ("result_min_duration_met", "min_duration_met"),
                      ("result_min_queries_met", "min_queries_met"),
                      ("early_stopping_met", "early_stopping_met")):
        if key in detail:
            out[name] = detail[key]
    reason = detail.get("result_invalid_reason")
    if reason:
        out["invalid_reason"] = reason
    for key in ("early_stopping_result", "early_stopping_ttft_result",
                "early_stopping_tpot_result"):
        if detail.get(key):
            out[key] = " ".join(str(detail[key]).split())
    return out
