"""Submitted vs re-measured: every metric under its tolerance, and the anti-gaming checks
(caching, LLM output length, seeds and configuration of the re-run)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from bench.documents import AnyMetrics, MetricRecord, Metrics, Params, ResultDoc
from bench.metrics import MetricSpec, spec_for
from bench.stats import percentile
from testbed.audit.checks import ANTI_GAMING, INTEGRITY, RERUN, Check, failed, passed, skipped
from testbed.audit.interval import (
    DIFFERENCE,
    RATIO,
    Band,
    Interval,
    band_for,
    ideal_interval,
    judge,
    ratio_interval,
)
from testbed.audit.power import power_statement, predicted, repeats_to_decide
from testbed.audit.tolerances import Rule, Tolerances, compare_value

THROUGHPUT = "throughput_items_per_s"
PERCENTILE = re.compile(r"latency_p(\d+(?:\.\d+)?)_s")
# Metric outcomes that come from comparing the two runs (the others say why there was none).
JUDGED = ("pass", "fail", "inconclusive", "not_judged")
# Rules a re-run for more evidence may change: more repeats, a longer window, a timeout to
# match; everything else must be as submitted.
MORE_EVIDENCE_RULES = ("repeats", "min_duration_s", "timeout_s")
# Statuses that are results: a measurement, or a fact about the device (out of memory, not
# supported). error / timeout / killed are failed measurements and never audit as pass.
MEASURED_STATUSES = ("ok", "oom", "unsupported")
REL_EXACT = 1e-9


def _value(metric: Any) -> Any:
    return metric.get("value") if isinstance(metric, dict) else None


def _unit(*metrics: Any) -> str | None:
    return next((m["unit"] for m in metrics if isinstance(m, dict) and "unit" in m), None)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


# What the audit assumes of a metric the catalogue (bench/metrics.yaml) does not declare, a
# submitter's own workload's: no direction (a deviation either way fails), the mean over the
# repeats, not moved by the host's load. The record says so.
UNDECLARED = MetricSpec(key="(undeclared)", unit="", direction="neither", aggregation="mean",
                        host_load="none", description="not in bench/metrics.yaml")
UNDECLARED_NOTE = ("not in the metric catalogue (bench/metrics.yaml): judged with no direction "
                   "(either way fails) as the mean over the repeats")


def latency_statistic(name: str) -> float | str | None:
    """``latency_p99_s`` -> 99.0, ``latency_mean_s`` -> "mean": the entry-level latency
    figures the catalogue declares pooled over every repeat's latencies, which each repeat's
    own latencies give per repeat. None for other metrics."""
    spec = spec_for(name)
    if spec is None or spec.aggregation != "pooled":
        return None
    if name == "latency_mean_s":
        return "mean"
    match = PERCENTILE.fullmatch(name)
    return float(match.group(1)) if match else None


def _ok_latencies(doc: ResultDoc) -> list[list[float]]:
    return [r["latencies_s"] for r in doc.get("repeats") or []
            if r.get("status") == "ok" and r.get("latencies_s")]


def _latency_figure(latencies: list[float], stat: float | str) -> float:
    return math.fsum(latencies) / len(latencies) if stat == "mean" else \
        percentile(latencies, float(stat))


def per_repeat_figures(name: str, metric: Any, doc: ResultDoc | None,
                       point: bool) -> list[float]:
    """One metric's figure in each repeat: an entry-level latency statistic from each repeat's
    own latencies, otherwise the metric's ``per_repeat``; empty when it has neither (a peak
    over the repeats, a figure of the whole run)."""
    stat = latency_statistic(name)
    if stat is not None and not point and doc is not None:
        per = [_latency_figure(lat, stat) for lat in _ok_latencies(doc)]
        if per:
            return per
    if isinstance(metric, dict):
        return [v for v in metric.get("per_repeat") or [] if _number(v)]
    return []


def repeat_figures(name: str, metric: Any, doc: ResultDoc | None,
                   point: bool) -> list[float]:
    """The per-repeat figures, or the single value where there are none."""
    per = per_repeat_figures(name, metric, doc, point)
    if not per and isinstance(metric, dict) and _number(metric.get("value")):
        return [metric["value"]]
    return per


def pooled_value(name: str, metrics: list[Any], docs: list[ResultDoc],
                 point: bool) -> Any:
    """The re-measured figure over every re-run of the entry, made from all their repeats as
    the catalogue's aggregation makes a result's value from its repeats: latencies pooled, a
    mean, a peak's maximum, a minimum. A count over the repeats, a figure of the whole run or
    of the configuration is the first re-run's (it ran the submitted repeats); a derived one
    the mean of the re-runs'."""
    if len(metrics) == 1:
        return _value(metrics[0])
    aggregation = (spec_for(name) or UNDECLARED).aggregation
    stat = latency_statistic(name)
    if stat is not None and not point:
        latencies = [x for d in docs for lat in _ok_latencies(d) for x in lat]
        if latencies:
            return _latency_figure(latencies, stat)
    values = [_value(m) for m in metrics]
    if aggregation in ("sum", "once", "equal"):
        return values[0]
    per = [v for m in metrics if isinstance(m, dict)
           for v in (m.get("per_repeat") or ([m.get("value")] if "value" in m else []))
           if _number(v)]
    if aggregation == "derived":
        per = [v for v in values if _number(v)]
    if per:
        if aggregation == "max":
            return max(per)
        if aggregation == "min":
            return min(per)
        return math.fsum(per) / len(per)
    return next((v for v in values if v is not None), None)


