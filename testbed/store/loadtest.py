"""``invoke bench-store``: how the store copes with a lab's volume of documents.

It makes N result documents by copying the real smoke runs in ``tests/fixtures/results/``
and varying them as a lab's archive varies: other devices and device counts, driver, torch and
image versions over two years of quarterly rounds, each figure scaled by the device and a
little noise, every document re-sealed and every run with its manifest; every other run gets an
audit verdict (synthetic, schema-valid). Then it measures, on a fresh DuckDB store each time:
ingest time and store size, a typical cross-run query and (at the largest N) ``invoke site``.
These are figures to read, not assertions: the machine may be shared (its load is printed).
"""

from __future__ import annotations

import copy
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.jsonio import atomic_write_json, body_sha256, sanitize, seal
from testbed.signing import sign_document
from testbed.store import open_store
from testbed.store.ingest import add_paths, set_trust
from testbed.store.queries import read_only_query

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "results"


@dataclass(frozen=True)
class FakeDevice:
    vendor: str
    name: str
    memory_bytes: int
    speed: float  # figures relative to the recorded CPU run
    drivers: tuple[str, ...]
    torches: tuple[str, ...]
    image: str


DEVICES = (
    FakeDevice("cuda", "NVIDIA A100-SXM4-80GB", 85899345920, 9.0, ("535.104.05", "550.54.15",
               "560.35.03"), ("2.3.1+cu121", "2.4.1+cu124"), "testbed/cuda"),
    FakeDevice("cuda", "NVIDIA H100 80GB HBM3", 85899345920, 16.0, ("550.54.15", "560.35.03"),
               ("2.4.1+cu124", "2.5.1+cu124"), "testbed/cuda"),
    FakeDevice("mlu", "MLU370-X8", 51539607552, 5.5, ("v5.10.22", "v5.10.29", "v6.0.2"),
               ("2.1.0+mlu", "2.4.0+mlu"), "testbed/mlu"),
    FakeDevice("corex", "Iluvatar BI-V150", 68719476736, 6.0, ("4.1.0", "4.2.0"),
               ("2.1.1+corex", "2.4.1+corex"), "testbed/corex"),
    FakeDevice("cpu", "Intel(R) Xeon(R) Processor", 25276502016, 1.0, ("",),
               ("2.13.0+cpu",), ""),
)
QUERY = """
SELECT r.device_name, r.driver_version, r.torch_version, count(*) AS results,
       avg(m.value) AS mean_images_per_s, max(m.value) AS best_images_per_s
FROM results r
JOIN metrics m ON m.doc_id = r.doc_id AND m.metric = 'throughput_items_per_s'
WHERE r.entry_id = 'resnet-infer' AND r.status = 'ok' AND r.started_at >= TIMESTAMP '2025-01-01'
GROUP BY r.device_name, r.driver_version, r.torch_version
ORDER BY mean_images_per_s DESC
"""
AUDITED_QUERY = """
SELECT r.entry_id, r.device_name, max(m.value) AS best
FROM results r
JOIN result_latest_audit a ON a.result_id = r.doc_id AND a.verdict = 'pass'
JOIN metrics m ON m.doc_id = r.doc_id AND m.metric = 'throughput_items_per_s'
GROUP BY r.entry_id, r.device_name ORDER BY r.entry_id, best DESC
"""


def _scale(doc: dict[str, Any], factor: float) -> None:
    """Figures of a faster (or slower) device: rates up, times down."""
    for name, entry in doc["metrics"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("value"), int | float) \
                or isinstance(entry.get("value"), bool):
            continue
        if name.endswith("_per_s") or name == "items_per_j":
            mult = factor
        elif name.startswith("latency_") and name.endswith("_s"):
            mult = 1 / factor
        else:
            continue
        entry["value"] *= mult
        if isinstance(entry.get("per_repeat"), list):
            entry["per_repeat"] = [v * mult if isinstance(v, int | float) else v
                                   for v in entry["per_repeat"]]
        if isinstance(entry.get("std"), int | float):
            entry["std"] *= mult


