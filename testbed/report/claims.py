"""Published figures next to measured ones: does a vendor's claim hold on the lab's device?

A published row (``invoke import``) claims a figure for a device model, a workload at a
shape and a precision. Where the report also holds a measurement of the same device model
(the same spec sheet), the same workload and config, the same precision, batch size and
concurrent streams, each published cell is put next to the measured value: their ratio and
a verdict under the audit's tolerance bands (the metric's band class in bench/metrics.yaml,
sized by ``testbed/audit/tolerances.yaml``): the same bands an auditor holds a re-run to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.documents import AnyResultDoc, PublishedDoc
from testbed.audit.tolerances import Rule, load_tolerances
from testbed.report.checks import is_published
from testbed.report.metrics import direction

VERDICTS = ("holds", "exceeded", "falls short", "not compared")


@dataclass(frozen=True)
class Claim:
    workload: str
    metric: str
    published: str  # device key of the published row
    measured: str  # device key of the measurement
    claimed: float
    value: float
    unit: str
    ratio: float | None  # measured / claimed
    band: str
    verdict: str
    why: str
    source: str  # the citation, short


def claim_verdict(claimed: float, measured: float, better: int, rule: Rule | None
                  ) -> tuple[str, str, str]:
    """(verdict, band, why) of a measured value against a claimed one.

    holds: within the band; exceeded: better than claimed beyond it; falls short: worse
    (for a metric without a better direction, any difference beyond the band falls short).
    """
    if rule is None or rule.ignore:
        return "not compared", "—", rule.ignore if rule else "no tolerance band for it"
    band = rule.describe()
    if rule.equal:
        same = measured == claimed
        return ("holds" if same else "falls short"), band, \
            "equal" if same else "the tolerance asks for the same value"
    allowed = rule.abs if rule.abs is not None else abs(claimed) * (rule.rel or 0.0)
    diff = measured - claimed
    if abs(diff) <= allowed:
        return "holds", band, f"within {band} of the claim"
    worse = diff < 0 if better > 0 else diff > 0 if better < 0 else True
    what = f"{diff / claimed:+.1%}" if claimed else f"{diff:+g}"
    if worse:
        return "falls short", band, f"measured {what} against the claim, beyond {band}"
    return "exceeded", band, f"measured {what}: better than claimed, beyond {band}"


def _citation(doc: PublishedDoc) -> str:
    src = doc["source"]
    page = f", p. {src['page']}" if src.get("page") else ""
    return f"{src['publisher']}: {src['title']}, {src['table']}{page}"


def _shape(doc: AnyResultDoc) -> tuple[Any, ...]:
    wl = doc["workload"]
    params = wl.get("params") or {}
    batch = params.get("batch_size") or params.get(f"{wl['mode']}_batch_size") or \
        (params.get("reference_point") or {}).get("batch")
    return wl.get("precision_used"), batch, params.get("streams") or 1


def _same_workload(measured: AnyResultDoc, published: PublishedDoc) -> bool:
    """The same workload, mode and config (a published row names what it changes in the
    config: "full, batch 64, fp16"; the shape itself is compared by ``_shape``)."""
    m, p = measured["workload"], published["workload"]
    return (m["name"], m["mode"]) == (p["name"], p["mode"]) and \
        p["config"].split(",")[0] == m["config"]


def _same_model(a: Any, b: Any) -> bool:
    if a.spec and b.spec:
        return bool(a.spec["id"] == b.spec["id"])
    return a.name.strip().lower() == b.name.strip().lower()


def find_claims(analysis: Any) -> list[Claim]:
    """Every published cell that has a matching measurement (analysis: ``Analysis``)."""
    reviews = [r for r in analysis.reviews if r.result.status == "ok"]
    published = [r for r in reviews if is_published(r.result.doc)]
    measured = [r for r in reviews if not is_published(r.result.doc)]
    if not published or not measured:
        return []
    tolerances = load_tolerances()
    out: list[Claim] = []
    seen: set[tuple[str, str, str, str]] = set()
    for pub in published:
        pdev = analysis.devices[pub.result.device_key]
        for mes in measured:
            mdev = analysis.devices[mes.result.device_key]
            if not _same_workload(mes.result.doc, pub.result.doc) or \
                    not _same_model(pdev, mdev) or _shape(mes.result.doc) != _shape(pub.result.doc):
                continue
            for metric, cell in pub.result.doc["metrics"].items():
                key = (pdev.key, mdev.key, pub.workload, metric)
                if cell.get("status") != "published" or key in seen:
                    continue
                row = analysis.cell(mdev.key, mes.workload, metric)
                claimed_row = analysis.cell(pdev.key, pub.workload, metric)
                if row is None or claimed_row is None or row["value"] != row["value"]:
                    continue
                seen.add(key)
                claimed, value = float(claimed_row["value"]), float(row["value"])
                rule = tolerances.rule_for(metric, mdev.vendor)
                verdict, band, why = claim_verdict(claimed, value, direction(metric), rule)
                out.append(Claim(pub.workload, metric, pdev.key, mdev.key, claimed, value,
                                 str(row["unit"]), value / claimed if claimed else None,
                                 band, verdict, why, _citation(pub.result.doc)))
    return out
