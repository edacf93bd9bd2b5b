"""The cpu image on a real Docker engine: built from its Dockerfile (from scratch on a fresh
machine: debootstrap base, offline wheelhouse), labels and digest, cache hit and new tag, the
smoke suite in the container with every result validated on the host, Ctrl-C.

Skipped only when no Docker engine answers (CI has one)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.validate import validate_file
from testbed.images.base import local_base_ref
from testbed.images.build import INPUTS_LABEL, build_image, git_revision, plan_build
from testbed.images.containers import find_bench_image
from testbed.images.lock import WHEELHOUSE, sha256_file
from testbed.images.spec import REPO_DIR, load_spec
from testbed.launch.base import accept_results
from tests.conftest import sigint_as_a_terminal_sends_it

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

INVOKE = str(Path(sys.executable).with_name("invoke"))
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INVOKE, *args], cwd=REPO_DIR, capture_output=True, text=True,
                          timeout=900)


def test_labels_digest_user_and_torch(client, built):
    spec = load_spec("cpu")
    labels = built.labels
    assert re.fullmatch(r"accel-testbed/cpu:[0-9a-f]{16}", built.tag)
    assert labels[INPUTS_LABEL].startswith(built.tag.rsplit(":", 1)[1])
    revision = labels["org.opencontainers.image.revision"]
    if built.cached:  # built earlier from the same inputs: a commit in this branch's history
        assert subprocess.run(["git", "-C", str(REPO_DIR), "merge-base", "--is-ancestor",
                               revision, "HEAD"]).returncode == 0, revision
    else:
        assert revision == git_revision(REPO_DIR)[0]
    assert labels["org.opencontainers.image.base.name"] == local_base_ref(spec)
    assert DIGEST.match(labels["org.opencontainers.image.base.digest"])
    assert labels["io.accel-testbed.lock-sha256"] == sha256_file(spec.lock_path)
    assert labels["io.accel-testbed.vendor"] == "cpu"
    assert DIGEST.match(built.digest) and built.digest == built.image_id  # no registry here
    image = client.images.get(built.tag)
    assert image.attrs["Config"]["User"] == "10001:10001"
    out = client.containers.run(built.tag, ["-c", "import torch; print(torch.__version__)"],
                                entrypoint=["python"], remove=True, network_mode="none")
    assert out.decode().strip() == labels["io.accel-testbed.torch"] == "2.13.0+cpu"


def test_second_build_with_unchanged_inputs_is_a_cache_hit(client, built):
    again = build_image(client, load_spec("cpu"), log=lambda line: None)
    assert again.cached
    assert (again.tag, again.digest) == (built.tag, built.digest)
    assert again.seconds < 30


def copy_sources(root: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("images", "bench", "schemas"):
        shutil.copytree(REPO_DIR / name, root / name, ignore=ignore)
    shutil.copy2(REPO_DIR / "pyproject.toml", root / "pyproject.toml")
    # Shared with the checkout (no second download); absent when the engine already had the
    # image, so the checkout's build never had to fill it.
    (REPO_DIR / WHEELHOUSE).mkdir(parents=True, exist_ok=True)
    (root / WHEELHOUSE).symlink_to(REPO_DIR / WHEELHOUSE)
    return root


def test_a_changed_input_gives_a_new_tag(client, built, tmp_path):
    root = copy_sources(tmp_path / "repo")
    spec = load_spec("cpu", root)
    assert plan_build(client, spec, root=root, log=lambda line: None).tag == built.tag
    lock = spec.lock_path
    lock.write_text(lock.read_text() + "\n")
    assert plan_build(client, spec, root=root, log=lambda line: None).tag != built.tag
    shutil.copy2(REPO_DIR / "images" / "cpu" / "requirements.lock", lock)
    spec.dockerfile.write_text(spec.dockerfile.read_text()
                               + 'LABEL io.accel-testbed.test="changed"\n')
    changed = build_image(client, spec, root=root, log=lambda line: None)
    try:
        assert not changed.cached and changed.tag != built.tag
        assert changed.labels["io.accel-testbed.test"] == "changed"
        assert find_bench_image(client, load_spec("cpu")).id == built.image_id
        assert find_bench_image(client, spec, root=root).id == changed.image_id
    finally:
        client.images.remove(changed.tag, noprune=False)


@pytest.fixture(scope="module")
def smoke_run(built, tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "run"
    start = time.monotonic()
    # Threads and CPUs reach the bench inside the container like any other setting.
    proc = invoke("bench", "--vendor", "cpu", "--suite", "smoke", "--out", str(out),
                  "--no-report", "--threads", "1", "--cpus", "0")
    print(f"\nsmoke suite in the container: {time.monotonic() - start:.1f} s (invoke, "
          "including container start and host validation)")
    return proc, out


def test_smoke_suite_in_the_container(built, smoke_run):
    proc, out = smoke_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "running: docker run --rm --name accel-testbed-" in proc.stdout
    assert "[3/3] gemm-infer" in proc.stderr  # progress streamed from the container
    assert "validated: every result" in proc.stdout
    results = sorted(p for p in out.glob("*.json") if p.name != "manifest.json")
    assert [p.stem for p in results] == ["gemm-infer", "resnet-infer", "resnet-train"]
    for path in results:
        report = validate_file(path)
        assert report.ok, report.problems
        doc = report.doc
        assert doc["status"] == "ok"
        assert doc["provenance"]["image"] == {"tag": built.tag, "digest": built.digest,
                                              "native": False}
        assert doc["provenance"]["git"]["commit"] == \
            built.labels["org.opencontainers.image.revision"]
        applied = doc["provenance"]["device_settings"]["applied"]
        assert (applied["threads"], applied["interop_threads"], applied["cpus"]) == (1, 1, "0")
        # the container's /proc answers the contention monitor: the host's CPU time (every
        # process on the machine) and the benchmark's threads inside the container
        for rep in doc["repeats"]:
            c = rep["contention"]
            assert c["other_cpus"] is not None and c["threads"] >= 1, c
        assert isinstance(doc["disturbed"]["value"], bool)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["state"] == "finished"
    assert manifest["preflight"]["busy"] in (True, False)


def test_an_invalid_result_is_refused_on_the_host(built, smoke_run, tmp_path):
    _, out = smoke_run
    for name in ("gemm-infer.json", "resnet-infer.json", "manifest.json"):
        shutil.copy2(out / name, tmp_path / name)
    tampered = json.loads((tmp_path / "gemm-infer.json").read_text())
    tampered["metrics"]["throughput_items_per_s"]["value"] *= 2
    (tmp_path / "gemm-infer.json").write_text(json.dumps(tampered))
    other = json.loads((tmp_path / "resnet-infer.json").read_text())
    assert accept_results(tmp_path, (built.tag, built.digest)) == [
        f"{tmp_path / 'gemm-infer.json'}: $.sha256: sha256 "
        f"{tampered['sha256']!r} does not match the body's "
        f"{_body_hash(tampered)!r}: the document was changed after it was written "
        "(rule: integrity) -> renamed gemm-infer.json.rejected"]
    assert (tmp_path / "gemm-infer.json.rejected").exists()
    assert not (tmp_path / "gemm-infer.json").exists()
    messages = accept_results(tmp_path, (built.tag, "sha256:" + "0" * 64))
    assert len(messages) == 1 and "resnet-infer.json" in messages[0]
    assert f"names {other['provenance']['image']['tag']!r}" in messages[0]


TWO_GEMMS = """\
name: two-gemms
description: two quick entries, one of which the image edits after the run
seed: 0
rules: {warmup_iters: 1, min_iters: 3, min_duration_s: 0.1, repeats: 1, timeout_s: 300}
telemetry: {interval_s: 0.1, idle_s: 0.2}
entries:
  - {id: first, workload: gemm, mode: infer, config: small, precision: fp32}
  - {id: second, workload: gemm, mode: infer, config: small, precision: fp32}
