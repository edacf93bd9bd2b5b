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
from bench.jsonio import (
    atomic_write_json,
    body_sha256,
    parse_json_document,
    read_document_bytes,
    sanitize,
    seal,
)
from bench.metrics import spec_for
from testbed.report.inputs import identity_facts
from testbed.signing import sign_document
from testbed.store import open_store
from testbed.store.ingest import add_paths, candidate_files, set_trust
from testbed.store.queries import read_only_query
from testbed.store.rows import hardware_key

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


def speed_exponent(name: str) -> int:
    """How a metric moves on a device ``factor`` times faster: x factor (+1: a rate), / factor
    (-1: a time), not at all (0). The catalogue says which metrics scale with the device's
    speed (depends_on: device_speed) and which way is better (bench/metrics.yaml)."""
    spec = spec_for(name)
    return spec.better if spec is not None and "device_speed" in spec.depends_on else 0


def _scale(doc: dict[str, Any], factor: float) -> None:
    """Figures of a faster (or slower) device: rates up, times down."""
    for name, entry in doc["metrics"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("value"), int | float) \
                or isinstance(entry.get("value"), bool):
            continue
        if not speed_exponent(name):
            continue
        mult = factor ** speed_exponent(name)
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


@dataclass(frozen=True)
class Round:
    """One round: the files parsed, then added by the command, back to back."""

    parse_s: float  # read + json.loads of every file
    reader_s: float  # read and parsed as the store reads them (bench.jsonio)
    ingest_s: float  # `invoke store add DIR --store NEW` as a command, start to exit

    @property
    def ratio(self) -> float:
        return self.ingest_s / self.parse_s


@dataclass(frozen=True)
class IngestRatio:
    """`invoke store add` of a directory against the time to parse its files: the median
    round by ratio (a busy machine slows either side of one round)."""

    files: int
    rounds: list[Round]

    @property
    def median(self) -> Round:
        return sorted(self.rounds, key=lambda r: r.ratio)[len(self.rounds) // 2]


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def ingest_against_parsing(docs: Path, store: Path, rounds: int = 3) -> IngestRatio:
    """Rounds of: parse every file `invoke store add` reads under ``docs`` (read +
    json.loads, then as the store reads them), then time the command adding them to a new
    store ``store``."""
    files = candidate_files([docs])
    for f in files:  # the page cache holds them for every measurement alike
        f.read_bytes()
    out = []
    for _ in range(rounds):
        parse_s = _timed(lambda: [json.loads(f.read_bytes()) for f in files])
        reader_s = _timed(lambda: [parse_json_document(read_document_bytes(f, docs))
                                   for f in files])
        for old in store.parent.glob(store.name + "*"):
            old.unlink()
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "invoke", "store", "add", str(docs),
                               "--store", str(store)], cwd=ROOT, capture_output=True,
                              text=True)
        ingest_s = time.perf_counter() - t0
        if proc.returncode:
            raise RuntimeError(f"invoke store add failed: {proc.stderr or proc.stdout}")
        out.append(Round(parse_s, reader_s, ingest_s))
    return IngestRatio(len(files), out)


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
            load = os.getloadavg()[0]
            ratio = ingest_against_parsing(docs, base / f"cli-{n}.duckdb")
            r = ratio.median
            print(f"\n{n} result documents ({files} files with manifests and verdicts, "
                  f"{json_bytes / 1e6:.0f} MB of JSON; generated in {gen_s:.0f} s)")
            print(f"  parse (read + json.loads)   {r.parse_s:8.2f} s   (as the store reads "
                  f"them, bench.jsonio: {r.reader_s:.2f} s)")
            print(f"  invoke store add            {r.ingest_s:8.2f} s   {r.ratio:.1f}x parsing "
                  f"({r.ingest_s / r.reader_s:.1f}x the store's reading): the median of "
                  f"{len(ratio.rounds)} rounds ("
                  + ", ".join(f"{x.ratio:.1f}x" for x in ratio.rounds)
                  + f"), each a new store without a trust file; load average {load:.2f} "
                  f"before, {os.getloadavg()[0]:.2f} after")
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
            print(f"  ingest with signatures      {ingest_s:8.1f} s   "
                  f"{files / ingest_s:6.1f} files/s (in this process, into a store with a "
                  "trust file: each verdict's signature checked by ssh-keygen)")
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


