"""From a validated document to the rows of the derived tables (pure functions, no database).

One extractor per document schema (``bench.validate.schema_for``): ``result``, ``manifest``,
``audit``. A document of a schema without an extractor is still stored (``documents``) and
re-exported; giving it rows later is one more function here and a ``DERIVED_VERSION`` bump.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from bench.documents import (
    Document,
    ManifestDoc,
    ManifestEntry,
    PointDoc,
    ResultDoc,
    TelemetrySection,
    VerdictDoc,
)
from testbed.report.inputs import device_key, identity_facts

# Identity facts that change with a software update, not with the hardware: the leaderboard
# draws a device's history across them.
VERSION_FACTS = ("image", "torch", "driver")

Row = dict[str, Any]


@dataclass
class Extracted:
    """Rows for the derived tables (by table name) and what the document says of its run."""

    rows: dict[str, list[Row]] = field(default_factory=dict)
    run: Row | None = None
    manifest: bool = False  # the run row comes from a manifest (it wins over a result's)
    # more rows by table, column by column (column -> values): the form ingest's worker
    # processes hand them over in (lists of values travel between processes faster)
    columns: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def add(self, table: str, *rows: Row) -> None:
        self.rows.setdefault(table, []).extend(rows)


def utc(text: Any) -> datetime | None:
    """An ISO 8601 time as naive UTC (the store's time columns), None when absent."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def number(value: Any) -> float | None:
    """A metric value as a float: booleans as 1/0, non-finite and non-numbers as None."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def hardware_key(facts: dict[str, str]) -> str:
    """The device configuration without the facts a software update changes."""
    return device_key({k: v for k, v in facts.items() if k not in VERSION_FACTS})


def _error(doc: ResultDoc | PointDoc) -> str | None:
    err = doc.get("error")
    return str(err.get("message")) if isinstance(err, dict) else None


def _metric_row(doc_id: str, name: str, entry: Any) -> Row:
    entry = entry if isinstance(entry, dict) else {"value": entry}
    return {"doc_id": doc_id, "metric": name, "value": number(entry.get("value")),
            "unit": entry.get("unit"), "reason": entry.get("reason"),
            "n": entry.get("n") if isinstance(entry.get("n"), int) else None,
            "std": number(entry.get("std")), "cv": number(entry.get("cv"))}


def _samples(values: Any) -> tuple[list[float], int]:
    """A series' numeric samples (``number``, booleans left out) and how many are not null.
    A list of finite numbers and nulls, the usual series, takes a path without a call per
    sample (the same values: the sum is finite only when every sample is)."""
    if isinstance(values, list):
        with contextlib.suppress(OverflowError):  # an integer beyond a float: the slow path
            nums = [float(x) for x in values if type(x) is float or type(x) is int]
            if math.isfinite(sum(nums)):
                return nums, len(values) - values.count(None)
    nums = [v for v in (number(x) if not isinstance(x, bool) else None for x in values)
            if v is not None]
    return nums, sum(1 for v in values if v is not None)


def telemetry_rows(doc_id: str, telemetry: TelemetrySection) -> list[Row]:
    """Per device and field: samples with a value, mean, min, max; or why it is unavailable."""
    units = telemetry.get("fields") or {}
    unavailable = telemetry.get("unavailable") or {}
    rows = []
    for dev in telemetry.get("devices") or []:
        series = dev.get("series") or {}
        for name in sorted(set(series) | set(unavailable)):
            values = series.get(name) or []
            nums, present = _samples(values)
            rows.append({
                "doc_id": doc_id, "device_index": dev.get("index", 0), "field": name,
                "unit": units.get(name), "samples": present,
                "mean": sum(nums) / len(nums) if nums else None,
                "min": min(nums) if nums else None, "max": max(nums) if nums else None,
                "unavailable": unavailable.get(name) if not present else None,
            })
    return rows


def _disturbed(doc: ResultDoc) -> bool | None:
    """The result's own disturbed verdict; None where it has none (unknown, not quiet)."""
    record = doc.get("disturbed")
    value = record.get("value") if isinstance(record, dict) else None
    return value if isinstance(value, bool) else None


def result_rows(doc_id: str, doc: ResultDoc) -> Extracted:
    prov = doc["provenance"]
    dev = prov.get("device") or {}
    image = prov.get("image") or {}
    wl = doc["workload"]
    tel = doc.get("telemetry") or {}
    facts = identity_facts(doc)
    out = Extracted()
    out.add("results", {
        "doc_id": doc_id, "seal": doc["sha256"], "run_id": doc["run_id"],
        "entry_id": wl["id"], "workload": wl["name"], "mode": wl["mode"],
        "workload_group": wl["group"], "config": wl["config"], "item_unit": wl.get("item_unit"),
        "precision_requested": wl.get("precision_requested"),
        "precision_used": wl.get("precision_used"), "status": doc["status"],
        "error": _error(doc), "suite": (doc.get("suite") or {}).get("name"),
        "suite_seed": (doc.get("suite") or {}).get("seed"),
        "started_at": utc(doc["started_at"]), "ended_at": utc(doc.get("ended_at")),
        "device_key": device_key(facts), "hardware_key": hardware_key(facts),
        "device_facts": json_text(facts), "vendor": prov["vendor"],
        "device_name": dev.get("name"),
        "device_count": dev.get("count") if isinstance(dev.get("count"), int) else None,
        "driver_version": dev.get("driver_version"), "sdk_version": dev.get("sdk_version"),
        "torch_version": (prov.get("torch") or {}).get("version"),
        "image_tag": image.get("tag"), "image_digest": image.get("digest"),
        "native": image.get("native"), "label": prov.get("label"),
        "bench_version": prov.get("bench_version"),
        "git_commit": (prov.get("git") or {}).get("commit"),
        "source_sha256": prov.get("source_sha256"),
        "host_cpu": (prov.get("host") or {}).get("cpu_model"),
        "telemetry_backend": tel.get("backend"),
        "telemetry_interval_s": number((tel.get("interval") or {}).get("requested_s")),
        "telemetry_samples": len(tel.get("t_s") or []),
        "telemetry_errors": (tel.get("errors") or {}).get("count"),
        "overrides": json_text(wl.get("overrides") or {}),
        "params": json_text(wl.get("params") or {}),
        "disturbed": _disturbed(doc),
        "in_manifest": "no manifest",  # ingest.recheck_members decides against the run's
    })
    out.add("metrics", *(_metric_row(doc_id, name, entry)
                         for name, entry in (doc.get("metrics") or {}).items()))
    for i, point in enumerate(doc.get("points") or []):
        out.add("points", {"doc_id": doc_id, "point": i, "status": point.get("status"),
                           "params": json_text(point.get("params") or {}),
                           "error": _error(point)})
        out.add("point_metrics", *({k: v for k, v in _metric_row(doc_id, name, entry).items()
                                    if k not in ("n", "std", "cv")} | {"point": i}
                                   for name, entry in (point.get("metrics") or {}).items()))
    out.add("telemetry", *telemetry_rows(doc_id, tel))
    out.run = {"run_id": doc["run_id"], "suite": (doc.get("suite") or {}).get("name"),
               "vendor": prov["vendor"], "state": None, "started_at": utc(doc["started_at"]),
               "ended_at": utc(doc.get("ended_at")), "bench_version": prov.get("bench_version"),
               "manifest_id": None}
    return out


def manifest_rows(doc_id: str, doc: ManifestDoc) -> Extracted:
    out = Extracted(manifest=True)
    out.run = {"run_id": doc["run_id"], "suite": (doc.get("suite") or {}).get("name"),
               "vendor": doc.get("vendor"), "state": doc.get("state"),
               "started_at": utc(doc.get("started_at")), "ended_at": utc(doc.get("ended_at")),
               "bench_version": doc.get("bench_version"), "manifest_id": doc_id}
    out.add("manifest_entries", *({"manifest_id": doc_id, "entry_id": e["id"],
                                   "run_id": doc["run_id"], "status": e.get("status"),
                                   "seal": e.get("sha256")}
                                  for e in unique_entries(doc)))
    return out


def unique_entries(manifest: ManifestDoc) -> list[ManifestEntry]:
    """A manifest's entries, the first of each id (the schema does not forbid a repeat)."""
    seen: dict[str, ManifestEntry] = {}
    for entry in manifest.get("entries") or []:
        seen.setdefault(entry["id"], entry)
    return list(seen.values())


def count(value: Any) -> int | None:
    """A count from a document whose schema leaves its type open: an integer or None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and \
        abs(value) < 2**63 else None


def audit_rows(doc_id: str, doc: VerdictDoc) -> Extracted:
    sub = doc.get("submitted") or {}
    summary = doc.get("summary") or {}
    checks = summary.get("checks") or {}
    metrics = summary.get("metrics") or {}
    out = Extracted()
    out.add("audits", {
        "doc_id": doc_id, "seal": doc["sha256"], "run_id": sub.get("run_id"),
        "verdict": doc["verdict"], "mode": doc.get("mode"),
        "audit_version": doc.get("audit_version"),
        "image_digest": (doc.get("image") or {}).get("digest"),
        "submitted_path": sub.get("path"), "only_file": sub.get("only"),
        "checks_failed": sum(count(c.get("fail")) or 0 for c in checks.values()
                             if isinstance(c, dict)),
        "metrics_passed": count(metrics.get("pass")),
        "metrics_failed": count(metrics.get("fail")),
        "reasons": json_text(summary.get("reasons") or []),
        "started_at": utc(doc.get("started_at")), "ended_at": utc(doc["ended_at"]),
    })
    seals = sub.get("result_sha256") or {}
    out.add("audit_results", *({"audit_id": doc_id, "entry_id": entry,
                                "run_id": sub.get("run_id"), "seal": seals.get(entry)}
                               for entry in sub.get("results") or []))
    return out


EXTRACTORS: dict[str, Callable[[str, Any], Extracted]] = {
    "result": result_rows, "manifest": manifest_rows, "audit": audit_rows}


def extract(schema: str, doc_id: str, doc: Document) -> Extracted:
    """The derived rows of a valid document (none for a schema without an extractor)."""
    fn = EXTRACTORS.get(schema)
    return fn(doc_id, doc) if fn else Extracted()