def _shift(doc: dict[str, Any], offset: timedelta) -> None:
    """Move a result in time: its start and end, its windows' and samples' wall clocks."""
    for key in ("started_at", "ended_at"):
        doc[key] = (datetime.fromisoformat(doc[key]) + offset).isoformat(
            timespec="milliseconds")
    seconds = offset.total_seconds()
    for rep in doc.get("repeats") or []:
        window = rep.get("window") or {}
        for key in ("start_wall", "end_wall"):
            if isinstance(window.get(key), int | float):
                window[key] += seconds
    tel = doc.get("telemetry") or {}
    tel["t_wall"] = [t + seconds for t in tel.get("t_wall") or []]


def _templates() -> list[list[dict[str, Any]]]:
    runs = sorted(p for p in FIXTURES.iterdir() if p.is_dir())
    if not runs:
        raise UserError(f"No fixture runs under {FIXTURES}.",
                        "Run bench-store from a checkout (it varies the committed smoke runs).")
    return [[json.loads(p.read_text(encoding="utf-8")) for p in sorted(run.glob("*.json"))
             if p.name != "manifest.json"] for run in runs]


def generate(n_results: int, out: Path, seed: int = 0, signer: Path | None = None) -> int:
    """Write about ``n_results`` result documents (whole runs) under ``out``; returns the
    number of files written (results, manifests, verdicts). ``signer``: an SSH key that signs
    the verdicts (a store counts only signed verdicts as audits)."""
    rng = random.Random(seed)
    templates = _templates()
    start = datetime(2024, 1, 8, tzinfo=timezone.utc)
    files = 0
    run_no = 0
    made = 0
    while made < n_results:
        run_no += 1
        dev = rng.choice(DEVICES)
        quarter = rng.randrange(8)
        driver = dev.drivers[min(quarter * len(dev.drivers) // 8, len(dev.drivers) - 1)]
        torch = dev.torches[min(quarter * len(dev.torches) // 8, len(dev.torches) - 1)]
        when = start + timedelta(days=91 * quarter + rng.randrange(80),
                                 seconds=rng.randrange(86400))
        count = rng.choice((1, 1, 1, 8)) if dev.vendor != "cpu" else 1
        version_gain = 1 + 0.04 * dev.drivers.index(driver) + 0.03 * dev.torches.index(torch)
        label = "power capped 250W" if dev.vendor == "cuda" and rng.random() < 0.05 else None
        run_id = f"{when:%Y%m%dT%H%M%SZ}-{dev.vendor}-smoke-{run_no:06d}"
        digest = "sha256:" + body_sha256({"image": dev.image, "torch": torch}) if dev.image \
            else None
        run_dir = out / run_id
        run_dir.mkdir(parents=True)
        entries = []
        for tmpl in rng.choice(templates):
            doc = copy.deepcopy(tmpl)
            doc.pop("sha256", None)
            doc["run_id"] = run_id
            prov = doc["provenance"]
            prov["vendor"] = dev.vendor
            threads = prov["device"].get("threads")
            prov["device"] = {**prov["device"], "vendor": dev.vendor, "name": dev.name,
                              "count": count, "memory_total_bytes": dev.memory_bytes,
                              "driver_version": driver or None}
            if dev.vendor != "cpu":
                prov["device"].pop("threads", None)
                prov["image"] = {"tag": f"{dev.image}:{torch.split('+')[0]}-{driver}",
                                 "digest": digest, "native": False}
            else:
                prov["device"]["threads"] = threads
            prov["torch"] = {**prov["torch"], "version": torch}
            if label:
                prov["label"] = label
            else:
                prov.pop("label", None)
            factor = dev.speed * version_gain * rng.lognormvariate(0, 0.03) * (
                0.85 if label else 1.0)
            if doc["workload"]["group"] == "micro":
                factor = min(factor, 12.0)  # keep GEMM under the devices' fp32 peaks
            _scale(doc, factor)
            _shift(doc, when - datetime.fromisoformat(doc["started_at"]))
            doc = seal(sanitize(doc))
            name = f"{doc['workload']['id']}.json"
            atomic_write_json(run_dir / name, doc)
            entries.append({"id": doc["workload"]["id"], "workload": doc["workload"]["name"],
                            "mode": doc["workload"]["mode"], "status": doc["status"],
                            "file": name, "sha256": doc["sha256"]})
            made += 1
            files += 1
        atomic_write_json(run_dir / "manifest.json", {
            "schema_version": "1.0", "kind": "bench.manifest", "run_id": run_id,
            "suite": {"name": "smoke"}, "vendor": dev.vendor, "state": "finished",
            "started_at": when.isoformat(timespec="milliseconds"),
            "ended_at": (when + timedelta(seconds=40)).isoformat(timespec="milliseconds"),
            "bench_version": "0.1.0", "entries": entries})
        files += 1
        if run_no % 2 == 1:  # every other run audited, the first always (and passed)
            passed = run_no == 1 or rng.random() < 0.8
            audit_dir = out / f"{run_id}-audit"
            audit_dir.mkdir()
            verdict = _verdict(run_dir, run_id, dev.vendor, entries, passed,
                               when + timedelta(days=3))
            if signer is not None:
                verdict = sign_document(verdict, signer, "audit")
            atomic_write_json(audit_dir / "verdict.json", verdict)
            files += 1
    return files


def _verdict(run_dir: Path, run_id: str, vendor: str, entries: list[dict[str, Any]],
             passed: bool, when: datetime) -> dict[str, Any]:
    reasons = [] if passed else [f"metric {entries[0]['id']} throughput_items_per_s: -8.4 % "
                                 "outside the 5 % band (synthetic)"]
    return seal({
        "schema_version": "1.0", "kind": "bench.audit", "audit_version": "0.1.0",
        "submitted": {"path": str(run_dir), "only": None, "run_id": run_id, "vendor": vendor,
                      "results": [e["id"] for e in entries], "image": None,
                      "result_sha256": {e["id"]: e["sha256"] for e in entries}},
        "mode": "native", "image": None,
        "tolerances": {"path": "synthetic", "sha256": "0" * 64, "caching": {}, "rules": []},
        "checks": [], "metrics": [], "reruns": [],
        "summary": {"checks": {}, "metrics": {"pass": 40 if passed else 39,
                                              "fail": 0 if passed else 1},
                    "reasons": reasons, "inconclusive": [],
                    "noise": {"too_noisy": False, "reasons": [], "affected": []}},
        "verdict": "pass" if passed else "fail", "out_dir": str(run_dir) + "-audit",
        "started_at": when.isoformat(timespec="seconds"),
        "ended_at": (when + timedelta(minutes=5)).isoformat(timespec="seconds"),
    })


def auditor_key(directory: Path, principal: str = "auditor@bench-store") -> tuple[Path, Path]:
    """A throwaway SSH key (ssh-keygen) that signs the generated verdicts, and the trust file
    that lists it."""
    key = directory / "auditor_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal,
                        "-f", str(key)], check=True, capture_output=True)
    kind, blob = Path(f"{key}.pub").read_text().split()[:2]
    trust = directory / "allowed_signers"
    trust.write_text(f"{principal} {kind} {blob}\n")
    return key, trust


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _timed_query(store_path: Path, sql: str, rounds: int = 5) -> tuple[float, float, int]:
    """Median seconds of ``sql``: as `invoke store query` runs it (opening the store each
    time), and on an open connection; and its row count."""
    whole, bare = [], []
    rows = 0
    with open_store(str(store_path), ROOT, read_only=True) as st:
        for _ in range(rounds):
            t0 = time.perf_counter()
            rows = len(read_only_query(st, sql).rows)
            whole.append(time.perf_counter() - t0)
        with st.begin() as conn:
            for _ in range(rounds):
                t0 = time.perf_counter()
                conn.exec_driver_sql(sql).fetchall()
                bare.append(time.perf_counter() - t0)
    return statistics.median(whole), statistics.median(bare), rows


def main(sizes: list[int], work: Path | None, site: bool) -> None:
    own = work is None
    base = Path(tempfile.mkdtemp(prefix="bench-store-")) if own else work
    assert base is not None
    print(f"bench-store: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f} "
          f"(1 min) at the start; scratch {base}")
    try:
        for n in sizes:
            docs, store = base / f"docs-{n}", base / f"store-{n}.duckdb"
            shutil.rmtree(docs, ignore_errors=True)
            for old in base.glob(f"store-{n}.duckdb*"):
                old.unlink()
            key, trust = auditor_key(base)
            t0 = time.perf_counter()
            files = generate(n, docs, signer=key)
            gen_s = time.perf_counter() - t0
            json_bytes = _tree_size(docs)
            t0 = time.perf_counter()
            with open_store(str(store), ROOT) as st:
                set_trust(st, trust)
                summary = add_paths(st, [docs])
            ingest_s = time.perf_counter() - t0
            if summary.refused:
                raise RuntimeError(f"generated documents refused: {summary.refused[:2]}")
            size = _size(store)
            q_s, q_bare, q_rows = _timed_query(store, QUERY)
            a_s, a_bare, a_rows = _timed_query(store, AUDITED_QUERY)
            t0 = time.perf_counter()
            with open_store(str(store), ROOT) as st:
                again = add_paths(st, [docs])
            re_s = time.perf_counter() - t0
            print(f"\n{n} result documents ({files} files with manifests and verdicts, "
                  f"{json_bytes / 1e6:.0f} MB of JSON; generated in {gen_s:.0f} s)")
            print(f"  ingest (validate + store)   {ingest_s:8.1f} s   "
                  f"{files / ingest_s:6.1f} files/s")
            print(f"  store size                  {size / 1e6:8.1f} MB   "
                  f"({size / json_bytes * 100:.0f} % of the JSON)")
            print(f"  adding them again           {re_s:8.1f} s   "
                  f"({len(again.present)} already stored, {sum(again.added.values())} added)")
            print(f"  cross-run query             {q_s * 1e3:8.1f} ms  "
                  f"({q_bare * 1e3:.1f} ms on an open connection; resnet-infer throughput "
                  f"per device, driver and torch since 2025: {q_rows} rows; median of 5)")
            print(f"  best audited per workload   {a_s * 1e3:8.1f} ms  "
                  f"({a_bare * 1e3:.1f} ms on an open connection; {a_rows} rows)")
            print(f"  load average now            {os.getloadavg()[0]:8.2f}")
        if site and sizes:
            n = sizes[-1]
            out = base / f"site-{n}"
            shutil.rmtree(out, ignore_errors=True)
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "invoke", "site", "--out", str(out),
                                   "--store", str(base / f"store-{n}.duckdb")], cwd=ROOT,
                                  capture_output=True, text=True)
            site_s = time.perf_counter() - t0
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            if proc.returncode:
                raise RuntimeError(f"invoke site failed: {proc.stderr or proc.stdout}")
            print(f"\ninvoke site at {n} documents  {site_s:8.1f} s   "
                  f"{_tree_size(out) / 1e6:.0f} MB written, peak memory "
                  f"{max(peak, before) / 1e3:.0f} MB; load average {os.getloadavg()[0]:.2f}")
            print("  " + proc.stdout.strip().replace("\n", "\n  "))
    finally:
        if own:
            shutil.rmtree(base, ignore_errors=True)
