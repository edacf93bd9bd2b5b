"""Submitted vs re-measured: every metric under its tolerance, and the anti-gaming checks
(caching, LLM output length, seeds and configuration of the re-run)."""

from __future__ import annotations

from typing import Any

from testbed.audit.checks import Check, failed, passed, skipped
from testbed.audit.tolerances import Tolerances, compare_value

RERUN = "rerun"
ANTI_GAMING = "anti_gaming"
THROUGHPUT = "throughput_items_per_s"


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
    if re_doc["status"] != sub_doc["status"]:
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
        for record in records:
            if record["status"] in ("pass", "fail"):
                record.update(status="ignored", reason=moved)
    re_points = {_key(p["params"]): p for p in re_doc.get("points") or []}
    for point in sub_doc.get("points") or []:
        other = re_points.get(_key(point["params"]))
        if other is None:
            checks.append(failed("rerun_point", RERUN, f"{entry_id} {point['params']}",
                                 "the re-run has no such grid point"))
            continue
        records += metric_records(entry_id, point.get("metrics") or {},
                                  other.get("metrics") or {}, tol, vendor,
                                  point=point["params"])
    return checks, records


def _headlines(doc: dict[str, Any]) -> list[str]:
    return sorted({_key(r["headline"]) for r in doc.get("repeats") or []
                   if r.get("status") == "ok" and isinstance(r.get("headline"), dict)})


def headline_moved(sub_doc: dict[str, Any], re_doc: dict[str, Any]) -> str | None:
    """A sweep's entry-level figures are its headline (best or reference) point's: when that
    is another point in the re-run (or varied between repeats), they measure different things
    and only the points, compared one by one, can be."""
    a, b = _headlines(sub_doc), _headlines(re_doc)
    if a == b and len(a) <= 1:
        return None
    return (f"the entry-level figures are the headline point's, which is {' / '.join(a)} "
            f"submitted and {' / '.join(b)} re-run: each grid point is compared on its own")


def _key(params: dict[str, Any]) -> str:
    return repr(sorted(params.items()))


def config_check(entry_id: str, sub_doc: dict[str, Any], re_doc: dict[str, Any]) -> Check:
    """The re-run ran what was submitted: workload, mode, parameters, precision, rules, seeds."""
    def facts(doc: dict[str, Any]) -> dict[str, Any]:
        w = doc["workload"]
        rules = {k: v for k, v in doc["rules"].items() if k != "input_variants"}
        return {"workload": w["name"], "mode": w["mode"], "params": w["params"],
                "precision_requested": w["precision_requested"], "rules": rules,
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
    a = _value(same["metrics"].get(THROUGHPUT))
    b = _value(distinct["metrics"].get(THROUGHPUT))
    if not a or not b:
        return failed("caching", ANTI_GAMING, entry_id,
                      "a throughput is missing from the caching re-runs "
                      f"(same inputs {a!r}, distinct inputs {b!r})")
    speedup = a / b - 1
    text = (f"same input: {a:.4g}, {info['used']} distinct inputs: {b:.4g} items/s "
            f"({speedup:+.1%}; allowed at most +{tol.max_speedup:.0%})")
    if speedup > tol.max_speedup:
        return failed("caching", ANTI_GAMING, entry_id,
                      f"the repeated input runs markedly faster: {text}")
    return passed("caching", ANTI_GAMING, entry_id, text)
