"""The audit's power study (``invoke audit-study``): honest submissions audited as they are, and
the same submissions forged consistently (every rate times a factor, every time divided by
it, re-sealed with the manifest like a careful forger), audited again; how often each is
caught, with the machine's load recorded before and during. docs/audit.md, "The power
study", holds the table and the command that made it.

Each submission is a fresh run of the suite on this machine; each audit is ``invoke audit
--native`` in a child process (the audit measures the load its re-runs' processes wait
through, so it must not be this process, which may keep a CPU busy on purpose: ``busy``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.errors import UserError
from bench.jsonio import atomic_write_json, seal
from bench.metrics import spec_for

# Where tasks.py is (a checkout: `invoke audit` runs there), else the working directory.
REPO = Path(__file__).resolve().parents[2]
FACTORS = (1.05, 1.1, 1.2, 1.5, 3.0)
CAUGHT_SHARE = 0.9  # "caught at 9 of 10 or better"
SPIN = "while True:\n    pass\n"


# -- the forgery -------------------------------------------------------------------------------
# The catalogue's shares of a peak (a forged rate raises them by the same factor): a name of
# each declaration.
SHARES_OF_PEAK = ("mfu_pct", "pct_of_peak", "h2d_pinned_pct_of_peak")


def forged_scale(name: str, factor: float) -> float | None:
    """The factor a consistent forger applies to metric ``name``: every rate (higher is
    better, per second or per joule: throughput, FLOP/s, bandwidths, items per joule) and
    every share of a peak times ``factor``, every time in seconds (lower is better) divided
    by it; None for the rest (memory, power, utilisation, clocks, counts, properties)."""
    spec = spec_for(name)
    if spec is None or not spec.worsened_by_load:
        return None
    if spec.direction == "higher":
        rate = "/s" in spec.unit or "/J" in spec.unit
        return factor if rate or any(spec is spec_for(n) for n in SHARES_OF_PEAK) else None
    return 1 / factor if spec.unit == "s" else None


def _scale_metric(metric: Any, k: float) -> None:
    if not isinstance(metric, dict):
        return
    for key in ("value", "min", "max", "std", "mean"):
        if isinstance(metric.get(key), int | float) and not isinstance(metric[key], bool):
            metric[key] *= k
    if isinstance(metric.get("per_repeat"), list):
        metric["per_repeat"] = [v * k if isinstance(v, int | float)
                                and not isinstance(v, bool) else v
                                for v in metric["per_repeat"]]


def _forge_metrics(metrics: Any, factor: float) -> None:
    for name, metric in (metrics or {}).items():
        k = forged_scale(name, factor)
        if k is not None:
            _scale_metric(metric, k)


def forge(doc: dict[str, Any], factor: float) -> dict[str, Any]:
    """A result forged consistently by ``factor`` (> 1 claims a faster device, < 1 a slower
    one): its metrics, its grid points', and every repeat's own figures (throughput,
    latencies, workload metrics), so that each per-repeat figure the audit reads agrees."""
    out = json.loads(json.dumps(doc))
    _forge_metrics(out.get("metrics"), factor)
    for point in out.get("points") or []:
        _forge_metrics(point.get("metrics"), factor)
    for repeat in out.get("repeats") or []:
        if isinstance(repeat.get("throughput_items_per_s"), int | float):
            repeat["throughput_items_per_s"] *= factor
        if isinstance(repeat.get("latencies_s"), list):
            repeat["latencies_s"] = [x / factor for x in repeat["latencies_s"]]
        _forge_metrics(repeat.get("metrics"), factor)
    return seal(out)


def forge_run(src: Path, dst: Path, factor: float) -> Path:
    """A copy of run directory ``src`` with every result forged by ``factor`` and re-sealed,
    and the manifest's hashes rewritten to match (what the sha256 cannot stop)."""
    shutil.copytree(src, dst)
    manifest_path = dst / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    hashes = {}
    for path in sorted(dst.glob("*.json")):
        if path.name == manifest_path.name:
            continue
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("kind") != "bench.result":
            continue
        forged = forge(doc, factor)
        atomic_write_json(path, forged)
        hashes[path.name] = forged["sha256"]
    for entry in manifest.get("entries") or []:
        if entry.get("file") in hashes:
            entry["sha256"] = hashes[entry["file"]]
    atomic_write_json(manifest_path, manifest)
    return dst


