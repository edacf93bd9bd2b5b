"""Result documents for the report tests, made from real runs.

``tests/fixtures/results/smoke-cpu-1thread`` and ``smoke-cpu-2threads`` are two real runs of
the smoke suite on this project's CPU machine (``OMP_NUM_THREADS=1`` and ``=2``; the cpu
backend records the thread count in ``provenance.device.threads``). They have no power or
temperature (the VM exposes no RAPL and no sensor).

Everything else here is fixture data made by modifying those real documents and re-sealing
them (``bench.jsonio.seal``): accelerators with power and temperature telemetry, an LLM
workload with the TTFT-tier metrics, an operator sweep with roofline points, and values that
are schema-valid but implausible. Metrics are recomputed from the modified telemetry with the
runner's own ``bench.results.build_metrics``, so they are consistent unless a test breaks
them on purpose. If the result schema gains a required field, re-run the smoke suite twice
(``OMP_NUM_THREADS=1`` / ``2``, ``python -m bench run --suite smoke --device cpu --out DIR``)
and replace the two directories.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

from bench.jsonio import atomic_write_json, sanitize, seal
from bench.results import TelemetryContext, build_metrics, build_points, window_telemetry
from tests.conftest import FIXTURES

RUNS = FIXTURES / "results"
ONE_THREAD = RUNS / "smoke-cpu-1thread"
TWO_THREADS = RUNS / "smoke-cpu-2threads"
A100 = "NVIDIA A100-SXM4-80GB"
A100_MEMORY = 85899345920


def load(run: Path, entry: str) -> dict[str, Any]:
    return json.loads((run / f"{entry}.json").read_text(encoding="utf-8"))


def write(doc: dict[str, Any], directory: Path, name: str | None = None) -> Path:
    """Seal ``doc`` and write it as ``directory/<workload id>.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name or doc['workload']['id']}.json"
    atomic_write_json(path, seal(sanitize({k: v for k, v in doc.items() if k != "sha256"})))
    return path


def _series(doc: dict[str, Any]) -> dict[str, list[Any]]:
    return doc["telemetry"]["devices"][0]["series"]


def context(doc: dict[str, Any]) -> TelemetryContext:
    """The runner's telemetry context, rebuilt from a document's stored series."""
    tel = doc["telemetry"]
    origin = tel["origin_mono_s"]
    snapshot = {"t_mono_s": [origin + t for t in tel["t_s"]], "devices": tel["devices"],
                "error_t_mono_s": [origin + t for t in tel.get("errors_t_s", [])]}
    return TelemetryContext(snapshot=snapshot, interval_s=tel["interval"]["requested_s"],
                            unavailable=dict(tel["unavailable"]))


