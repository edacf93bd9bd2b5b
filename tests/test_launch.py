"""The launchers' one shape: a request chooses its launcher (``launcher_for``), every
launcher checks before it writes, and what a run wrote is accepted by one policy: a document
that fails validation on the host is renamed ``*.json.rejected``, its manifest entry says
why, the exit code is 1 and the report and the store go on with the rest.

The native launcher runs here for real (``invoke bench --native``); the container's run is in
tests/test_images_docker.py (a real Docker engine), Slurm's in tests/test_slurm.py (a real
cluster)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import UserError
from bench.jsonio import atomic_write_json
from bench.validate import validate_file
from testbed.launch import LaunchOptions, launcher_for
from testbed.launch.base import RunRequest, accept_results
from tests.conftest import FIXTURES, ROOT, bench_env

INVOKE = [sys.executable, "-m", "invoke"]
INVALID_SUITE = """\
name: invalid
rules: {warmup_iters: 1, min_iters: 3, min_duration_s: 0.05, repeats: 1, timeout_s: 120}
telemetry: {interval_s: 0.1, idle_s: 0.2}
entries:
  - {id: good, workload: test-sleep, mode: infer}
  - {id: bad, workload: test-invalid-result, mode: infer}
"""


# -- choosing the launcher ----------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "cls"), [("native", "NativeLauncher"),
                                           ("container", "ContainerLauncher"),
                                           ("slurm", "SlurmLauncher")])
def test_the_request_chooses_its_launcher(kind, cls, tmp_path):
    request = RunRequest(suite="smoke", launcher=kind)
    launcher = launcher_for(request, results_root=tmp_path)
    assert type(launcher).__name__ == cls and launcher.name == kind
    assert launcher.results_root == tmp_path
    assert RunRequest.from_dict(request.to_dict()) == request


def test_a_launcher_option_the_chosen_launcher_cannot_use_is_refused():
    with pytest.raises(UserError, match="--memory limits a container's memory"):
        launcher_for(RunRequest(suite="smoke", launcher="native"), LaunchOptions(memory="4g"))
    assert launcher_for(RunRequest(suite="smoke"), LaunchOptions(memory="4g")).memory == "4g"
    with pytest.raises(ValueError, match="launcher must be one of"):
        RunRequest(suite="smoke", launcher="kubernetes")


@pytest.mark.parametrize(("kind", "words"), [("container", "Container runs need --vendor"),
                                             ("slurm", "A Slurm run needs --vendor")])
def test_every_launcher_but_native_needs_a_vendor(kind, words, tmp_path):
    request = RunRequest(suite="smoke", launcher=kind, out=tmp_path / "run")
    with pytest.raises(UserError, match=words):
        launcher_for(request, results_root=tmp_path).launch(request)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["native", "container"])
@pytest.mark.parametrize(("change", "words"), [
    ({"suite": "nope"}, "Unknown suite 'nope'"),
    ({"overrides": ("resnet-train.batch_size=abc",)}, "is a string, expected an integer"),
    ({"only": ("nope",)}, "nope"),
    ({"label": "a\nb"}, "Run label"),
    ({"vendor": "tpu"}, "Unknown vendor 'tpu'"),
])
def test_bad_input_is_refused_on_the_host_before_anything_starts(kind, change, words,
                                                                 tmp_path, monkeypatch):
    """The same checks, in the same place, for every launcher: natively too, a bad suite,
    --set, --only, label or vendor never starts the bench (it was the child that refused
    them)."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # never reached
    fields = {"suite": "smoke", "vendor": "cpu", "out": tmp_path / "run", **change}
    request = RunRequest(launcher=kind, **fields)
    with pytest.raises(UserError, match=words):
        launcher_for(request, results_root=tmp_path).launch(request)
    assert not (tmp_path / "run").exists()


# -- the acceptance policy ----------------------------------------------------------------------
@pytest.fixture
def run_dir(tmp_path):
    """A run directory as the quick suite's native run leaves it: two valid results, their
    manifest."""
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--suite",
                           str(FIXTURES / "suites" / "quick.yaml"), "--device", "cpu",
                           "--out", str(out), "--quiet"], cwd=ROOT, env=bench_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


def _entries(out: Path) -> dict[str, dict]:
    return {e["id"]: e for e in json.loads((out / "manifest.json").read_text())["entries"]}