# -- the machine's load ------------------------------------------------------------------------
def _pressure() -> float | None:
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(dict(kv.split("=") for kv in line.split()[1:])["avg10"]) / 100
    except (OSError, ValueError, KeyError, IndexError):
        return None


@dataclass
class LoadSampler:
    """The host's 1-minute load average and busy CPUs, sampled every ``period_s`` in a
    thread while the study runs."""

    period_s: float = 2.0
    samples: list[dict[str, float | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> LoadSampler:
        psutil.cpu_percent(None)
        self._thread = threading.Thread(target=self._loop, name="study-load", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.samples.append(snapshot(psutil.cpu_percent(None)))

    def summary(self) -> dict[str, Any]:
        loads = [s["load_1m"] for s in self.samples if s["load_1m"] is not None]
        busy = [s["busy_cpus"] for s in self.samples if s["busy_cpus"] is not None]
        return {"samples": len(self.samples),
                "load_1m_mean": statistics.fmean(loads) if loads else None,
                "load_1m_max": max(loads) if loads else None,
                "busy_cpus_mean": statistics.fmean(busy) if busy else None}


def snapshot(cpu_percent: float | None = None) -> dict[str, float | None]:
    cpus = psutil.cpu_count() or 1
    return {"load_1m": os.getloadavg()[0],
            "busy_cpus": None if cpu_percent is None else cpu_percent / 100 * cpus,
            "cpu_pressure_avg10": _pressure()}


def load_before(seconds: float = 5.0) -> dict[str, Any]:
    """The load before anything starts: the load averages and the CPUs busy over a few
    seconds (other processes only: the study has started nothing yet)."""
    psutil.cpu_percent(None)
    time.sleep(seconds)
    one, five, fifteen = os.getloadavg()
    cpus = psutil.cpu_count() or 1
    return {"load_1m": one, "load_5m": five, "load_15m": fifteen,
            "busy_cpus": psutil.cpu_percent(None) / 100 * cpus,
            "cpu_pressure_avg10": _pressure(), "over_s": seconds}


def machine() -> dict[str, Any]:
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": psutil.cpu_count() or 1, "cpu_model": model or "unknown",
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version()}


# -- the study ---------------------------------------------------------------------------------
@dataclass
class StudyConfig:
    suite: str = "smoke"
    honest: int = 10  # honest submissions (each audited as it is)
    factors: tuple[float, ...] = FACTORS
    per_factor: int = 10  # forged audits per factor (of the honest submissions, in turn)
    busy: bool = False  # keep one CPU busy with another process throughout
    tolerance: Path | None = None
    only: str | None = None  # audit only this result file of each submission
    out: Path = Path("audits/study")

    def check(self) -> None:
        if self.honest < 1 or self.per_factor < 0:
            raise UserError(f"--honest {self.honest} and --per-factor {self.per_factor}: at "
                            "least one honest submission is needed to forge from.",
                            "Give --honest 1 or more and --per-factor 0 or more.")
        bad = [f for f in self.factors if not (math.isfinite(f) and f > 0)]
        if bad or not self.factors:
            raise UserError(f"--factors {self.factors}: each must be a positive number.",
                            "Write e.g. --factors 1.05,1.1,1.2,1.5,3.")
        if self.out.exists() and any(self.out.iterdir()):
            raise UserError(f"Study directory {self.out} is not empty.",
                            "Name a new one with --out DIR.")


@dataclass
class Audit:
    kind: str  # "honest" or "x<factor>"
    factor: float
    submission: str
    verdict: str
    exit_code: int
    wall_s: float
    failed: list[str]  # "entry metric" of every failed metric
    power: dict[str, float]  # entry -> smallest throughput inflation caught (90 %)
    slowdown: float | None  # the largest load factor of its re-runs' entries


def _run(cmd: list[str], log: Path, env: dict[str, str] | None = None,
         timeout: float = 7200) -> tuple[int, float]:
    start = time.monotonic()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                              cwd=REPO if (REPO / "tasks.py").is_file() else None,
                              timeout=timeout)
    return proc.returncode, time.monotonic() - start


def submit(cfg: StudyConfig, target: Path, env: dict[str, str]) -> float:
    """One honest submission: the suite run natively (``invoke bench --native``'s code)."""
    code, wall = _run([sys.executable, "-m", "bench", "run", "--suite", cfg.suite, "--out",
                       str(target), "--quiet"], target.parent / f"{target.name}.log", env)
    if code != 0:
        raise UserError(f"The honest run {target} ended with exit code {code}: the study "
                        "needs finished runs.",
                        f"Read {target.parent / (target.name + '.log')}, then run again.")
    return wall


def audit_once(cfg: StudyConfig, run: Path, out: Path, kind: str, factor: float,
               env: dict[str, str]) -> Audit:
    target = run / cfg.only if cfg.only else run
    cmd = [sys.executable, "-m", "invoke", "audit", str(target), "--native", "--no-store",
           "--out", str(out)]
    if cfg.tolerance:
        cmd += ["--tolerance", str(cfg.tolerance)]
    code, wall = _run(cmd, out.parent / f"{out.name}.log", env)
    path = out / "verdict.json"
    if not path.is_file():
        raise UserError(f"The audit of {target} wrote no verdict (exit code {code}).",
                        f"Read {out.parent / (out.name + '.log')}.")
    v = json.loads(path.read_text(encoding="utf-8"))
    # The most the host's load could have slowed any entry of any re-run (its load factor).
    slowdowns = [f for r in v["reruns"]
                 for f in ((r.get("host") or {}).get("entry_load_factor") or {}).values()
                 if f is not None]
    return Audit(kind=kind, factor=factor, submission=run.name, verdict=v["verdict"],
                 exit_code=code, wall_s=wall,
                 failed=[f"{m['entry']} {m['metric']}" + (f" {m['point']}" if m["point"]
                                                          else "")
                         for m in v["metrics"] if m["status"] == "fail"],
                 power={e["entry"]: e["inflation"] for e in v["summary"]["power"]["entries"]},
                 slowdown=max(slowdowns) if slowdowns else None)


def run_study(cfg: StudyConfig, env: dict[str, str] | None = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the study; returns (and writes to ``<out>/study.json``) its record."""
    cfg.check()
    # The children run where tasks.py is: every path they get is absolute.
    cfg.out = cfg.out.resolve()
    cfg.tolerance = cfg.tolerance.resolve() if cfg.tolerance else None
    if Path(cfg.suite).is_file():
        cfg.suite = str(Path(cfg.suite).resolve())
    env = dict(env or os.environ)
    cfg.out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"config": {**asdict(cfg), "out": str(cfg.out),
                                         "tolerance": str(cfg.tolerance or "")},
                              "machine": machine()}
    log(f"study: load before, over 5 s ({record['machine']['cpus']} CPUs)")
    record["load_before"] = load_before()
    spinner = None
    if cfg.busy:
        spinner = subprocess.Popen([sys.executable, "-c", SPIN])
        record["busy_pid"] = spinner.pid
    audits: list[Audit] = []
    runs: list[tuple[Path, float]] = []
    try:
        with LoadSampler() as sampler:
            for i in range(cfg.honest):
                run = cfg.out / f"submission-{i + 1}"
                log(f"study: honest submission {i + 1}/{cfg.honest} ({cfg.suite})")
                runs.append((run, submit(cfg, run, env)))
                log(f"study: audit of submission {i + 1}")
                audits.append(audit_once(cfg, run, cfg.out / f"audit-honest-{i + 1}",
                                         "honest", 1.0, env))
                log(f"study:   {audits[-1].verdict} in {audits[-1].wall_s:.0f} s")
            for factor in cfg.factors:
                for j in range(cfg.per_factor):
                    src = runs[j % len(runs)][0]
                    name = f"x{factor:g}-{j + 1}"
                    forged = forge_run(src, cfg.out / f"forged-{name}", factor)
                    log(f"study: audit of {src.name} forged x{factor:g} ({j + 1}/"
                        f"{cfg.per_factor})")
                    audits.append(audit_once(cfg, forged, cfg.out / f"audit-{name}",
                                             f"x{factor:g}", factor, env))
                    log(f"study:   {audits[-1].verdict} in {audits[-1].wall_s:.0f} s")
        record["load_during"] = sampler.summary()
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    record["submissions"] = [{"run": str(r), "wall_s": w} for r, w in runs]
    record["audits"] = [asdict(a) for a in audits]
    record["rows"] = table_rows(audits)
    record["caught_from"] = caught_from(record["rows"])
    atomic_write_json(cfg.out / "study.json", record)
    return record


def table_rows(audits: list[Audit]) -> list[dict[str, Any]]:
    rows = []
    for kind in dict.fromkeys(a.kind for a in audits):
        mine = [a for a in audits if a.kind == kind]
        count = {v: sum(a.verdict == v for a in mine)
                 for v in ("pass", "inconclusive", "fail", "cannot_rerun")}
        powers = [min(a.power.values()) for a in mine if a.power]
        slow = [a.slowdown for a in mine if a.slowdown is not None]
        rows.append({"kind": kind, "factor": mine[0].factor, "n": len(mine), **count,
                     "caught": count["fail"] if kind != "honest" else None,
                     "wall_s_median": statistics.median(a.wall_s for a in mine),
                     "power_median": statistics.median(powers) if powers else None,
                     "slowdown_median": statistics.median(slow) if slow else None,
                     "failed": sorted({f for a in mine for f in a.failed})})
    return rows


def caught_from(rows: list[dict[str, Any]]) -> float | None:
    """The smallest inflation from which every larger one studied was caught at 9 of 10 or
    better (None: none was)."""
    forged = sorted((r for r in rows if r["kind"] != "honest" and r["factor"] > 1),
                    key=lambda r: r["factor"])
    found = None
    for r in reversed(forged):
        if r["n"] and r["caught"] / r["n"] >= CAUGHT_SHARE:
            found = r["factor"]
        else:
            break
    return found


def markdown(record: dict[str, Any]) -> str:
    """The study's table, as docs/audit.md holds it."""
    m, cfg = record["machine"], record["config"]
    before, during = record["load_before"], record.get("load_during") or {}
    subs = [s["wall_s"] for s in record["submissions"]]
    lines = [
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB; suite "
        f"`{cfg['suite']}`" + (f", audits of `{cfg['only']}` alone" if cfg["only"] else "")
        + ("; one CPU kept busy by another process throughout" if cfg["busy"] else "") + ".",
        f"Load before: 1-minute average {before['load_1m']:.2f} (5-minute "
        f"{before['load_5m']:.2f}), {before['busy_cpus']:.2f} CPUs busy. During: load "
        f"average {_f(during.get('load_1m_mean'))} mean, {_f(during.get('load_1m_max'))} max; "
        f"{_f(during.get('busy_cpus_mean'))} CPUs busy on average.",
        f"Honest run of the suite: {statistics.median(subs):.0f} s (median of {len(subs)}).",
        "",
        "| audits | n | pass | inconclusive | fail | caught | audit time (median) | "
        "inflation it could catch (median, 90 %) | load factor (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in record["rows"]:
        label = "honest" if r["kind"] == "honest" else (
            f"forged: rates x{r['factor']:g}, times / {r['factor']:g}")
        caught = "" if r["caught"] is None else f"{r['caught']}/{r['n']}"
        lines.append(f"| {label} | {r['n']} | {r['pass']} | {r['inconclusive']} | {r['fail']} | "
                     f"{caught} | {r['wall_s_median']:.0f} s | {_x(r['power_median'])} | "
                     f"{_x(r['slowdown_median'])} |")
    found = record.get("caught_from")
    lines += ["", ("Caught at 9 of 10 or better from x" f"{found:g} on." if found else
                   "No inflation studied was caught at 9 of 10 or better.")]
    honest_fail = next((r["fail"] for r in record["rows"] if r["kind"] == "honest"), 0)
    lines.append(f"Honest audits that failed: {honest_fail}.")
    return "\n".join(lines) + "\n"


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _x(v: float | None) -> str:
    return "n/a" if v is None else f"x{v:.3g}"
