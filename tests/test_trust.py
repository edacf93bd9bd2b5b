"""Trust across parties: the store takes no document's own word for who produced it.

The probe's reproductions, each through the commands a user runs: a result copied, edited and
re-sealed joining its run (the leaderboard mean moved, unmarked); a verdict edited into a pass
and re-sealed showing "✓ audited". A seal is a checksum anyone recomputes; a signature by a key
of the store's trust file is what makes a verdict an audit and a manifest a submission.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from bench.jsonio import atomic_write_json, seal
from testbed.signing import sign_document
from testbed.store import open_store
from testbed.store.ingest import add_paths, set_trust
from testbed.store.loadtest import _verdict
from testbed.store.queries import list_results, list_runs, make_filters
from testbed.store.site import write_site
from testbed.store.site.data import gather
from tests.conftest import ROOT
from tests.report_fixtures import ONE_THREAD
from tests.signers import make_signer, trust_file

INVOKE = [sys.executable, "-m", "invoke"]
THROUGHPUT = "throughput_items_per_s"


def invoke(*args, timeout=300):
    return subprocess.run([*INVOKE, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    auditor = make_signer(root, "auditor@lab.example")
    vendor = make_signer(root, "vendor@maker.example")
    mallory = make_signer(root, "mallory@elsewhere.example")  # not in the trust file
    return auditor, vendor, mallory, trust_file(root / "allowed_signers", auditor, vendor)


def forge_result(run: Path, out: Path, factor: float = 1.2) -> Path:
    """The probe: copy a run's resnet-infer.json, multiply its throughput, re-seal it."""
    doc = json.loads((run / "resnet-infer.json").read_text())
    doc["metrics"][THROUGHPUT]["value"] *= factor
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "resnet-infer.json", seal(doc))
    return out / "resnet-infer.json"


def mean_throughput(store) -> float:
    data = gather(store, make_filters(workload=["resnet-infer"]))
    return data.boards["resnet-infer"].rows[0].value