def test_what_fails_validation_is_renamed_and_its_manifest_entry_says_why(run_dir, tmp_path):
    results = sorted(p.name for p in run_dir.glob("*.json") if p.name != "manifest.json")
    first, second = (run_dir / name for name in results)
    tampered = json.loads(first.read_text())
    tampered["run_id"] = "another-run"  # still the schema's, no longer its seal's
    first.write_text(json.dumps(tampered))
    # a valid document that is no result: a run writes only results and its manifest
    atomic_write_json(run_dir / "extra.json", json.loads((run_dir / "manifest.json").read_text()))
    secret = tmp_path / "secret.json"
    secret.write_text(second.read_text())
    os.symlink(secret, run_dir / "elsewhere.json")  # leads out of the directory
    before = second.read_bytes()

    messages = accept_results(run_dir)
    assert [m.split(":")[0] for m in messages] == [
        str(run_dir / n) for n in ("elsewhere.json", "extra.json", first.name)]
    assert "does not match the body's" in messages[2]
    assert messages[2].endswith(f"-> renamed {first.name}.rejected")
    assert "a run writes only results and its manifest" in messages[1]
    assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".")) == sorted(
        ["elsewhere.json.rejected", "extra.json.rejected", f"{first.name}.rejected",
         second.name, "manifest.json"])
    assert second.read_bytes() == before and secret.read_text() == second.read_text()
    manifest = validate_file(run_dir / "manifest.json")
    assert manifest.ok, manifest.problems
    entry = _entries(run_dir)[first.stem]
    assert entry["status"] == "error" and entry["file"] is None and entry["sha256"] is None
    assert entry["rejected"] == f"{first.name}.rejected"
    assert "does not match the body's" in entry["schema_problems"][0]
    assert entry["error"].startswith(f"its result failed validation on the host and was set "
                                     f"aside as {first.name}.rejected")
    assert _entries(run_dir)[second.stem]["file"] == second.name
    assert accept_results(run_dir) == []  # what is accepted stays accepted


def test_a_result_naming_another_image_is_set_aside(run_dir):
    name = sorted(p.name for p in run_dir.glob("*.json") if p.name != "manifest.json")[0]
    doc = json.loads((run_dir / name).read_text())
    named = doc["provenance"]["image"]
    messages = accept_results(run_dir, ("accel-testbed/cpu:0123", "sha256:" + "0" * 64))
    assert len(messages) == 2 and f"names {named['tag']!r}" in messages[0]
    assert not list(p for p in run_dir.glob("*.json") if p.name != "manifest.json")


def test_an_invalid_manifest_is_left_as_it_is_and_a_blocked_rename_is_said(run_dir):
    name = sorted(p.name for p in run_dir.glob("*.json") if p.name != "manifest.json")[0]
    (run_dir / name).write_text("{ not json")
    (run_dir / f"{name}.rejected").mkdir()
    (run_dir / f"{name}.rejected" / "x").write_text("in the way")
    (run_dir / "manifest.json").write_text('{"kind": "bench.manifest"}')
    messages = accept_results(run_dir)
    assert len(messages) == 1 and "-> could not be renamed" in messages[0]
    assert (run_dir / "manifest.json").read_text() == '{"kind": "bench.manifest"}'


# -- the native launcher, for real --------------------------------------------------------------
def test_native_run_with_an_invalid_result_sets_it_aside_and_reports_the_rest(tmp_path):
    """Was: exit 2, the invalid file kept under its name, no report, nothing stored. Now the
    one policy: exit 1, the file renamed, its manifest entry an error naming it, and the
    report and the store get the valid rest."""
    suite = tmp_path / "invalid.yaml"
    suite.write_text(INVALID_SUITE)
    out, reports, store = tmp_path / "run", tmp_path / "report", tmp_path / "store.duckdb"
    proc = subprocess.run([*INVOKE, "bench", "--native", "--suite", str(suite), "--out",
                           str(out), "--report-out", str(reports), "--store", str(store)],
                          cwd=ROOT, env=bench_env(), capture_output=True, text=True,
                          timeout=600)
    said = proc.stdout + proc.stderr
    assert proc.returncode == 1, said
    assert "Traceback" not in said
    assert "1 result(s) in" in said and "failed validation on the host" in said
    assert "bad.json: $.workload.item_unit" in said and "-> renamed bad.json.rejected" in said
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "bad.json.rejected", "good.json", "manifest.json"]
    assert validate_file(out / "good.json").ok and validate_file(out / "manifest.json").ok
    entries = _entries(out)
    assert entries["good"]["status"] == "ok"
    assert entries["bad"]["status"] == "error" and entries["bad"]["rejected"] == \
        "bad.json.rejected"
    assert (reports / "report.md").is_file() and "1 result(s)" in said
    assert "store: 1 manifest, 1 result added" in said


def test_an_audit_re_run_with_a_rejected_result_says_which(tmp_path, monkeypatch):
    """Was: exit code None and the launcher's UserError as the error (the container; native
    runs: exit 2). Now the re-run's exit code is 1 and its error lists the rejected file; the
    valid rest is read."""
    import tests.faulty_workloads  # noqa: F401 - registers the test workloads here too
    from testbed.audit.replay import rerun

    monkeypatch.setenv("BENCH_WORKLOAD_MODULES", "tests.faulty_workloads")
    suite = tmp_path / "invalid.yaml"
    suite.write_text(INVALID_SUITE)
    done = rerun("native", suite, tmp_path / "as-submitted", "cpu", [], None, "as-submitted")
    assert done.exit_code == 1, done.error
    assert "bad.json: $.workload.item_unit" in (done.error or "")
    assert sorted(done.results) == ["good"]