def load_factor_for(name: str, slowdown: float) -> float:
    """How much the host's measured load could worsen this metric. A mean figure (a rate, the
    mean latency) is worsened by the measured slowdown itself. A latency percentile above the
    median is not: the extra time the load cost (slowdown - 1 of the window) may all have
    fallen on the slowest iterations, and p95 is the figure of the slowest 5 %, so it may be
    worse by (slowdown - 1) / 0.05, twenty times as much. A stall of one scheduler time
    slice in a few iterations of a short window does that on a machine whose load is light
    (an honest smoke audit failed its p95 at x1.51 with a measured slowdown of x1.14)."""
    stat = latency_statistic(name)
    if slowdown <= 1.0 or not isinstance(stat, float) or stat <= 50:
        return slowdown
    tail = max(1 - stat / 100, 0.01)
    return 1 + (slowdown - 1) / tail


def percentile_evidence(name: str, re_docs: list[ResultDoc],
                        tol: Tolerances) -> str | None:
    """Why a latency percentile cannot be judged (too few latencies per repeat), or None.
    The re-run's counts decide, not the submitted ones: a submitter who wrote fewer
    latencies must not make a forged percentile unjudgeable."""
    stat = latency_statistic(name)
    if not isinstance(stat, float) or stat >= 100:
        return None
    need = math.ceil(tol.statistics.min_tail_samples / (1 - stat / 100) - 1e-9)
    counts = [len(lat) for d in re_docs for lat in _ok_latencies(d)]
    if counts and min(counts) < need:
        return (f"p{stat:g} of {min(counts)} latencies per repeat is not judged: it needs at "
                f"least {need} per repeat to mean anything (counted in the re-run, which ran "
                "the submitted rules on this device)")
    return None


@dataclass
class Judgement:
    """One metric's outcome: status and reason, the deviation, the re-measured value, the
    interval and band it rests on, and for an inconclusive one whether (and after how many
    more re-run repeats) it could still be decided."""

    status: str
    reason: str
    deviation: float | None
    remeasured: Any
    interval: Interval | None = None
    band: Band | None = None
    decidable: bool | None = None
    repeats_to_decide: int | None = None
    predicted: str | None = None  # what those repeats are predicted to give: pass or fail