"""
# An image that runs the bench as the real one does, then edits one of the results it wrote.
EDITS_A_RESULT = (
    "import json, pathlib, subprocess, sys\n"
    "code = subprocess.call([sys.executable, '-m', 'bench', *sys.argv[1:]])\n"
    "path = pathlib.Path('/results/first.json')\n"
    "doc = json.loads(path.read_text())\n"
    "doc['metrics']['throughput_items_per_s']['value'] *= 2\n"
    "path.write_text(json.dumps(doc))\n"
    "sys.exit(code)\n")


def test_a_result_rejected_on_the_host_leaves_the_rest_reported_and_stored(client, built,
                                                                           tmp_path):
    """Was: the result renamed and the command exited 2, with no report and nothing stored.
    Now the launchers' one policy: renamed, its manifest entry an error naming it, exit 1,
    and the report and the store get the valid rest."""
    import io

    tag = "accel-testbed-test/edits-a-result:1"
    dockerfile = f"FROM {built.tag}\nENTRYPOINT {json.dumps(['python', '-c', EDITS_A_RESULT])}\n"
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True,
                        network_mode="none")
    try:
        suite = tmp_path / "two-gemms.yaml"
        suite.write_text(TWO_GEMMS)
        out, reports = tmp_path / "run", tmp_path / "report"
        proc = invoke("bench", "--vendor", "cpu", "--image", tag, "--suite", str(suite),
                      "--out", str(out), "--report-out", str(reports), "--store",
                      str(tmp_path / "store.duckdb"))
    finally:
        client.images.remove(tag)
    said = proc.stdout + proc.stderr
    assert proc.returncode == 1, said
    assert "Traceback" not in said
    assert "first.json: $.sha256" in said and "-> renamed first.json.rejected" in said
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "first.json.rejected", "manifest.json", "second.json"]
    assert validate_file(out / "second.json").ok and validate_file(out / "manifest.json").ok
    entries = {e["id"]: e for e in json.loads((out / "manifest.json").read_text())["entries"]}
    assert entries["second"]["status"] == "ok"
    assert entries["first"]["status"] == "error" and entries["first"]["file"] is None
    assert entries["first"]["rejected"] == "first.json.rejected"
    assert (reports / "report.md").is_file()
    assert "store: 1 manifest, 1 result added" in said


def _body_hash(doc):
    from bench.jsonio import body_sha256

    return body_sha256(doc)


STOPPABLE = """\
name: stoppable
description: one quick entry, then one long enough to be interrupted
seed: 0
rules: {warmup_iters: 1, min_iters: 3, min_duration_s: 0.2, repeats: 1, timeout_s: 300}
telemetry: {interval_s: 0.1, idle_s: 0.2}
entries:
  - {id: quick, workload: gemm, mode: infer, config: small, precision: fp32}
  - {id: long, workload: gemm, mode: infer, config: small, precision: fp32,
     rules: {min_duration_s: 120}}
