"""The result schema accepts what the runner writes and rejects broken documents with the
file, the JSON path and the rule."""

from __future__ import annotations

import copy
import json

import pytest

from bench.jsonio import seal
from bench.schema import validation_errors
from bench.validate import validate_document
from tests.conftest import FIXTURES, run_bench


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick") / "run"
    proc = run_bench("run", "--suite", str(FIXTURES / "suites" / "quick.yaml"), "--device", "cpu",
                     "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def doc(run_dir):
    return json.loads((run_dir / "test-sleep-infer.json").read_text())


def problems(doc):
    return validation_errors(doc, "result")


def test_runner_output_is_valid_and_sealed(doc, run_dir):
    assert problems(doc) == []
    assert validate_document(doc, run_dir / "x.json").ok
    m = doc["metrics"]
    assert m["throughput_items_per_s"]["unit"] == "items/s"
    # each step sleeps 10 ms and yields 4 items: at most 400 items/s
    assert 200 < m["throughput_items_per_s"]["value"] <= 400
    assert m["latency_p50_s"]["value"] >= 0.010
    assert len(doc["repeats"]) == 2
    assert doc["telemetry"]["t_s"], "telemetry series recorded"
    assert doc["provenance"]["source_sha256"]


def test_manifest_is_valid(run_dir):
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert validation_errors(manifest, "manifest") == []
    assert manifest["entries"][0]["sha256"] == json.loads(
        (run_dir / "test-sleep-infer.json").read_text())["sha256"]


@pytest.mark.parametrize(("mutate", "path", "rule"), [
    (lambda d: d.pop("provenance"), "$", "required"),
    (lambda d: d.update(status="finished"), "$.status", "enum"),
    (lambda d: d["metrics"]["throughput_items_per_s"].update(value=-1.0),
     "$.metrics.throughput_items_per_s.value", "minimum"),
    (lambda d: d["metrics"]["device_util_pct"].update(value=180.0),
     "$.metrics.device_util_pct.value", "maximum"),
    (lambda d: d["metrics"]["power_w_mean"].pop("reason", None) or d["metrics"][
        "power_w_mean"].update(value=None), "$.metrics.power_w_mean", "required"),
    (lambda d: d["metrics"].pop("throughput_items_per_s"), "$.metrics", "required"),
    (lambda d: d.update(status="error"), "$.error", "type"),
    (lambda d: d["repeats"][0].pop("window"), "$.repeats[0]", "required"),
    (lambda d: d["provenance"]["image"].update(digest="latest"),
     "$.provenance.image.digest", "pattern"),
    (lambda d: d["workload"].update(precision_used="fp8"), "$.workload.precision_used", "enum"),
])
def test_invalid_documents_name_path_and_rule(doc, mutate, path, rule):
    broken = copy.deepcopy(doc)
    mutate(broken)
    found = problems(seal(broken))
    assert found, "the schema must reject this document"
    assert any(p.path == path and p.rule == rule for p in found), [str(p) for p in found]


def test_changed_document_fails_integrity(doc, run_dir):
    tampered = copy.deepcopy(doc)
    tampered["metrics"]["throughput_items_per_s"]["value"] *= 2  # still schema-valid
    report = validate_document(tampered, run_dir / "tampered.json")
    assert not report.ok
    assert report.problems[0].rule == "integrity"


def test_validate_cli_reports_file_path_and_rule(doc, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(doc))
    bad_doc = copy.deepcopy(doc)
    bad_doc["metrics"]["device_util_pct"]["value"] = 250.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(seal(bad_doc)))
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")

    proc = run_bench("validate", str(good), str(bad), str(garbage))
    assert proc.returncode == 2
    assert f"ok       {good}" in proc.stdout
    assert f"INVALID  {bad}" in proc.stdout
    assert "$.metrics.device_util_pct.value" in proc.stdout and "rule: maximum" in proc.stdout
    assert f"INVALID  {garbage}" in proc.stdout and "not JSON" in proc.stdout

    assert run_bench("validate", str(good)).returncode == 0


def test_grid_points_carry_their_own_metrics_and_telemetry(run_dir):
    doc = json.loads((run_dir / "test-grid-infer.json").read_text())
    assert validation_errors(doc, "result") == []
    points = doc["points"]
    assert [p["params"]["sleep_ms"] for p in points] == [5, 10, 1000]
    fast, slow, oom = points
    assert fast["status"] == slow["status"] == "ok"
    # 1 item per 5 ms sleep: at most 200 items/s; 10 ms: at most 100
    assert 100 < fast["metrics"]["throughput_items_per_s"]["value"] <= 200
    assert 50 < slow["metrics"]["throughput_items_per_s"]["value"] <= 100
    assert fast["metrics"]["throughput_items_per_s"]["n"] == 2  # mean over both repeats
    assert len(fast["windows"]) == 2
    assert fast["metrics"]["device_util_pct"]["unit"] == "%"
    assert "power_w_mean" in fast["metrics"]
    assert oom["status"] == "oom" and "90 GiB" in oom["error"]["message"]
    assert oom["metrics"]["memory_estimate_bytes"]["value"] == 90 * 2**30


def test_a_non_finite_value_is_null_with_the_reason():
    from bench.results import metric

    diverged = metric(float("nan"), "s")
    assert diverged["value"] is None and "non-finite value (nan)" in diverged["reason"]
    assert metric(float("inf"), "W", "ignored")["reason"].startswith("non-finite value (inf)")
    assert metric(None, "W", "no power reading") == {"value": None, "unit": "W",
                                                     "reason": "no power reading"}