def judge_metric(name: str, rule: Rule | None, sub_metric: Any, re_metrics: list[Any],
                 sub_doc: ResultDoc | None, re_docs: list[ResultDoc],
                 tol: Tolerances, slowdown: float, point: bool, budget: int = 0
                 ) -> Judgement:
    """Judge one metric. Its direction, aggregation and whether the host's load worsens it
    come from the catalogue (bench/metrics.yaml); ``budget`` is how many more re-run repeats
    the re-runs for more evidence can still add (an inconclusive metric is decidable when
    that many would, at the same estimate and spread, give a pass or a fail)."""
    spec = spec_for(name) or UNDECLARED
    submitted = _value(sub_metric)
    remeasured = pooled_value(name, re_metrics, re_docs, point)
    status, reason, deviation = compare_value(rule, submitted, remeasured,
                                               spec.audit_direction)
    if status in ("ignored", "not_measured") or rule is None or rule.equal or \
            not (_number(submitted) and _number(remeasured)):
        return Judgement(status, reason, deviation, remeasured)
    why_not = None if point else percentile_evidence(name, re_docs, tol)
    if why_not:
        return Judgement("not_judged", why_not, deviation, remeasured)
    if not per_repeat_figures(name, sub_metric, sub_doc, point) and not any(
            per_repeat_figures(name, m, d, point)
            for m, d in zip(re_metrics, re_docs, strict=True)):
        # One figure per run (a peak over the repeats): nothing to take a spread from.
        return Judgement(status, f"{reason} (one figure per run, no per-repeat values: "
                         "compared as two numbers)", deviation, remeasured)
    sub_figures = repeat_figures(name, sub_metric, sub_doc, point)
    re_figures = [v for m, d in zip(re_metrics, re_docs, strict=True)
                  for v in repeat_figures(name, m, d, point)]
    scale, allowed = (RATIO, rule.abs) if rule.rel is not None else (DIFFERENCE, rule.abs)
    if scale == RATIO and min([submitted, remeasured, *sub_figures, *re_figures]) <= 0:
        # No ratio of figures that reach zero (energy above idle): the same band as an amount.
        scale, allowed = DIFFERENCE, abs(submitted) * rule.rel
    interval = ratio_interval(submitted, sub_figures, remeasured, re_figures,
                              tol.statistics.confidence, scale)
    if isinstance(interval, str):
        return Judgement("inconclusive", f"no interval: {interval}", deviation, remeasured,
                         decidable=budget > 0, repeats_to_decide=min(budget, 2) or None)
    band = band_for(scale, rule.rel if scale == RATIO else None, allowed,
                    spec.audit_direction, spec.worsened_by_load,
                    load_factor_for(name, slowdown))
    status, reason = judge(interval, band)
    if status != "inconclusive":
        return Judgement(status, reason, deviation, remeasured, interval, band)
    needed = repeats_to_decide(interval, band, budget)
    if needed is None:
        if judge(ideal_interval(interval), band)[0] == "inconclusive":
            reason += (f"; more re-runs cannot decide it: the submission's own "
                       f"{interval.n_submitted} repeat(s) at this spread keep the interval "
                       "wider than that")
        elif budget:
            reason += (f"; the {budget} more re-run repeat(s) the tolerances allow would not "
                       "decide it at this spread")
    return Judgement(status, reason, deviation, remeasured, interval, band,
                     decidable=needed is not None, repeats_to_decide=needed,
                     predicted=predicted(interval, band, needed) if needed else None)


