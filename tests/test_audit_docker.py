"""`invoke audit` of a submission made in the cpu image on a real Docker engine: a clean run
is re-run from its image (digest, labels and the code inside it checked, re-run in that image,
its metrics judged by their intervals); the same run against another image fails without
re-running anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.validate import validate_file
from testbed.images.base import local_base_ref
from testbed.images.spec import REPO_DIR, load_spec
from tests.conftest import FIXTURES

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

INVOKE = str(Path(sys.executable).with_name("invoke"))
SUITE = FIXTURES / "audit-suite.yaml"
CI_TOLERANCES = FIXTURES / "audit-tolerances-ci.yaml"


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INVOKE, *args], cwd=REPO_DIR, capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def submitted(built, tmp_path_factory):
    out = tmp_path_factory.mktemp("container-submission") / "run"
    proc = invoke("bench", "--vendor", "cpu", "--suite", str(SUITE), "--out", str(out),
                  "--no-report")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _verdict(out: Path) -> dict:
    path = out / "verdict.json"
    report = validate_file(path)
    assert report.ok, report.problems
    return json.loads(path.read_text())


def test_clean_container_submission_is_re_run_in_its_image(built, submitted, tmp_path):
    """The verdict of real ResNet/GEMM figures depends on this machine's noise (the sleep
    workloads of test_audit.py test the pass path), so what is asserted here is the container
    path: the image checks, the re-runs in the image, the host's load read from the re-run's
    container, and an exit code that is the verdict's."""
    out = tmp_path / "audit"
    proc = invoke("audit", str(submitted), "--tolerance", str(CI_TOLERANCES), "--out", str(out))
    verdict = _verdict(out)
    assert proc.returncode == {"pass": 0, "fail": 1, "inconclusive": 3}[verdict["verdict"]], \
        proc.stdout + proc.stderr
    assert verdict["mode"] == "container"
    assert verdict["image"]["digest"] == built.digest
    passed = {c["id"] for c in verdict["checks"] if c["status"] == "pass"}
    assert {"image_digest", "image_label", "image_config", "image_code", "sha256",
            "manifest_listing", "workload_identity",
            "seeds", "rerun_config", "rerun_status"} <= passed
    assert not [c for c in verdict["checks"] if c["category"] in ("integrity", "image")
                and c["status"] == "fail"]
    # The monitor found the re-run's container and read its threads.
    assert verdict["reruns"][0]["host"]["rerun_threads"] > 0
    # Both re-runs ran in the submitted image.
    for name in ("as-submitted", "distinct-inputs"):
        doc = json.loads((out / name / "resnet-infer.json").read_text())
        assert doc["provenance"]["image"]["digest"] == built.digest
        assert doc["provenance"]["image"]["native"] is False
    assert any(m["metric"] == "throughput_items_per_s" and m["interval"]
               for m in verdict["metrics"])
    assert f"verdict: {verdict['verdict'].upper()}" in proc.stdout


def test_swapped_image_fails_before_re_running(built, submitted, tmp_path):
    other = local_base_ref(load_spec("cpu"))  # the debootstrap base: another image, no bench
    out = tmp_path / "audit"
    proc = invoke("audit", str(submitted), "--image", other, "--out", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdict = _verdict(out)
    fails = [c for c in verdict["checks"] if c["status"] == "fail"]
    assert [c["id"] for c in fails] == ["image_digest"]
    assert "a different image" in fails[0]["message"] and built.digest in fails[0]["message"]
    assert verdict["reruns"] == [] and not (out / "as-submitted").exists()
    assert "verdict: FAIL" in proc.stdout
