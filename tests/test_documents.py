"""The typed documents of ``bench/documents.py`` say what the JSON Schemas say.

One row per object of a schema that has ``properties``: the record's required keys are the
schema's ``required``, its required and optional keys together are the schema's
``properties``. A schema object with properties that no row names fails too (unless it is
listed below as a refinement of another row's record), so a field or an object added to a
schema without its record is caught, and so is a record that keeps a field the schema dropped.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from bench import documents as d
from bench.paths import schemas_dir

# (record, schema, JSON pointer of the object inside it)
ROWS: list[tuple[Any, str, str]] = [
    (d.ResultDoc, "result", ""),
    (d.SuiteRef, "result", "/properties/suite"),
    (d.WorkloadSection, "result", "/properties/workload"),
    (d.CompileRecord, "result", "/properties/workload/properties/compile"),
    (d.WorkloadInfo, "result", "/properties/workload/properties/info"),
    (d.Substitution, "result", "/properties/workload/properties/info/properties/substitution"),
    (d.InputVariants, "result",
     "/properties/workload/properties/info/properties/input_variants"),
    (d.RulesRecord, "result", "/properties/rules"),
    (d.Disturbed, "result", "/properties/disturbed"),
    (d.DisturbedReason, "result", "/properties/disturbed/properties/reasons/items"),
    (d.PointDoc, "result", "/properties/points/items"),
    (d.PointWindow, "result", "/properties/points/items/properties/windows/items"),
    (d.FunctionChecks, "result", "/properties/function/oneOf/1"),
    (d.FunctionCases, "result", "/properties/function/oneOf/2"),
    (d.SupportRate, "result",
     "/properties/function/oneOf/2/properties/support/additionalProperties"),
    (d.CaseRow, "result", "/properties/function/oneOf/2/properties/cases/items"),
    (d.ScenarioRecord, "result", "/properties/scenario"),
    (d.RepeatDoc, "result", "/properties/repeats/items"),
    (d.ColdStart, "result", "/properties/repeats/items/properties/cold_start"),
    (d.RepeatWindow, "result", "/properties/repeats/items/properties/window"),
    (d.RepeatTelemetry, "result", "/properties/repeats/items/properties/telemetry"),
    (d.Coverage, "result",
     "/properties/repeats/items/properties/telemetry/properties/coverage/additionalProperties"),
    (d.TelemetrySection, "result", "/properties/telemetry"),
    (d.TelemetrySelection, "result", "/properties/telemetry/properties/selection"),
    (d.TelemetryAttempt, "result",
     "/properties/telemetry/properties/selection/properties/attempts/items"),
    (d.SamplerOverhead, "result", "/properties/telemetry/properties/overhead"),
    (d.IntervalStats, "result", "/properties/telemetry/properties/interval"),
    (d.TelemetryErrors, "result", "/properties/telemetry/properties/errors"),
    (d.DeviceSeries, "result", "/properties/telemetry/properties/devices/items"),
    (d.Series, "result", "/properties/telemetry/properties/devices/items/properties/series"),
    (d.NodeTelemetry, "result", "/properties/telemetry/properties/nodes/items"),
    (d.PlacementRecord, "result", "/properties/placement"),
    (d.NodeRanks, "result", "/properties/placement/properties/nodes/items"),
    (d.Provenance, "result", "/properties/provenance"),
    (d.GitState, "result", "/properties/provenance/properties/git"),
    (d.ImageInfo, "result", "/properties/provenance/properties/image"),
    (d.DeviceInfo, "result", "/properties/provenance/properties/device"),
    (d.TorchInfo, "result", "/properties/provenance/properties/torch"),
    (d.HostInfo, "result", "/properties/provenance/properties/host"),
    (d.DeviceSettingsRecord, "result", "/properties/provenance/properties/device_settings"),
    (d.ThreadsRequested, "result",
     "/properties/provenance/properties/device_settings/properties/requested"),
    (d.ThreadsApplied, "result",
     "/properties/provenance/properties/device_settings/properties/applied"),
    (d.Seeds, "result", "/properties/provenance/properties/seeds"),
    (d.Contention, "result", "/$defs/contention"),
    (d.ThrottleRecord, "result", "/$defs/contention/properties/throttle"),
    (d.DeviceProcesses, "result", "/$defs/contention/properties/device_processes"),
    (d.ModelCheck, "result", "/$defs/modelCheck"),
    (d.ModelTolerance, "result", "/$defs/modelCheck/properties/tolerance"),
    (d.ModelReference, "result", "/$defs/modelCheck/properties/reference"),
    (d.OutputAgreement, "result",
     "/$defs/modelCheck/properties/outputs/additionalProperties"),
    (d.TokenAgreement, "result", "/$defs/modelCheck/properties/tokens"),
    (d.GradientAgreement, "result", "/$defs/modelCheck/properties/gradients"),
    (d.ErrorRecord, "result", "/$defs/error"),
    (d.Metric, "result", "/$defs/metric"),
    (d.ManifestDoc, "manifest", ""),
    (d.ManifestSuite, "manifest", "/properties/suite"),
    (d.Preflight, "manifest", "/properties/preflight"),
    (d.Signature, "manifest", "/properties/signature"),
    (d.ManifestEntry, "manifest", "/properties/entries/items"),
    (d.VerdictDoc, "audit", ""),
    (d.SubmittedRecord, "audit", "/properties/submitted"),
    (d.AuditImage, "audit", "/properties/image"),
    (d.TolerancesRecord, "audit", "/properties/tolerances"),
    (d.CheckRecord, "audit", "/properties/checks/items"),
    (d.MetricRecord, "audit", "/properties/metrics/items"),
    (d.Interval, "audit", "/properties/metrics/items/properties/interval"),
    (d.Declared, "audit", "/properties/metrics/items/properties/declared"),
    (d.PowerRecord, "audit", "/properties/metrics/items/properties/power"),
    (d.RerunRecord, "audit", "/properties/reruns/items"),
    (d.RerunHost, "audit", "/properties/reruns/items/properties/host"),
    (d.VerdictSummary, "audit", "/properties/summary"),
    (d.NoiseSummary, "audit", "/properties/summary/properties/noise"),
    (d.SubmissionDisturbed, "audit", "/properties/summary/properties/submission_disturbed"),
    (d.DisturbedEntry, "audit",
     "/properties/summary/properties/submission_disturbed/properties/entries/items"),
    (d.PowerSummary, "audit", "/properties/summary/properties/power"),
    (d.PowerEntry, "audit", "/properties/summary/properties/power/properties/entries/items"),
    (d.SubmissionAllows, "audit",
     "/properties/summary/properties/power/properties/submission/items"),
    (d.Signature, "audit", "/properties/signature"),
    (d.PublishedDoc, "published", ""),
    (d.PublishedSource, "published", "/properties/source"),
    (d.ImportRecord, "published", "/properties/import"),
    (d.PublishedDevice, "published", "/properties/device"),
    (d.PublishedWorkload, "published", "/properties/workload"),
    (d.PublishedInfo, "published", "/properties/workload/properties/info"),
    (d.PublishedError, "published", "/properties/error/oneOf/1"),
    (d.Assumption, "published", "/properties/assumptions/items"),
    (d.Cell, "published", "/$defs/cell"),
    (d.DeviceSpec, "device-spec", ""),
    (d.PeakFlops, "device-spec", "/properties/peak_flops"),
    (d.SpecEstimate, "device-spec", "/properties/estimate"),
]

# Objects with properties that are no record of their own: each narrows a value that a row's
# record types already (a metric map's known names, a metric's unit), or is a condition.
REFINEMENTS: dict[tuple[str, str], str] = {
    ("result", "/properties/metrics"): "the metric map (Metrics): known names' units",
    ("result", "/properties/points/items/properties/metrics"): "a point's metric map",
    ("result", "/$defs/repeatMetric"): "a Metric aggregated over repeats",
    ("result", "/$defs/secondsMetric"): "a Metric in seconds",
    ("result", "/$defs/percentMetric"): "a Metric in percent",
    ("result", "/$defs/nonNegativeMetric"): "a Metric that is never negative",
    ("result", "/$defs/joulesMetric"): "a Metric in joules",
    ("result", "/$defs/wattMetric"): "a Metric in watts",
    ("published", "/properties/metrics"): "the cell map: known names' units",
    ("published", "/$defs/nonNegativeCell"): "a Cell that is never negative",
    ("published", "/$defs/percentCell"): "a Cell in percent",
}
SCHEMAS = sorted({schema for _, schema, _ in ROWS})


def load(schema: str) -> dict[str, Any]:
    return json.loads((schemas_dir() / f"{schema}.schema.json").read_text())


def at(doc: Any, pointer: str) -> Any:
    for part in pointer.split("/")[1:]:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def objects(node: Any, pointer: str = "") -> Iterator[str]:
    """The pointer of every object with ``properties``, conditions (if/then/else) aside."""
    if isinstance(node, dict):
        if "properties" in node:
            yield pointer
        for key, value in node.items():
            if key not in ("if", "then", "else"):
                yield from objects(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from objects(value, f"{pointer}/{i}")


def refined(schema: str, pointer: str) -> bool:
    return any(s == schema and (pointer == p or pointer.startswith(p + "/properties/"))
               for s, p in REFINEMENTS)


def differences(record: Any, node: dict[str, Any]) -> list[str]:
    """How a record's keys differ from a schema object's ``required`` and ``properties``."""
    required = set(node.get("required", []))
    properties = set(node["properties"])
    keys = record.__required_keys__ | record.__optional_keys__
    out = []
    if record.__required_keys__ != required:
        out.append(f"required: the record has {sorted(record.__required_keys__ - required)} "
                   f"too many, lacks {sorted(required - record.__required_keys__)}")
    if keys != properties:
        out.append(f"properties: the record has {sorted(keys - properties)} too many, "
                   f"lacks {sorted(properties - keys)}")
    return out


def uncovered(schema: str, doc: dict[str, Any]) -> list[str]:
    named = {pointer for _, s, pointer in ROWS if s == schema}
    return [p for p in objects(doc) if p not in named and not refined(schema, p)]


@pytest.mark.parametrize(("record", "schema", "pointer"), ROWS,
                         ids=[f"{s}#{p or '/'}:{r.__name__}" for r, s, p in ROWS])
def test_record_has_the_schemas_fields(record: Any, schema: str, pointer: str) -> None:
    problems = differences(record, at(load(schema), pointer))
    assert not problems, (f"bench/documents.py {record.__name__} and "
                          f"schemas/{schema}.schema.json#{pointer}: {'; '.join(problems)}")


@pytest.mark.parametrize("schema", SCHEMAS)
def test_every_schema_object_has_a_record(schema: str) -> None:
    missing = uncovered(schema, load(schema))
    assert not missing, (f"schemas/{schema}.schema.json objects without a record in "
                         f"bench/documents.py (add one and a row in ROWS): {missing}")


def test_a_field_added_to_a_schema_is_caught() -> None:
    doc = load("result")
    grown = copy.deepcopy(doc)
    grown["properties"]["workload"]["properties"]["new_field"] = {"type": "string"}
    assert differences(d.WorkloadSection, at(doc, "/properties/workload")) == []
    assert differences(d.WorkloadSection, at(grown, "/properties/workload"))
    grown["required"].append("disturbed")
    assert differences(d.ResultDoc, grown)
    grown["$defs"]["newObject"] = {"type": "object", "properties": {"x": {"type": "integer"}}}
    assert uncovered("result", grown) == ["/$defs/newObject"]