def metric_records(entry_id: str, submitted: AnyMetrics,
                   remeasured: Metrics | list[Metrics],
                   tol: Tolerances, vendor: str | None,
                   point: Params | None = None, sub_doc: ResultDoc | None = None,
                   re_docs: list[ResultDoc] | None = None,
                   slowdown: float = 1.0, budget: int = 0) -> list[MetricRecord]:
    """One record per metric either side has: submitted, re-measured (over every re-run of
    the entry), the interval of their ratio, the tolerance, what the catalogue declares of
    the metric, the outcome and the power statement (the smallest inflation it could catch)."""
    rounds = remeasured if isinstance(remeasured, list) else [remeasured]
    docs = re_docs if re_docs is not None else [{} for _ in rounds]
    records = []
    for name in sorted(set(submitted).union(*rounds)):
        rule = tol.rule_for(name, vendor)
        re_metrics = [r.get(name) for r in rounds]
        spec = spec_for(name)
        j = judge_metric(name, rule, submitted.get(name), re_metrics, sub_doc, docs, tol,
                         slowdown, point is not None, budget)
        reason = j.reason if spec is not None or j.status in ("ignored", "not_measured") \
            else f"{j.reason} ({UNDECLARED_NOTE})"
        records.append({
            "entry": entry_id, "point": point, "metric": name,
            "unit": _unit(submitted.get(name), *re_metrics),
            "submitted": _value(submitted.get(name)),
            "remeasured": j.remeasured,
            "deviation": j.deviation,
            "interval": j.interval.as_dict() if j.interval else None,
            "reruns": len(rounds),
            "decidable": j.decidable,
            "repeats_to_decide": j.repeats_to_decide,
            "predicted": j.predicted,
            "declared": spec.as_dict() if spec is not None else None,
            "power": power_statement(j.interval, j.band, (spec or UNDECLARED).audit_direction)
            if j.interval is not None and j.band is not None else None,
            "tolerance": rule.as_dict() if rule else None,
            "status": j.status, "reason": reason,
        })
    return records


def _as_rounds(re_doc: ResultDoc | list[ResultDoc] | None) -> list[ResultDoc]:
    if re_doc is None:
        return []
    return re_doc if isinstance(re_doc, list) else [re_doc]


def compare_entry(entry_id: str, sub_doc: ResultDoc,
                  re_doc: ResultDoc | list[ResultDoc] | None,
                  tol: Tolerances, rerun_error: str | None, slowdown: float = 1.0,
                  budget: int = 0) -> tuple[list[Check], list[MetricRecord]]:
    """Status, configuration, metrics and grid points of one entry. ``re_doc`` is the
    as-submitted re-run's document, or a list of it and the documents of the re-runs made
    for more evidence (same configuration, more repeats, maybe a longer window), whose
    repeats are pooled with it; ``slowdown`` is the most the host's load slowed any of them;
    ``budget`` how many more re-run repeats the re-runs for more evidence can still add."""
    rounds = _as_rounds(re_doc)
    if not rounds:
        why = rerun_error or "the re-run wrote no result for it"
        return [failed("rerun_result", RERUN, entry_id, f"no re-measured result: {why}")], []
    first = rounds[0]
    checks = [config_check(entry_id, sub_doc, first)]
    if sub_doc["status"] not in MEASURED_STATUSES:
        checks.append(failed("rerun_status", RERUN, entry_id,
                             f"the submission's status is {sub_doc['status']!r}: a failed "
                             "measurement, nothing to audit (only ok, oom and unsupported "
                             "are results)"))
    elif first["status"] != sub_doc["status"]:
        checks.append(failed("rerun_status", RERUN, entry_id,
                             f"submitted status {sub_doc['status']!r}, re-run status "
                             f"{first['status']!r}"
                             + (f" ({first['error'].get('message', '')})"
                                if first.get("error") else "")))
    else:
        checks.append(passed("rerun_status", RERUN, entry_id,
                             f"status {first['status']!r} as submitted"))
    for extra in rounds[1:]:
        check = config_check(entry_id, sub_doc, extra, relaxed=MORE_EVIDENCE_RULES)
        checks.append(Check(check.id, check.category, f"{entry_id} (more evidence)",
                            check.status, check.message))
    # The rules that apply are chosen by the vendor the re-run ran on, not by the document.
    vendor = first["provenance"]["vendor"]
    records = metric_records(entry_id, sub_doc.get("metrics") or {},
                             [r.get("metrics") or {} for r in rounds], tol, vendor,
                             sub_doc=sub_doc, re_docs=rounds, slowdown=slowdown,
                             budget=budget)
    moved = next((m for m in (headline_moved(sub_doc, r) for r in rounds) if m), None)
    if moved:
        problem = headline_problem(sub_doc)
        if problem:
            checks.append(failed("headline", RERUN, entry_id, problem))
        else:
            for record in records:
                if record["status"] in JUDGED:
                    record.update(status="ignored", reason=moved)
    re_points = [{_key(p["params"]): p for p in r.get("points") or []} for r in rounds]
    sub_keys = {_key(p["params"]) for p in sub_doc.get("points") or []}
    for point in sub_doc.get("points") or []:
        subject = f"{entry_id} {point['params']}"
        key = _key(point["params"])
        other = re_points[0].get(key)
        if other is None:
            checks.append(failed("rerun_point", RERUN, subject,
                                 "the re-run has no such grid point"))
            continue
        if other["status"] != point["status"]:
            checks.append(failed("rerun_point", RERUN, subject,
                                 f"submitted status {point['status']!r}, re-run "
                                 f"{other['status']!r}"))
        same = [(pts[key], r) for pts, r in zip(re_points, rounds, strict=True)
                if key in pts and pts[key]["status"] == other["status"]]
        records += metric_records(entry_id, point.get("metrics") or {},
                                  [p.get("metrics") or {} for p, _ in same], tol, vendor,
                                  point=point["params"], sub_doc=sub_doc,
                                  re_docs=[r for _, r in same], slowdown=slowdown,
                                  budget=budget)
    for key, other in re_points[0].items():
        if key not in sub_keys:
            checks.append(failed("rerun_point", RERUN, f"{entry_id} {other['params']}",
                                 "the re-run measured this grid point and the submission "
                                 "does not have it (a point left out)"))
    return checks, records