# -- a history with planted changes: what `invoke changes` must find (docs/store.md) ----------
# Each hardware (a device and count: one line of history) runs the same suite all along, its
# versions change at known runs, and at some of those runs (and at some runs where nothing
# changed) its figures for one workload step by a known fraction. Nothing else moves: the
# runs vary by RUN_NOISE, their repeats by REPEAT_NOISE, so every step is a planted one.

RUN_NOISE = 0.02  # run-to-run spread (lognormal sigma) of every figure
REPEAT_NOISE = 0.01  # spread of the repeats around their run's figure
SPAN = timedelta(days=8 * 91)  # eight quarters
SCORECARD_EVERY = 4  # every 4th run of a hardware is the scorecard suite, the others smoke
VERSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "cuda": {"driver": ("535.104.05", "550.54.15", "555.42.06", "560.35.03", "565.57.01",
                        "570.86.10"),
             "torch": ("2.3.1+cu121", "2.4.1+cu124", "2.5.1+cu124", "2.6.0+cu126",
                       "2.7.1+cu128", "2.8.0+cu128")},
    "mlu": {"driver": ("v5.10.22", "v5.10.29", "v5.10.31", "v6.0.2", "v6.1.0", "v6.2.1"),
            "torch": ("2.1.0+mlu", "2.3.0+mlu", "2.4.0+mlu", "2.5.0+mlu", "2.6.0+mlu",
                      "2.7.0+mlu")},
    "corex": {"driver": ("4.1.0", "4.1.2", "4.2.0", "4.2.1", "4.3.0", "4.3.2"),
              "torch": ("2.1.1+corex", "2.3.1+corex", "2.4.1+corex", "2.5.1+corex",
                        "2.6.0+corex", "2.7.0+corex")},
    "cpu": {"driver": ("",),
            "torch": ("2.10.0+cpu", "2.11.0+cpu", "2.12.1+cpu", "2.13.0+cpu", "2.14.0+cpu",
                      "2.15.0+cpu")},
}
DISTURBED_SHARE = 0.03  # runs slowed by other work on the machine (and saying so)
FAILED_AUDIT_SHARE = 0.12  # of the audited runs: their figures were inflated
FAILED_CHECK_SHARE = 0.01  # results with a figure no device could produce
RECORDED_FROM = 2  # quarters before this one predate the `disturbed` record


@dataclass(frozen=True)
class Hardware:
    """One line of history: a device, how many, and which smoke run it copies (1 or 2
    threads: their figures differ, so one hardware keeps one)."""

    device: FakeDevice
    count: int
    smoke: int  # index of the smoke template


@dataclass(frozen=True)
class Plant:
    """From run ``at`` of hardware ``hardware`` on, ``entry``'s figures are ``1 + change``
    times what they were; ``cause`` (driver, torch, image or none) changes at that run.
    ``change`` 0 is a version change that moves nothing (a false alarm if reported)."""

    hardware: int
    entry: str
    at: int
    change: float
    cause: str


@dataclass
class Truth:
    """What was planted, as ``invoke changes`` names it: the series (hardware key, entry,
    metric), the first run with the change, its size and the provenance fields changed."""

    hardware_key: str
    entry: str
    metric: str
    run_id: str
    started_at: str
    change: float
    cause: str
    fields: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"hardware_key": self.hardware_key, "entry": self.entry, "metric": self.metric,
                "run_id": self.run_id, "started_at": self.started_at, "change": self.change,
                "cause": self.cause, "fields": list(self.fields)}