"""


def test_ctrl_c_stops_the_container_and_keeps_what_finished(client, built, tmp_path):
    suite = tmp_path / "stoppable.yaml"
    suite.write_text(STOPPABLE)
    out = tmp_path / "run"
    proc = subprocess.Popen([INVOKE, "bench", "--vendor", "cpu", "--suite", str(suite),
                             "--out", str(out), "--no-report"], cwd=REPO_DIR,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=sigint_as_a_terminal_sends_it)
    deadline = time.monotonic() + 180
    while not (out / "quick.json").exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert (out / "quick.json").exists(), "the first entry never finished"
    time.sleep(2)
    os.kill(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert "interrupted: stopping" in output and "validated: every result" in output
    quick = validate_file(out / "quick.json")
    assert quick.ok and quick.doc["status"] == "ok"
    assert json.loads((out / "manifest.json").read_text())["state"] == "interrupted"
    if (out / "long.json").exists():
        assert validate_file(out / "long.json").doc["status"] == "interrupted"
    assert not client.containers.list(all=True, filters={"name": out.parent.name}), \
        "the container was left behind"
    assert not [c for c in client.containers.list(all=True)
                if c.name.startswith("accel-testbed-") and "stoppable" in c.name]


def test_a_missing_vendor_runtime_is_a_clear_error(client, built):
    from bench.errors import UserError
    from testbed.images.containers import RunOptions, stream_container

    options = RunOptions(image=built.tag, command=["list"], runtime="nvidia",
                         name="accel-testbed-runtime-check")
    with pytest.raises(UserError, match=r"could not start the container.*NVIDIA container"):
        stream_container(client, options, lambda text: None)
    assert not client.containers.list(all=True, filters={"name": "accel-testbed-runtime-check"})