def _headlines(doc: ResultDoc) -> list[str]:
    return sorted({_key(r["headline"]) for r in doc.get("repeats") or []
                   if r.get("status") == "ok" and isinstance(r.get("headline"), dict)})


def headline_moved(sub_doc: ResultDoc, re_doc: ResultDoc) -> str | None:
    """A sweep's entry-level figures are its headline (best or reference) point's: when that
    is another point in the re-run (or varied between repeats), they measure different things
    and only the points, compared one by one, can be. Results without points have no
    headline, whatever a repeat says."""
    if not sub_doc.get("points"):
        return None
    a, b = _headlines(sub_doc), _headlines(re_doc)
    if a == b and len(a) <= 1:
        return None
    return (f"the entry-level figures are the headline point's, which is {' / '.join(a)} "
            f"submitted and {' / '.join(b)} re-run: each grid point is compared on its own")


def headline_problem(doc: ResultDoc) -> str | None:
    """The entry-level throughput must be made of its headline points' own figures (which
    are re-measured point by point): each ok repeat's headline is one of the points, and the
    repeat's throughput is that point's figure in that repeat. None when consistent."""
    points = {_key(p["params"]): p for p in doc.get("points") or []}
    ok = [r for r in doc.get("repeats") or [] if r.get("status") == "ok"]
    entry = (doc.get("metrics") or {}).get(THROUGHPUT) or {}
    if entry.get("per_repeat") is not None and not _close_lists(
            entry["per_repeat"], [r.get(THROUGHPUT) for r in ok]):
        return "the entry's per-repeat throughput is not its repeats' throughput"
    for j, r in enumerate(ok):
        head = r.get("headline")
        point = points.get(_key(head)) if isinstance(head, dict) else None
        if point is None:
            return f"repeat {r.get('index', j)} names headline {head!r}, which is not a point"
        figure = point["metrics"].get(THROUGHPUT) or {}
        per = figure.get("per_repeat") or [figure.get("value")]
        if j >= len(per) or not _close(per[j], r.get(THROUGHPUT)):
            return (f"repeat {r.get('index', j)}'s throughput {r.get(THROUGHPUT)!r} is not its "
                    f"headline point {head}'s ({per[j] if j < len(per) else None!r})")
    return None


def _close(a: Any, b: Any) -> bool:
    return isinstance(a, int | float) and isinstance(b, int | float) and \
        abs(a - b) <= REL_EXACT * max(abs(a), abs(b))


def _close_lists(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))


def _key(params: Params) -> str:
    return repr(sorted(params.items()))