@dataclass
class History:
    files: int
    results: int
    runs: int
    planted: list[Truth]  # the changes (change != 0), in hardware and run order
    version_only: list[Truth]  # version changes that moved nothing
    disturbed: int  # runs
    failed_audits: int  # runs
    failed_checks: int  # results


def history_hardware() -> list[Hardware]:
    """The load test's lines of history: each accelerator alone and eight of them, and the
    CPU at one and at two threads."""
    out = []
    for dev in DEVICES:
        if dev.vendor == "cpu":
            out += [Hardware(dev, 1, 0), Hardware(dev, 1, 1)]
        else:
            out += [Hardware(dev, 1, 0), Hardware(dev, 8, 1)]
    return out


def plan(n_results: int, sizes: tuple[float, ...] = (0.03, 0.05, 0.10, 0.20),
         seed: int = 0) -> tuple[int, list[Plant]]:
    """Runs per hardware for about ``n_results`` results, and where the changes go: every size
    with every cause (driver, torch, image, none) as a regression and as an improvement, at
    four evenly spaced runs of each hardware (a version that changes at such a run without a
    planted change moves nothing). The CPU has no driver or image, so it takes the torch and
    unexplained ones."""
    hardware = history_hardware()
    per_run = (3 * (SCORECARD_EVERY - 1) + 5) / SCORECARD_EVERY
    runs = max(24, round(n_results / per_run / len(hardware)))
    rng = random.Random(seed)
    combos = [(sign * size, cause) for size in sizes for cause in ("driver", "torch", "image",
                                                                   "none")
              for sign in (-1, 1)]
    rng.shuffle(combos)
    cpu = [c for c in combos if c[1] in ("torch", "none")]
    other = [c for c in combos if c not in cpu]
    slots = [round(runs * f) for f in (0.15, 0.35, 0.55, 0.75)]
    slots = [s - s % SCORECARD_EVERY + 1 for s in slots]  # a smoke run
    entries = ("resnet-infer", "resnet-train", "gemm-infer")
    plants = []
    for h, hw in enumerate(hardware):
        for k, at in enumerate(slots):
            pool = cpu if hw.device.vendor == "cpu" else (other or cpu)
            if pool:
                change, cause = pool.pop()
            else:  # all planted: a version change that moves nothing
                change = 0.0
                cause = rng.choice(("torch",) if hw.device.vendor == "cpu"
                                   else ("driver", "torch", "image"))
            plants.append(Plant(h, entries[(h + k) % len(entries)], at, change, cause))
    return runs, plants


def _repeats(entry: dict[str, Any], deviations: list[float], inverse: bool) -> None:
    """Re-draw a metric's repeats around its (already scaled) value: their mean stays the
    value, their spread is the deviations'."""
    values = entry.get("per_repeat")
    if not isinstance(values, list) or len(values) != len(deviations) or len(values) < 2:
        return
    mean_dev = sum(deviations) / len(deviations)
    value = entry["value"]
    new = [value * (1 - (d - mean_dev) if inverse else 1 + (d - mean_dev)) for d in deviations]
    entry["per_repeat"] = new
    entry["std"] = statistics.stdev(new)
    if "cv" in entry:
        entry["cv"] = entry["std"] / value if value else None
    if "min" in entry:
        entry["min"], entry["max"] = min(new), max(new)


