"""Submitted vs re-measured: every metric under its tolerance, and the anti-gaming checks
(caching, LLM output length, seeds and configuration of the re-run)."""

from __future__ import annotations

from typing import Any

from testbed.audit.checks import ANTI_GAMING, RERUN, Check, failed, passed, skipped
from testbed.audit.tolerances import Tolerances, compare_value

THROUGHPUT = "throughput_items_per_s"
# Statuses that are results: a measurement, or a fact about the device (out of memory, not
# supported). error / timeout / killed are failed measurements and never audit as pass.
MEASURED_STATUSES = ("ok", "oom", "unsupported")
REL_EXACT = 1e-9


def _value(metric: Any) -> Any:
    return metric.get("value") if isinstance(metric, dict) else None


def _unit(*metrics: Any) -> str | None:
    return next((m["unit"] for m in metrics if isinstance(m, dict) and "unit" in m), None)


def metric_records(entry_id: str, submitted: dict[str, Any], remeasured: dict[str, Any],
                   tol: Tolerances, vendor: str | None,
                   point: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One record per metric either side has: submitted, re-measured, tolerance, outcome."""
    records = []
    for name in sorted(set(submitted) | set(remeasured)):
        rule = tol.rule_for(name, vendor)
        status, reason, deviation = compare_value(rule, _value(submitted.get(name)),
                                                  _value(remeasured.get(name)))
        records.append({
            "entry": entry_id, "point": point, "metric": name,
            "unit": _unit(submitted.get(name), remeasured.get(name)),
            "submitted": _value(submitted.get(name)),
            "remeasured": _value(remeasured.get(name)),
            "deviation": deviation,
            "tolerance": rule.as_dict() if rule else None,
            "status": status, "reason": reason,
        })
    return records


def compare_entry(entry_id: str, sub_doc: dict[str, Any], re_doc: dict[str, Any] | None,
                  tol: Tolerances, rerun_error: str | None
                  ) -> tuple[list[Check], list[dict[str, Any]]]:
    """Status, configuration, metrics and grid points of one entry."""
    if re_doc is None:
        why = rerun_error or "the re-run wrote no result for it"
        return [failed("rerun_result", RERUN, entry_id, f"no re-measured result: {why}")], []
    checks = [config_check(entry_id, sub_doc, re_doc)]
    if sub_doc["status"] not in MEASURED_STATUSES:
        checks.append(failed("rerun_status", RERUN, entry_id,
                             f"the submission's status is {sub_doc['status']!r}: a failed "
                             "measurement, nothing to audit (only ok, oom and unsupported "
                             "are results)"))
    elif re_doc["status"] != sub_doc["status"]:
        checks.append(failed("rerun_status", RERUN, entry_id,
                             f"submitted status {sub_doc['status']!r}, re-run status "
                             f"{re_doc['status']!r}"
                             + (f" ({re_doc['error'].get('message', '')})"
                                if re_doc.get("error") else "")))
    else:
        checks.append(passed("rerun_status", RERUN, entry_id,
                             f"status {re_doc['status']!r} as submitted"))
    vendor = sub_doc["provenance"]["vendor"]
    records = metric_records(entry_id, sub_doc.get("metrics") or {},
                             re_doc.get("metrics") or {}, tol, vendor)
    moved = headline_moved(sub_doc, re_doc)
    if moved:
        problem = headline_problem(sub_doc)
        if problem:
            checks.append(failed("headline", RERUN, entry_id, problem))
        else:
            for record in records:
                if record["status"] in ("pass", "fail"):
                    record.update(status="ignored", reason=moved)
    re_points = {_key(p["params"]): p for p in re_doc.get("points") or []}
    sub_keys = {_key(p["params"]) for p in sub_doc.get("points") or []}
    for point in sub_doc.get("points") or []:
        subject = f"{entry_id} {point['params']}"
        other = re_points.get(_key(point["params"]))
        if other is None:
            checks.append(failed("rerun_point", RERUN, subject,
                                 "the re-run has no such grid point"))
            continue
        if other["status"] != point["status"]:
            checks.append(failed("rerun_point", RERUN, subject,
                                 f"submitted status {point['status']!r}, re-run "
                                 f"{other['status']!r}"))
        records += metric_records(entry_id, point.get("metrics") or {},
                                  other.get("metrics") or {}, tol, vendor,
                                  point=point["params"])
    for key, other in re_points.items():
        if key not in sub_keys:
            checks.append(failed("rerun_point", RERUN, f"{entry_id} {other['params']}",
                                 "the re-run measured this grid point and the submission "
                                 "does not have it (a point left out)"))
    return checks, records


def _headlines(doc: dict[str, Any]) -> list[str]:
    return sorted({_key(r["headline"]) for r in doc.get("repeats") or []
                   if r.get("status") == "ok" and isinstance(r.get("headline"), dict)})


def headline_moved(sub_doc: dict[str, Any], re_doc: dict[str, Any]) -> str | None:
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


def headline_problem(doc: dict[str, Any]) -> str | None:
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


def _key(params: dict[str, Any]) -> str:
    return repr(sorted(params.items()))


def config_check(entry_id: str, sub_doc: dict[str, Any], re_doc: dict[str, Any]) -> Check:
    """The re-run ran what was submitted: workload, mode, parameters, precision, rules, seeds."""
    def facts(doc: dict[str, Any]) -> dict[str, Any]:
        w = doc["workload"]
        rules = {k: v for k, v in doc["rules"].items() if k != "input_variants"}
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


def output_length_checks(entry_id: str, doc: dict[str, Any], which: str) -> list[Check]:
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


def _throughput_pairs(same: dict[str, Any], distinct: dict[str, Any]
                      ) -> list[tuple[float, float]]:
    """(same-input, distinct-input) throughputs: per grid point where there are points."""
    def figure(metrics: dict[str, Any]) -> Any:
        return _value(metrics.get(THROUGHPUT))

    if same.get("points"):
        others = {_key(p["params"]): p for p in distinct.get("points") or []}
        pairs = [(figure(p["metrics"]), figure(others[_key(p["params"])]["metrics"]))
                 for p in same["points"] if _key(p["params"]) in others]
    else:
        pairs = [(figure(same["metrics"]), figure(distinct["metrics"]))]
    return [(x, y) for x, y in pairs if x and y]


def caching_check(entry_id: str, same: dict[str, Any] | None, distinct: dict[str, Any] | None,
                  tol: Tolerances, not_applicable: str | None) -> Check:
    """The re-run on one repeated batch must not be markedly faster than the re-run cycling
    through distinct batches: a stack that memoises results for identical inputs would be."""
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
    pairs = _throughput_pairs(same, distinct)
    if not pairs:
        return failed("caching", ANTI_GAMING, entry_id,
                      "a throughput is missing from the caching re-runs")
    # A sweep's points each compared (the best point may differ between the two re-runs);
    # the mean speedup over them, as a memoising stack speeds up every point.
    a = sum(x for x, _ in pairs) / len(pairs)
    b = sum(y for _, y in pairs) / len(pairs)
    speedup = sum(x / y for x, y in pairs) / len(pairs) - 1
    where = f" (mean over {len(pairs)} points)" if len(pairs) > 1 else ""
    text = (f"same input: {a:.4g}, {info['used']} distinct inputs: {b:.4g} items/s{where} "
            f"({speedup:+.1%}; allowed at most +{tol.max_speedup:.0%})")
    if speedup > tol.max_speedup:
        return failed("caching", ANTI_GAMING, entry_id,
                      f"the repeated input runs markedly faster: {text}")
    return passed("caching", ANTI_GAMING, entry_id, text)