def config_check(entry_id: str, sub_doc: ResultDoc, re_doc: ResultDoc,
                 relaxed: tuple[str, ...] = ()) -> Check:
    """The re-run ran what was submitted: workload, mode, parameters, precision, rules, seeds
    (a re-run for more evidence may differ in the ``relaxed`` rules)."""
    def facts(doc: ResultDoc) -> Params:
        w = doc["workload"]
        rules = {k: v for k, v in doc["rules"].items()
                 if k != "input_variants" and k not in relaxed}
        return {"workload": w["name"], "mode": w["mode"], "params": w["params"],
                "precision_requested": w["precision_requested"], "rules": rules,
                "scenario": (doc.get("scenario") or {}).get("rules"),
                "suite seed": doc["suite"]["seed"],
                "seeds": doc["provenance"]["seeds"].get("suite_seed")}
    want, have = facts(sub_doc), facts(re_doc)
    differ = [k for k in want if want[k] != have[k]]
    if differ:
        return failed("rerun_config", RERUN, entry_id,
                      "the re-run differs from the submission in " + "; ".join(
                          f"{k}: submitted {want[k]!r}, re-run {have[k]!r}" for k in differ))
    return passed("rerun_config", RERUN, entry_id,
                  "same workload, parameters, precision, rules and seeds as submitted")


def workload_identity_check(entry_id: str, doc: ResultDoc) -> Check:
    """The properties that select checks (group, item unit, modes, configs) are the workload
    registry's, never the document's: the document's copies must agree with the registry.
    A ResNet result re-sealed as group "micro" would otherwise skip the caching check."""
    from bench.errors import UserError
    from bench.workloads import get_workload

    w = doc["workload"]
    try:
        cls = get_workload(w["name"])
    except UserError as exc:
        return failed("workload_identity", INTEGRITY, entry_id,
                      f"workload {w['name']!r} is not in this checkout's registry: {exc.what}")
    want = {"group": cls.group, "item_unit": cls.item_unit}
    differ = [f"{k} {w.get(k)!r}, the registry says {v!r}" for k, v in want.items()
              if w.get(k) != v]
    if w.get("mode") not in cls.modes:
        differ.append(f"mode {w.get('mode')!r}, the workload has {', '.join(cls.modes)}")
    if w.get("config") not in cls.configs:
        differ.append(f"config {w.get('config')!r}, the workload has {', '.join(cls.configs)}")
    if differ:
        return failed("workload_identity", INTEGRITY, entry_id,
                      f"the document's workload {w['name']} differs from the registry's: "
                      + "; ".join(differ))
    return passed("workload_identity", INTEGRITY, entry_id,
                  f"group {cls.group!r}, item unit {cls.item_unit!r}, mode and config are "
                  f"workload {w['name']}'s in the registry")


def output_length_checks(entry_id: str, doc: ResultDoc, which: str) -> list[Check]:
    """LLM grid points generated exactly the requested number of tokens per sequence."""
    points = [p for p in doc.get("points") or []
              if "output_tokens" in p["params"] and p["status"] == "ok"]
    if not points:
        return []
    bad, unrecorded = [], []
    for point in points:
        want = point["params"]["output_tokens"]
        got = (point["metrics"].get("output_tokens_generated") or {})
        if got.get("value") is None:
            unrecorded.append(point["params"])
        elif got["value"] != want or got.get("max", want) != want:
            top = got.get("max")
            span = f"..{top}" if top not in (None, got["value"]) else ""
            bad.append(f"{point['params']}: generated {got['value']}{span} tokens, "
                       f"requested {want}")
    subject = f"{entry_id} ({which})"
    if bad:
        return [failed("output_length", ANTI_GAMING, subject,
                       "output length differs from the requested length: " + "; ".join(bad))]
    if unrecorded:
        return [failed("output_length", ANTI_GAMING, subject,
                       f"{len(unrecorded)} grid point(s) do not record the generated length "
                       "(metric output_tokens_generated), so it cannot be checked")]
    return [passed("output_length", ANTI_GAMING, subject,
                   f"all {len(points)} grid point(s) generated the requested length")]