def generate_history(out: Path, runs: int, plants: list[Plant], seed: int = 0,
                     hardware: list[Hardware] | None = None,
                     disturbed_share: float = DISTURBED_SHARE,
                     failed_audit_share: float = FAILED_AUDIT_SHARE,
                     failed_check_share: float = FAILED_CHECK_SHARE,
                     run_noise: float = RUN_NOISE,
                     scorecard_every: int = SCORECARD_EVERY,
                     signer: Path | None = None) -> History:
    """Write ``runs`` runs of each hardware over eight quarters under ``out`` (results,
    manifests, a verdict for every other run) with the ``plants``; return what was planted.
    ``signer``: an SSH key that signs the verdicts (a store counts only signed verdicts as
    audits, so without it no audit, failed or passed, is one).

    Besides the plants: ``disturbed_share`` of the runs were slowed by other work and say so
    (a ``disturbed`` record with its reason; quiet runs from the third quarter on record
    ``{"value": false}``, earlier ones predate the record); ``failed_audit_share`` of the
    audited runs inflated their figures and failed their audit; ``failed_check_share`` of the
    GEMM results carry a figure far beyond the device's peak (a plausibility check fails).
    None of these is a change: `invoke changes` keeps them out by default. Every
    ``scorecard_every``-th run of a hardware runs the scorecard suite (0: none)."""
    rng = random.Random(seed)
    hardware = hardware or history_hardware()
    smoke = [t for t in _templates() if "gemm-infer" in {d["workload"]["id"] for d in t}]
    scorecard = [t for t in _templates() if t not in smoke]
    start = datetime(2024, 1, 8, tzinfo=timezone.utc)
    step = SPAN / runs
    schedule = []  # (when, hardware index, run index)
    for h in range(len(hardware)):
        for j in range(runs):
            schedule.append((start + step * (j + 0.2 + 0.6 * rng.random()), h, j))
    schedule.sort()
    by_hw: dict[int, list[Plant]] = {}
    for p in plants:
        by_hw.setdefault(p.hardware, []).append(p)
    versions = {h: {"driver": 0, "torch": 0, "image": 0} for h in range(len(hardware))}
    # (hardware, entry) -> the plant and the fields it changed, until a run has that entry
    pending: dict[tuple[int, str], tuple[Plant, set[str]]] = {}
    history = History(0, 0, 0, [], [], 0, 0, 0)
    run_no = 0
    for when, h, j in schedule:
        hw = hardware[h]
        dev = hw.device
        table = VERSIONS[dev.vendor]
        changed: set[str] = set()
        for p in by_hw.get(h, []):
            if p.at != j:
                continue
            if p.cause in changed:
                pass  # two plants at one run share its version change
            elif p.cause == "driver" and len(table["driver"]) > 1:
                versions[h]["driver"] += 1
                changed.add("driver")
            elif p.cause == "torch":
                versions[h]["torch"] += 1
                changed.add("torch")
                if dev.image:  # a new torch is a new image
                    versions[h]["image"] += 1
                    changed.add("image")
            elif p.cause == "image" and dev.image:
                versions[h]["image"] += 1  # the same tag rebuilt (a new library inside)
                changed.add("image")
            pending[(h, p.entry)] = (p, changed)
        driver = table["driver"][min(versions[h]["driver"], len(table["driver"]) - 1)]
        torch = table["torch"][min(versions[h]["torch"], len(table["torch"]) - 1)]
        run_no += 1
        audited = run_no % 2 == 1
        failed_audit = audited and run_no > 1 and rng.random() < failed_audit_share
        disturbed = rng.random() < disturbed_share
        quarter = int((when - start) / timedelta(days=91))
        suite = scorecard if (scorecard_every and j % scorecard_every == 0 and scorecard) \
            else smoke
        template = suite[min(hw.smoke, len(suite) - 1)]
        suite_name = (template[0].get("suite") or {}).get("name") or "smoke"
        run_id = f"{when:%Y%m%dT%H%M%SZ}-{dev.vendor}-{suite_name}-{run_no:06d}"
        digest = "sha256:" + body_sha256({"image": dev.image, "torch": torch,
                                          "build": versions[h]["image"]}) if dev.image else None
        run_dir = out / run_id
        run_dir.mkdir(parents=True)
        slowdown = rng.uniform(0.55, 0.85) if disturbed else 1.0
        entries = []
        for tmpl in template:
            doc = copy.deepcopy(tmpl)
            doc.pop("sha256", None)
            doc["run_id"] = run_id
            wid = doc["workload"]["id"]
            prov = doc["provenance"]
            prov["vendor"] = dev.vendor
            threads = prov["device"].get("threads")
            prov["device"] = {**prov["device"], "vendor": dev.vendor, "name": dev.name,
                              "count": hw.count, "memory_total_bytes": dev.memory_bytes,
                              "driver_version": driver or None}
            if dev.vendor != "cpu":
                prov["device"].pop("threads", None)
                prov["image"] = {"tag": f"{dev.image}:{torch.split('+')[0]}",
                                 "digest": digest, "native": False}
            else:
                prov["device"]["threads"] = threads
            prov["torch"] = {**prov["torch"], "version": torch}
            prov.pop("label", None)
            factor = dev.speed * (0.6 if doc["workload"]["group"] == "micro" else 1.0)
            factor *= rng.lognormvariate(0, run_noise) * slowdown
            for p in by_hw.get(h, []):
                if p.entry == wid and j >= p.at:
                    factor *= 1 + p.change
            if failed_audit:
                factor *= 1.12
            failed_check = rng.random() < failed_check_share and wid == "gemm-infer"
            if failed_check:
                factor *= 1000  # beyond any device's peak FLOP/s
            _scale(doc, factor)
            n = len((doc["metrics"].get("throughput_items_per_s") or {}).get("per_repeat")
                    or [])
            deviations = [rng.gauss(0, REPEAT_NOISE) for _ in range(n)]
            for name, entry in doc["metrics"].items():
                if isinstance(entry, dict) and isinstance(entry.get("value"), int | float) \
                        and speed_exponent(name):
                    _repeats(entry, deviations, inverse=speed_exponent(name) < 0)
            _shift(doc, when - datetime.fromisoformat(doc["started_at"]))
            if disturbed:
                doc["disturbed"] = {"value": True, "reasons": [{
                    "code": "host_cpu_busy", "figure": 1.5, "threshold": 0.25,
                    "unit": "CPUs",
                    "message": "other processes used 1.5 of 2 CPUs during the timed window"}]}
            elif quarter >= RECORDED_FROM:
                doc["disturbed"] = {"value": False}
            doc = seal(sanitize(doc))
            name = f"{wid}.json"
            atomic_write_json(run_dir / name, doc)
            entries.append({"id": wid, "workload": doc["workload"]["name"],
                            "mode": doc["workload"]["mode"], "status": doc["status"],
                            "file": name, "sha256": doc["sha256"]})
            history.results += 1
            history.failed_checks += failed_check
            history.files += 1
            if (h, wid) in pending:
                p, changed = pending.pop((h, wid))
                truth = Truth(hardware_key(identity_facts(doc)), wid, "throughput_items_per_s",
                              run_id, doc["started_at"], p.change, p.cause,
                              tuple(sorted(changed)))
                (history.planted if p.change else history.version_only).append(truth)
        atomic_write_json(run_dir / "manifest.json", {
            "schema_version": "1.0", "kind": "bench.manifest", "run_id": run_id,
            "suite": {"name": suite_name}, "vendor": dev.vendor, "state": "finished",
            "started_at": when.isoformat(timespec="milliseconds"),
            "ended_at": (when + timedelta(seconds=40)).isoformat(timespec="milliseconds"),
            "bench_version": "0.1.0", "entries": entries})
        history.files += 1
        history.runs += 1
        history.disturbed += disturbed
        if audited:
            audit_dir = out / f"{run_id}-audit"
            audit_dir.mkdir()
            verdict = _verdict(run_dir, run_id, dev.vendor, entries, not failed_audit,
                               when + timedelta(days=3))
            if signer is not None:
                verdict = sign_document(verdict, signer, "audit")
            atomic_write_json(audit_dir / "verdict.json", verdict)
            history.files += 1
            history.failed_audits += failed_audit
    return history