def recompute(doc: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """Recompute the metrics (and points) from the repeats and telemetry, as the runner does."""
    tel = context(doc)
    for rep in doc["repeats"]:
        if rep.get("status") == "ok" and rep.get("window"):
            rep["telemetry"] = window_telemetry(tel, rep["window"]["start_mono"],
                                                rep["window"]["end_mono"])
    kept = {k: doc["metrics"][k] for k in keep if k in doc["metrics"]}
    doc["metrics"] = build_metrics(doc["repeats"], tel, doc["workload"]["item_unit"],
                                   doc["provenance"]["vendor"],
                                   doc["rules"].get("host_bound_util_pct", 30.0),
                                   doc["telemetry"].get("idle"))
    doc["metrics"].update(kept)
    return doc


def as_device(doc: dict[str, Any], name: str, vendor: str, memory_bytes: int,
              label: str | None = None) -> dict[str, Any]:
    """The same measurement, attributed to another device (fixture data)."""
    doc = copy.deepcopy(doc)
    prov = doc["provenance"]
    prov["vendor"] = vendor
    prov["device"] = {**prov["device"], "vendor": vendor, "name": name,
                      "memory_total_bytes": memory_bytes, "driver_version": "fixture"}
    prov["device"].pop("threads", None)
    if label:
        prov["label"] = label
    series = _series(doc)
    series["mem_total_bytes"] = [float(memory_bytes)] * len(series["mem_total_bytes"])
    return doc


def with_power(doc: dict[str, Any], busy_w: float, idle_w: float, busy_c: float,
               idle_c: float, util_scale: float = 1.0) -> dict[str, Any]:
    """Power and temperature series that follow the recorded utilisation (scaled by
    ``util_scale`` with a little deterministic ripple, so devices made from the same run do
    not draw identical lines)."""
    series = _series(doc)
    util = [min(100.0, max(0.0, (u or 0.0) * util_scale + 2.0 * math.sin(i / 3)))
            if u is not None else 0.0 for i, u in enumerate(series["util_pct"])]
    series["util_pct"] = util
    series["power_w"] = [idle_w + (busy_w - idle_w) * u / 100 for u in util]
    series["temp_c"] = [idle_c + (busy_c - idle_c) * u / 100 for u in util]
    tel = doc["telemetry"]
    for name in ("power_w", "temp_c", "energy_j"):
        tel["unavailable"].pop(name, None)
    series["energy_j"] = [None] * len(util)
    tel["unavailable"]["energy_j"] = "fixture: no energy counter"
    tel["idle"] = {**(tel.get("idle") or {}), "power_w": idle_w, "temp_c": idle_c}
    tel["idle"].pop("reason", None)
    return doc


def faster(doc: dict[str, Any], factor: float) -> dict[str, Any]:
    """Scale the measured speed (items and iterations per window up, latencies down) by
    ``factor``: the same batches, each done ``factor`` times faster."""
    for rep in doc["repeats"]:
        if rep.get("status") != "ok":
            continue
        rep["items"] = rep["items"] * factor
        rep["iterations"] = max(1, round(rep["iterations"] * factor))
        rep["throughput_items_per_s"] *= factor
        rep["latencies_s"] = [x / factor for x in rep["latencies_s"]]
        for entry in (rep.get("metrics") or {}).values():
            if isinstance(entry.get("value"), int | float):
                entry["value"] *= factor
    return doc


def accelerator(run: Path, entry: str, name: str, vendor: str, memory_bytes: int,
                speed: float, busy_w: float, idle_w: float, busy_c: float,
                idle_c: float, label: str | None = None, util_scale: float = 0.9
                ) -> dict[str, Any]:
    doc = as_device(load(run, entry), name, vendor, memory_bytes, label)
    return recompute(with_power(faster(doc, speed), busy_w, idle_w, busy_c, idle_c,
                                util_scale))


def as_llm(doc: dict[str, Any], load_s: float,
           tiers: tuple[float | None, float | None, float | None, float | None]
           ) -> dict[str, Any]:
    """An LLM-inference result (TTFT-tier metrics, model load time) from a measured one."""
    doc = copy.deepcopy(doc)
    wl = doc["workload"]
    wl.update({"id": "qwen2-0.5b-infer", "name": "qwen2-0.5b", "group": "llm",
               "item_unit": "tokens", "precision_requested": "bf16", "precision_used": "bf16",
               "params": {"layers": 2, "hidden": 64}})
    recompute(doc)
    doc["metrics"]["model_load_s"] = {"value": load_s, "unit": "s"}
    names = ("0_500ms", "500_1000ms", "1000_3000ms", "3000ms_inf")
    for suffix, value in zip(names, tiers, strict=True):
        entry: dict[str, Any] = {"value": value, "unit": "tokens/s"}
        if value is None:
            entry["reason"] = "no grid point with its TTFT in this tier"
        doc["metrics"][f"tier_max_tokens_per_s_{suffix}"] = entry
    return doc


def as_sweep(doc: dict[str, Any], peak_flop_per_s: float, bandwidth_bytes_per_s: float,
             efficiency: float = 0.7, oom_from_batch: int | None = None) -> dict[str, Any]:
    """An operator sweep (conv2d forward) with roofline points, from a measured GEMM result.

    Each point's FLOP/s is ``efficiency`` x the roof min(peak, bandwidth x intensity), so the
    points lie under the device's roof as real ones do.
    """
    doc = copy.deepcopy(doc)
    wl = doc["workload"]
    wl.update({"id": "conv-sweep-infer", "name": "conv-sweep", "item_unit": "calls",
               "params": {"op": "conv2d"}})
    points = []
    windows = [r["window"] for r in doc["repeats"] if r.get("window")]
    for i, (batch, channels, kernel) in enumerate(
            (b, c, k) for b in (1, 16) for c in (16, 64, 256) for k in (1, 3, 5)):
        flop = 2 * batch * channels * channels * kernel * kernel * 28 * 28
        moved = 4 * (batch * channels * 28 * 28 * 2 + channels * channels * kernel * kernel)
        intensity = flop / moved
        achieved = efficiency * min(peak_flop_per_s, bandwidth_bytes_per_s * intensity) * (
            0.8 + 0.2 * math.sin(i))
        params = {"batch": batch, "channels": channels, "kernel": kernel}
        if oom_from_batch is not None and batch >= oom_from_batch and channels == 256:
            points.append({"params": params, "status": "oom",
                           "error": {"type": "OutOfMemoryError", "message": "fixture: OOM"},
                           "metrics": {}})
            continue
        w = windows[i % len(windows)]
        points.append({"params": params, "status": "ok", "error": None, "metrics": {
            "flop_per_s": {"value": achieved, "unit": "FLOP/s"},
            "arithmetic_intensity": {"value": intensity, "unit": "FLOP/B"},
            "pct_of_peak": {"value": 100 * achieved / peak_flop_per_s, "unit": "%"},
            "throughput_items_per_s": {"value": achieved / flop, "unit": "calls/s"}},
            "window": w})
    repeats = [{**r, "points": points} for r in doc["repeats"]]
    doc["points"] = build_points(repeats, context(doc), wl["item_unit"],
                                 doc["telemetry"]["origin_mono_s"])
    return recompute(doc)


def failed(doc: dict[str, Any], status: str, message: str) -> dict[str, Any]:
    """The same workload, failed with ``status`` (oom, unsupported, ...) in its first repeat."""
    doc = copy.deepcopy(doc)
    error = {"type": "OutOfMemoryError" if status == "oom" else "Unsupported",
             "message": message}
    doc.update(status=status, error=error, metrics={})
    doc["repeats"] = [{"index": 0, "status": status, "error": error}]
    doc.pop("points", None)
    return doc


def cpu_two_threads(entry: str) -> dict[str, Any]:
    return load(TWO_THREADS, entry)


def build_lab(root: Path) -> dict[str, Path]:
    """A small evaluation: the two real CPU runs plus fixture accelerators, an LLM, a sweep.

    Returns the directories: ``cpu1``, ``cpu2`` (real), ``a100`` (also the baseline),
    ``mlu`` (precision fallback, an override, an OOM and an implausible 1.68 MW reading),
    ``extra`` (LLM and sweep results of the cpu 2-thread device).
    """
    dirs = {name: root / name for name in ("a100", "mlu", "extra")}
    dirs["cpu1"], dirs["cpu2"] = ONE_THREAD, TWO_THREADS

    def write(doc: dict[str, Any], directory: Path, name: str | None = None) -> Path:
        # Each fixture device is a run of its own: a result made from a real run but kept
        # under its run id would be one its run's manifest does not list (the store sets
        # such a result apart).
        return globals()["write"]({**doc, "run_id": f"fixture-{directory.name}"}, directory,
                                  name)
    for entry, speed in (("resnet-infer", 14.0), ("resnet-train", 11.0), ("gemm-infer", 60.0)):
        write(accelerator(TWO_THREADS, entry, A100, "cuda", A100_MEMORY, speed, 330, 62, 66,
                          34), dirs["a100"])
    a100_infer = accelerator(TWO_THREADS, "resnet-infer", A100, "cuda", A100_MEMORY, 14.0,
                             250, 62, 61, 34)
    write(as_llm(a100_infer, 9.5, (2400.0, 5200.0, 9100.0, 9800.0)), dirs["a100"])
    write(as_sweep(accelerator(TWO_THREADS, "gemm-infer", A100, "cuda", A100_MEMORY, 60.0,
                               300, 62, 64, 34), 19.5e12, 2039e9), dirs["a100"])

    mlu = ("MLU370-X8", "mlu", 24 * 2**30)
    # (the MLU results scale utilisation by 0.8, the A100's by the default 0.9)
    infer = accelerator(ONE_THREAD, "resnet-infer", *mlu, 6.0, 150, 40, 55, 31, util_scale=0.8)
    infer["metrics"]["power_w_mean"]["value"] = 1.68e6  # the published 1.68 MW reading
    infer["metrics"]["items_per_j"]["value"] = (
        infer["metrics"]["throughput_items_per_s"]["value"] / 1.68e6)
    write(infer, dirs["mlu"])
    train = accelerator(ONE_THREAD, "resnet-train", *mlu, 5.0, 160, 40, 58, 31, util_scale=0.8)
    train["workload"].update(precision_used="fp16",
                             precision_reason="fp32 did not fit in 24 GiB: fell back to fp16")
    write(train, dirs["mlu"])
    gemm = accelerator(ONE_THREAD, "gemm-infer", *mlu, 25.0, 140, 40, 52, 31, util_scale=0.8)
    gemm["workload"]["overrides"] = {"n": 1024}
    gemm["workload"]["params"]["n"] = 1024
    write(gemm, dirs["mlu"])
    write(failed(as_llm(infer, 30.0, (None, None, None, None)), "oom",
                 "fixture: 24 GiB is not enough for the KV cache at batch 64"), dirs["mlu"])
    write(as_sweep(gemm, 96e12, 614e9, efficiency=0.5, oom_from_batch=16), dirs["mlu"])

    write(as_llm(cpu_two_threads("resnet-infer"), 2.1, (None, None, 35.0, 61.0)),
          dirs["extra"])
    write(as_sweep(cpu_two_threads("gemm-infer"), 0.33e12, 20e9, efficiency=0.6),
          dirs["extra"])
    return dirs
