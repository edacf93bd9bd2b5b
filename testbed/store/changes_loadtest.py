"""``invoke bench-changes``: does `invoke changes` find what was planted, and nothing else?

It writes a history with planted changes (``testbed.store.loadtest.generate_history``: every
hardware over eight quarters, steps of 3, 5, 10 and 20 % up and down at known runs, with a
driver, torch or image change at some and none at others, plus version changes that move
nothing, disturbed runs, failed audits and impossible figures), adds it to a fresh DuckDB
store, runs the detection and scores it against the plan: found at the right run with the
right cause, per size; missed; false alarms; time taken. Figures to read, not assertions: the
machine may be shared (its load is printed).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench.jsonio import atomic_write_json
from testbed.audit.interval import Interval
from testbed.store import open_store
from testbed.store.changes import (
    DEFAULT_METRIC,
    Change,
    ChangeReport,
    ChangeSettings,
    detect,
    load_series,
)
from testbed.store.ingest import add_paths, set_trust
from testbed.store.loadtest import RUN_NOISE, Truth, auditor_key, generate_history, plan
from testbed.store.queries import Filters

ROOT = Path(__file__).resolve().parents[2]


NEAR = 3  # runs of its series: a change this close to a planted one is that one, misplaced
P_VALUES = (1e-3, 1e-4, 1e-5, 1e-6)  # the default (ChangeSettings) among them


@dataclass
class Score:
    """How a detection run compares with the plan."""

    found: list[tuple[Truth, Change]] = field(default_factory=list)  # right run, right cause
    wrong_cause: list[tuple[Truth, Change]] = field(default_factory=list)
    misplaced: list[tuple[Truth, Change, int]] = field(default_factory=list)  # runs off
    missed: list[Truth] = field(default_factory=list)
    false_alarms: list[Change] = field(default_factory=list)  # nothing planted near


def _when(truth: Truth) -> datetime:
    return datetime.fromisoformat(truth.started_at).replace(tzinfo=None)


def _at(truth: Truth, change: Change) -> bool:
    """The planted run is the first run after the change (the run before it is earlier)."""
    return change.before.started_at < _when(truth) <= change.after.started_at


def _series_key(truth: Truth) -> tuple[str, str, str]:
    return truth.hardware_key, truth.entry, truth.metric


def score(report: ChangeReport, planted: Sequence[Truth]) -> Score:
    out = Score()
    unmatched = list(report.changes)
    by_key = {(s.key.hardware_key, s.key.entry_id, s.key.metric): s for s in report.series}
    for truth in planted:
        mine = [c for c in unmatched if (c.key.hardware_key, c.key.entry_id, c.key.metric)
                == _series_key(truth)]
        match = next((c for c in mine if _at(truth, c)), None)
        if match is not None:
            unmatched.remove(match)
            right = {f.field for f in match.fields} == set(truth.fields)
            (out.found if right else out.wrong_cause).append((truth, match))
            continue
        series = by_key.get(_series_key(truth))
        if series is not None:
            kept = series.kept
            at = next((i for i, p in enumerate(kept) if p.started_at >= _when(truth)),
                      len(kept))
            near = [(abs(kept.index(c.after) - at), c) for c in mine]
            near = [(d, c) for d, c in near if d <= NEAR]
            if near:
                d, c = min(near, key=lambda x: x[0])
                unmatched.remove(c)
                out.misplaced.append((truth, c, d))
                continue
        out.missed.append(truth)
    out.false_alarms = unmatched
    return out


def _pct(x: float) -> str:
    return f"{x * 100:+.0f} %"


def _count(items: Sequence[object], size: float) -> int:
    return sum(1 for x in items if abs((x[0] if isinstance(x, tuple) else x).change) == size)


def print_score(name: str, result: Score, planted: Sequence[Truth], seconds: float) -> None:
    sizes = sorted({abs(t.change) for t in planted})
    print(f"\n{name}: {len(result.found)} of {len(planted)} planted changes found at the right "
          f"run with the right cause; {len(result.false_alarms)} false alarm(s) (nothing "
          f"planted within {NEAR} runs); {seconds:.1f} s")
    print("  size   planted  found  wrong cause  runs off  missed")
    for size in sizes:
        print(f"  {size * 100:4.0f} %  {_count(planted, size):7d}  "
              f"{_count(result.found, size):5d}  {_count(result.wrong_cause, size):11d}  "
              f"{_count(result.misplaced, size):8d}  {_count(result.missed, size):6d}")
    for truth, change in result.wrong_cause:
        print(f"  wrong cause: {truth.entry} {_pct(truth.change)} planted with "
              f"{truth.cause} at {truth.run_id}: found '{change.cause}'")
    for truth, change, d in result.misplaced:
        print(f"  {d} run(s) off: {truth.entry} {_pct(truth.change)} ({truth.cause}) at "
              f"{truth.run_id}, found at {change.after.run_id} ({change.cause})")
    for truth in result.missed:
        print(f"  missed: {truth.entry} {_pct(truth.change)} ({truth.cause}) at {truth.run_id}")
    for change in result.false_alarms:
        print(f"  false alarm: {change.key.entry_id} {change.percent:+.1f} % at "
              f"{change.after.run_id} ({change.cause}; p {change.pvalue:.1g}; "
              f"{change.runs_before} run(s) before, {change.runs_after} after)")
    lone = [c for _, c in result.found
            if not isinstance(c.neighbours, Interval)
            or c.neighbours.low <= 1 <= c.neighbours.high]
    print(f"  of those found, {len(lone)} could not have been told from the last run before "
          "and the first run after alone (their repeats' interval holds 1)")


def _detect(store: Path, planted: list[Truth], stem: Path) -> None:
    """The default detection in full, then the same series at other p-values, and with
    everything kept in."""
    sizes = sorted({abs(t.change) for t in planted})
    sweep = []
    for include_all in (False, True):
        with open_store(str(store), ROOT, read_only=True) as st:
            t0 = time.perf_counter()
            series, excluded = load_series(st, Filters(), include_all=include_all)
            load_s = time.perf_counter() - t0
        for p in P_VALUES:
            settings = ChangeSettings(max_pvalue=p)
            t0 = time.perf_counter()
            for s in series:
                s.changes = detect(s, settings)
            seconds = load_s + time.perf_counter() - t0
            report = ChangeReport(series, settings, include_all, None, excluded,
                                  (DEFAULT_METRIC,))
            result = score(report, planted)
            sweep.append((include_all, p, result, seconds))
            if p == ChangeSettings().max_pvalue:
                name = ("--include-all" if include_all else
                        "default (kept out: disturbed, failed checks and audits)")
                print_score(f"{name}, p < {p:g}", result, planted, seconds)
                print(f"  {report.kept_out()}; {len(series)} series; reading and checking "
                      f"the documents {load_s:.1f} s; load average {os.getloadavg()[0]:.2f}")
                if not include_all:
                    stem.with_name(stem.name + "-changes.json").write_text(json.dumps(
                        [c.to_dict() for c in report.changes], indent=1), encoding="utf-8")
    print("\nfound at the right run with the right cause, per size (of "
          f"{_count(planted, sizes[0])} each); false alarms; time (reading the documents "
          "included)")
    print("  series      p       " + "  ".join(f"{s * 100:4.0f} %" for s in sizes)
          + "  runs off  false alarms  time")
    for include_all, p, result, seconds in sweep:
        print(f"  {'all' if include_all else 'kept':<6}  {p:7.0e}  "
              + "  ".join(f"{_count(result.found, s):6d}" for s in sizes)
              + f"  {len(result.misplaced):8d}  {len(result.false_alarms):12d}  "
                f"{seconds:5.1f} s")


def main(n_results: int, work: Path | None, seed: int = 0, noise: float = RUN_NOISE) -> None:
    """The whole measurement; with ``work`` holding the store and plan of an earlier run of
    the same size and seed, only the detection again."""
    own = work is None
    base = Path(tempfile.mkdtemp(prefix="bench-changes-")) if own else work
    assert base is not None
    print(f"bench-changes: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f} "
          f"(1 min) at the start; scratch {base}")
    try:
        name = f"history-{n_results}-seed{seed}-noise{noise:g}"
        docs, store = base / name, base / f"{name}.duckdb"
        truth = base / f"{name}-planted.json"
        if truth.exists() and store.exists():
            planted = [Truth(**{**t, "fields": tuple(t["fields"])})
                       for t in json.loads(truth.read_text(encoding="utf-8"))]
            print(f"reusing the store {store} and its plan {truth}")
            _detect(store, [t for t in planted if t.change], base / name)
            return
        shutil.rmtree(docs, ignore_errors=True)
        for old in base.glob(f"{name}.duckdb*"):
            old.unlink()
        runs, plants = plan(n_results, seed=seed)
        t0 = time.perf_counter()
        key, trust = auditor_key(base)  # failed audits count only when signed
        history = generate_history(docs, runs, plants, seed=seed, run_noise=noise, signer=key)
        gen_s = time.perf_counter() - t0
        atomic_write_json(truth, [t.to_dict() for t in history.planted + history.version_only])
        print(f"\n{history.results} results in {history.runs} runs ({runs} per hardware over "
              f"eight quarters, {noise:.0%} run-to-run noise; {history.files} files, generated "
              f"in {gen_s:.0f} s): "
              f"{len(history.planted)} planted changes, {len(history.version_only)} version "
              f"changes that move nothing, {history.disturbed} disturbed runs, "
              f"{history.failed_audits} failed audits, {history.failed_checks} impossible "
              "figures")
        t0 = time.perf_counter()
        with open_store(str(store), ROOT) as st:
            set_trust(st, trust)
            summary = add_paths(st, [docs])
        if summary.refused:
            raise RuntimeError(f"generated documents refused: {summary.refused[:2]}")
        print(f"  ingest                {time.perf_counter() - t0:8.1f} s; load average "
              f"{os.getloadavg()[0]:.2f}")
        _detect(store, history.planted, base / name)
    finally:
        if own:
            shutil.rmtree(base, ignore_errors=True)