def test_a_forged_result_does_not_join_its_run(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(ONE_THREAD, run)
    store = str(tmp_path / "s.duckdb")
    assert invoke("store", "add", str(run), "--store", store).returncode == 0
    with open_store(store, ROOT, read_only=True) as st:
        before = mean_throughput(st)
        runs_before = [(r.ok, r.results) for r in list_runs(st, make_filters())]
    forged = forge_result(run, tmp_path / "forged")
    proc = invoke("store", "add", str(forged), "--store", store)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"REFUSED {forged}" in proc.stdout and "not in its run's manifest" in proc.stdout
    assert "lists 'resnet-infer' with sha256" in proc.stdout
    with open_store(store, ROOT, read_only=True) as st:
        assert mean_throughput(st) == before
        assert [(r.ok, r.results) for r in list_runs(st, make_filters())] == runs_before


def test_a_forged_result_added_before_its_run_is_set_apart(tmp_path):
    """The other order: the forged copy first. The run's manifest, when it comes, lists
    another result for that entry: the copy is set apart, never counted."""
    forged = forge_result(ONE_THREAD, tmp_path / "forged")
    with open_store(str(tmp_path / "s.duckdb"), ROOT) as st:
        assert add_paths(st, [forged]).added == {"result": 1}
        summary = add_paths(st, [ONE_THREAD])
        assert len(summary.apart) == 1 and not summary.refused
        real = json.loads((ONE_THREAD / "resnet-infer.json").read_text())
        results = {r.entry_id: r for r in list_results(st, make_filters())}
        assert results["resnet-infer"].headline == real["metrics"][THROUGHPUT]["value"]
        assert [(r.ok, r.results) for r in list_runs(st, make_filters())] == [(3, 3)]
        assert mean_throughput(st) == real["metrics"][THROUGHPUT]["value"]


def test_a_second_manifest_with_other_results_is_refused(tmp_path):
    other = tmp_path / "other"
    shutil.copytree(ONE_THREAD, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["entries"][0]["sha256"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    with open_store(str(tmp_path / "s.duckdb"), ROOT) as st:
        add_paths(st, [ONE_THREAD])
        summary = add_paths(st, [other / "manifest.json"])
    assert [r.path.name for r in summary.refused] == ["manifest.json"]
    assert "lists other results" in summary.refused[0].problems[0]


def _forged_verdict(run: Path, sha: str) -> dict:
    """The probe: any verdict, made a pass (reasons emptied, failed checks flipped) and pointed
    at a result's hash, re-sealed."""
    manifest = json.loads((run / "manifest.json").read_text())
    doc = _verdict(run, manifest["run_id"], "cpu", manifest["entries"], False,
                   datetime(2026, 12, 1, 9))
    doc["verdict"] = "pass"
    doc["summary"]["reasons"] = []
    doc["summary"]["metrics"] = {"pass": 40, "fail": 0}
    for check in doc["checks"]:
        check["status"] = "pass"
    doc["submitted"]["result_sha256"] = {"resnet-infer": sha}
    return seal({k: v for k, v in doc.items() if k != "sha256"})


def _site_text(store: str, out: Path) -> str:
    with open_store(store, ROOT, read_only=True) as st:
        write_site(st, out, make_filters())
    return "\n".join(p.read_text() for p in sorted(out.rglob("*.html")))


def test_a_forged_verdict_is_no_audit_and_a_signed_one_says_who(tmp_path, keys):
    auditor, _vendor, mallory, trust = keys
    store = str(tmp_path / "s.duckdb")
    run = tmp_path / "run"
    shutil.copytree(ONE_THREAD, run)
    real_sha = json.loads((run / "resnet-infer.json").read_text())["sha256"]
    assert invoke("store", "trust", str(trust), "--store", store).returncode == 0
    assert invoke("store", "add", str(run), "--store", store).returncode == 0

    # pointed at a forged result's hash (the forged result itself was refused): refused
    forged = forge_result(run, tmp_path / "forged")
    assert invoke("store", "add", str(forged), "--store", store).returncode == 2
    forged_sha = json.loads(forged.read_text())["sha256"]
    for name, sha in (("at-forged", forged_sha), ("at-real", real_sha)):
        (tmp_path / "audits" / name).mkdir(parents=True)
        atomic_write_json(tmp_path / "audits" / name / "verdict.json",
                          _forged_verdict(run, sha))
    proc = invoke("store", "add", str(tmp_path / "audits" / "at-forged"), "--store", store)
    assert proc.returncode == 2 and "none of them stored here" in proc.stdout, proc.stdout
    # pointed at the real result: stored, as an unsigned claim that counts for nothing
    proc = invoke("store", "add", str(tmp_path / "audits" / "at-real"), "--store", store)
    assert proc.returncode == 0 and "UNSIGNED CLAIM" in proc.stdout, proc.stdout
    # signed, but by a key the trust file does not list: the same
    (tmp_path / "audits" / "mallory").mkdir()
    atomic_write_json(tmp_path / "audits" / "mallory" / "verdict.json",
                      sign_document(_forged_verdict(run, real_sha), mallory.key, "audit"))
    proc = invoke("store", "add", str(tmp_path / "audits" / "mallory"), "--store", store)
    assert "UNSIGNED CLAIM" in proc.stdout and "does not list" in proc.stdout, proc.stdout
    # signed by a trusted auditor, then edited and re-sealed: the signature no longer holds
    edited = sign_document(_forged_verdict(run, real_sha), auditor.key, "audit")
    edited["out_dir"] = "elsewhere"
    (tmp_path / "audits" / "edited").mkdir()
    atomic_write_json(tmp_path / "audits" / "edited" / "verdict.json", seal(edited))
    proc = invoke("store", "add", str(tmp_path / "audits" / "edited"), "--store", store)
    assert "UNSIGNED CLAIM" in proc.stdout and "does not verify" in proc.stdout, proc.stdout
    with open_store(store, ROOT, read_only=True) as st:
        assert {r.audit for r in list_results(st, make_filters())} == {None}
        assert [r.audit for r in list_runs(st, make_filters())] == [None]
    text = _site_text(store, tmp_path / "site-unsigned")
    assert "✓ audited" not in text and "audited by" not in text

    # the same verdict signed by the trusted auditor: an audit, and the site says whose
    (tmp_path / "audits" / "signed").mkdir()
    signed = tmp_path / "audits" / "signed" / "verdict.json"
    atomic_write_json(signed, _forged_verdict(run, real_sha))
    assert invoke("sign", str(signed), "--key", str(auditor.key)).returncode == 0
    proc = invoke("store", "add", str(signed), "--store", store)
    assert proc.returncode == 0 and "audited by auditor@lab.example" in proc.stdout
    with open_store(store, ROOT, read_only=True) as st:
        judged = {r.entry_id: (r.audit, r.audited_by) for r in list_results(st, make_filters())}
    assert judged["resnet-infer"] == ("pass", "auditor@lab.example")
    text = _site_text(store, tmp_path / "site-signed")
    assert "✓ audited by auditor@lab.example" in text


def test_a_signed_manifest_says_who_submitted_the_run(tmp_path, keys):
    _auditor, vendor, _mallory, trust = keys
    run = tmp_path / "run"
    shutil.copytree(ONE_THREAD, run)
    store = str(tmp_path / "s.duckdb")
    assert invoke("store", "trust", str(trust), "--store", store).returncode == 0
    assert invoke("store", "add", str(run), "--store", store).returncode == 0
    listed = invoke("store", "list", "runs", "--store", store)
    assert "unsigned" in listed.stdout and "vendor@maker.example" not in listed.stdout
    assert invoke("sign", str(run), "--key", str(vendor.key)).returncode == 0
    assert json.loads((run / "manifest.json").read_text())["signature"]["format"] == "sshsig"
    proc = invoke("store", "add", str(run), "--store", store)
    assert proc.returncode == 0 and "submitted by vendor@maker.example" in proc.stdout
    listed = invoke("store", "list", "runs", "--store", store)
    assert "vendor@maker.example" in listed.stdout, listed.stdout
    text = _site_text(store, tmp_path / "site")
    assert "submitted by vendor@maker.example" in text


def test_a_new_trust_file_checks_every_signature_again(tmp_path, keys):
    auditor, vendor, _mallory, trust = keys
    run = tmp_path / "run"
    shutil.copytree(ONE_THREAD, run)
    manifest = json.loads((run / "manifest.json").read_text())
    verdict = sign_document(_verdict(run, manifest["run_id"], "cpu", manifest["entries"],
                                     True, datetime(2026, 12, 1)), auditor.key, "audit")
    (tmp_path / "audit").mkdir()
    atomic_write_json(tmp_path / "audit" / "verdict.json", verdict)
    with open_store(str(tmp_path / "s.duckdb"), ROOT) as st:
        add_paths(st, [run, tmp_path / "audit"])  # no trust file yet: an unsigned claim
        assert {r.audit for r in list_results(st, make_filters())} == {None}
        _, counts = set_trust(st, trust)
        assert counts == {"verified": 1, "unsigned": 1}  # the verdict; the manifest
        assert {r.audited_by for r in list_results(st, make_filters())} == \
            {"auditor@lab.example"}
        _, counts = set_trust(st, trust_file(tmp_path / "only-vendor", vendor))
        assert counts == {"unverified": 1, "unsigned": 1}  # the auditor's key withdrawn
        assert {r.audit for r in list_results(st, make_filters())} == {None}


@pytest.mark.parametrize("text, words", [
    ("alice ssh-ed25519 notbase64!\n", "not a base64 OpenSSH public key"),
    ("alice\n", "key type must be one of"),
    ("", "names no signer"),
])
def test_a_broken_trust_file_is_refused_naming_the_line(tmp_path, text, words):
    (tmp_path / "allowed").write_text(text)
    proc = invoke("store", "trust", str(tmp_path / "allowed"), "--store",
                  str(tmp_path / "s.duckdb"))
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_a_clusters_per_node_results_are_listed_by_their_hash(tmp_path):
    """A Slurm run's per-node entry is `<entry>.<node>` in the manifest while each result
    says its suite entry: the manifest lists a result by its sha256, under whatever name."""
    run = tmp_path / "run"
    shutil.copytree(ONE_THREAD, run)
    manifest = json.loads((run / "manifest.json").read_text())
    entry = next(e for e in manifest["entries"] if e["id"] == "gemm-infer")
    entry["id"], entry["file"] = "gemm-infer.n1", "gemm-infer.n1.json"
    (run / "gemm-infer.json").rename(run / "gemm-infer.n1.json")
    (run / "manifest.json").write_text(json.dumps(manifest))
    with open_store(str(tmp_path / "s.duckdb"), ROOT) as st:
        summary = add_paths(st, [run])
        assert not summary.refused and summary.added == {"manifest": 1, "result": 3}
        assert [(r.ok, r.results) for r in list_runs(st, make_filters())] == [(3, 3)]