def _geomean(values: list[float]) -> float:
    return math.exp(math.fsum(math.log(v) for v in values) / len(values))


def throughput_figures(doc: ResultDoc, keys: list[str] | None = None
                       ) -> tuple[float | None, list[float]]:
    """The throughput of a caching re-run and its per-repeat figures: the entry's own, or for
    a grid the geometric mean over the points named by ``keys`` (each repeat's own)."""
    if not doc.get("points"):
        metric = (doc.get("metrics") or {}).get(THROUGHPUT)
        value = _value(metric)
        return (value if _number(value) and value > 0 else None,
                repeat_figures(THROUGHPUT, metric, doc, point=True))
    points = {_key(p["params"]): p for p in doc["points"]}
    chosen = [(points[k]["metrics"] or {}).get(THROUGHPUT) for k in keys or []
              if k in points]
    values = [_value(m) for m in chosen]
    if not chosen or not all(_number(v) and v > 0 for v in values):
        return None, []
    per = [repeat_figures(THROUGHPUT, m, None, point=True) for m in chosen]
    n = min(len(p) for p in per)
    return _geomean(values), [_geomean([p[j] for p in per]) for j in range(n)
                              if all(p[j] > 0 for p in per)]


def caching_check(entry_id: str, same: ResultDoc | None, distinct: ResultDoc | None,
                  tol: Tolerances, not_applicable: str | None, slowdown: float = 1.0
                  ) -> Check:
    """The re-run on one repeated batch must not be markedly faster than the re-run cycling
    through distinct batches: a stack that memoises results for identical inputs would be.
    Judged like a metric: the interval of same-input / distinct-input throughput over the
    repeats passes below 1 + max_speedup, fails wholly above it (widened by ``slowdown``, how
    much the host's load slowed the distinct-input re-run), and is inconclusive between."""
    if not_applicable:
        return skipped("caching", ANTI_GAMING, entry_id, not_applicable)
    if same is None or distinct is None:
        return failed("caching", ANTI_GAMING, entry_id,
                      "no result from the " + ("same-input" if same is None else
                                               "distinct-input") + " re-run to compare")
    info = (distinct["workload"].get("info") or {}).get("input_variants") or {}
    if info.get("used", 1) < 2:
        return skipped("caching", ANTI_GAMING, entry_id,
                       "the workload could not vary its inputs: "
                       + str(info.get("reason", "it records no input variants")))
    # A sweep's points each count (the best point may differ between the two re-runs): the
    # geometric mean over the points both measured, as a memoising stack speeds up every one.
    keys = sorted({_key(p["params"]) for p in same.get("points") or []}
                  & {_key(p["params"]) for p in distinct.get("points") or []})
    a, a_per = throughput_figures(same, keys)
    b, b_per = throughput_figures(distinct, keys)
    if a is None or b is None:
        return failed("caching", ANTI_GAMING, entry_id,
                      "a throughput is missing from the caching re-runs")
    where = f" (geometric mean over {len(keys)} points)" if keys else ""
    text = (f"same input: {a:.4g}, {info['used']} distinct inputs: {b:.4g} items/s{where} "
            f"({a / b - 1:+.1%}; allowed at most +{tol.max_speedup:.0%})")
    interval = ratio_interval(b, b_per, a, a_per, tol.statistics.confidence)
    if isinstance(interval, str):
        return Check("caching", ANTI_GAMING, entry_id, "inconclusive",
                     f"{text}; no interval: {interval}")
    edge = 1 + tol.max_speedup
    band = Band(0.0, edge, 0.0, edge * max(slowdown, 1.0))
    status, why = judge(interval, band)
    why = why.replace("re-measured / submitted", "same / distinct inputs")
    if status == "fail":
        return failed("caching", ANTI_GAMING, entry_id,
                      f"the repeated input runs markedly faster: {text}; {why}")
    return Check("caching", ANTI_GAMING, entry_id, status, f"{text}; {why}")
