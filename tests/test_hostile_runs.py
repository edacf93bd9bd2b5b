"""An unlucky operator: runs that collide, disks that fill, parents killed with SIGKILL,
directories that are not ours. Each run ends with a clear message, a manifest true to what is
on disk and nothing left behind (docs/security.md).

The disk-full and read-only tests mount small tmpfs file systems, which needs root: CI runs as
root; elsewhere they skip, saying so.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from bench.errors import UserError
from bench.jsonio import read_json
from bench.validate import validate_file
from tests.conftest import ROOT, bench_env, require_root, run_bench, skip_or_fail

QUICK_RULES = "rules: {warmup_iters: 1, min_iters: 3, min_duration_s: 0.05, repeats: 1}\n" \
              "telemetry: {interval_s: 0.05, idle_s: 0}\n"


def suite_file(tmp_path: Path, entries: str, rules: str = QUICK_RULES) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(f"name: hostile\n{rules}entries:\n{entries}")
    return path


def assert_clean_refusal(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def manifest_matches_disk(out: Path) -> dict:
    """The manifest lists exactly the result files on disk, each with its own hash."""
    manifest = read_json(out / "manifest.json")
    assert validate_file(out / "manifest.json").ok
    on_disk = sorted(p.name for p in out.glob("*.json") if p.name != "manifest.json")
    listed = sorted(e["file"] for e in manifest["entries"] if e["file"])
    assert listed == on_disk, (listed, on_disk)
    for entry in manifest["entries"]:
        if entry["file"]:
            assert read_json(out / entry["file"])["sha256"] == entry["sha256"]
    return manifest


# -- 1. result file names never collide with the run's own files -------------------------------

def cli(capsys, *args: str) -> tuple[int, str]:
    """``python -m bench`` in this process (no interpreter start, so the many refusals below
    stay fast): exit code and stderr. Only refusals are run this way."""
    import tests.faulty_workloads  # noqa: F401 - registers the test workloads
    from bench.cli import main

    code = main(list(args))
    return code, capsys.readouterr().err


def test_an_entry_called_manifest_is_refused_before_anything_runs(tmp_path, capsys):
    suite = suite_file(tmp_path, "  - {id: manifest, workload: test-sleep, mode: infer}\n")
    code, err = cli(capsys, "run", "--suite", str(suite), "--device", "cpu", "--out",
                    str(tmp_path / "run"))
    assert code == 2 and "$.entries[0].id" in err and "'manifest'" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("entry_id", ["../escape", "a/b", "/abs", ".hidden", "x" * 200, "a b",
                                      "manifest"])
def test_an_entry_id_that_is_not_a_file_name_is_refused(tmp_path, capsys, entry_id):
    suite = suite_file(tmp_path, f"  - {{id: {json.dumps(entry_id)}, workload: test-sleep, "
                                 "mode: infer}\n")
    code, err = cli(capsys, "run", "--suite", str(suite), "--device", "cpu", "--out",
                    str(tmp_path / "run"))
    assert code == 2 and "$.entries[0].id" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.yaml"]


@pytest.mark.parametrize("run_id", ["../../x", "/tmp/x", "a/b", "", "-rf"])
def test_a_run_id_that_is_not_a_directory_name_is_refused(tmp_path, capsys, run_id):
    suite = suite_file(tmp_path, "  - {workload: test-sleep, mode: infer}\n")
    code, err = cli(capsys, "run", "--suite", str(suite), "--device", "cpu",
                    f"--run-id={run_id}", "--out", str(tmp_path / "run"))
    assert code == 2 and "Run id" in err and "--run-id" in err, err
    assert not (tmp_path / "run").exists()


def test_a_suite_file_with_any_name_gives_a_usable_run_id(tmp_path):
    from bench.ids import id_problem
    from bench.runner import new_run_id

    for stem in ("my suite (v2)", "../../x", "ü", ""):
        run_id = new_run_id("cpu", stem)
        assert id_problem(run_id) is None, run_id


# -- 3. two runs into one directory: exactly one proceeds --------------------------------------

def test_two_claims_of_one_directory_at_the_same_moment(tmp_path):
    from bench.rundir import claim_out_dir

    out = tmp_path / "run"
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def claim(i: int) -> None:
        barrier.wait()
        try:
            claim_out_dir(out, f"run-{i}")
            outcomes.append("claimed")
        except UserError as exc:
            outcomes.append(exc.what)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("claimed") == 1, outcomes
    assert all("already belongs to run run-" in o for o in outcomes if o != "claimed")


def test_two_runs_into_one_directory_at_the_same_moment(tmp_path):
    suite = suite_file(tmp_path, "  - {workload: test-sleep, mode: infer}\n")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "bench", "run", "--suite", str(suite), "--device", "cpu",
           "--out", str(out), "--quiet"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=bench_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "Traceback" not in refused
    assert "already belongs to run" in refused or "already holds results" in refused
    manifest = manifest_matches_disk(out)
    assert manifest["state"] == "finished"


# -- 4. the disk fills ----------------------------------------------------------------------------

def _mount_tmpfs(mnt: Path, options: str) -> None:
    require_root("mounting a tmpfs")
    mnt.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode:
        skip_or_fail(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "small"
    _mount_tmpfs(mnt, "size=4m")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("quiet", [False, True])
def test_the_disk_fills_mid_run(tmp_path, small_disk, quiet):
    """With --quiet (as every Slurm node runs) too: the failure is said, not swallowed."""
    suite = suite_file(tmp_path, "  - {id: first, workload: test-sleep, mode: infer}\n"
                                 f"  - {{id: filler, workload: test-fill-disk, mode: infer, "
                                 f"params: {{dir: {small_disk}}}}}\n"
                                 "  - {id: never, workload: test-sleep, mode: infer}\n")
    out = small_disk / "run"
    proc = run_bench("run", "--suite", str(suite), "--device", "cpu", "--out", str(out),
                     *(["--quiet"] if quiet else []))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "No space left on device" in proc.stderr
    manifest = manifest_matches_disk(out)
    assert manifest["state"] == "failed" and "No space left" in manifest["error"]
    entries = {e["id"]: e for e in manifest["entries"]}
    assert entries["first"]["status"] == "ok" and entries["first"]["file"] == "first.json"
    assert entries["filler"]["status"] == "error" and entries["filler"]["file"] is None
    assert "could not be written" in entries["filler"]["error"]
    assert entries["never"]["status"] == "pending"


def test_a_disk_already_full_is_refused_before_anything_runs(tmp_path, small_disk):
    with open(small_disk / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    suite = suite_file(tmp_path, "  - {workload: test-sleep, mode: infer}\n")
    proc = run_bench("run", "--suite", str(suite), "--device", "cpu", "--out",
                     str(small_disk / "run"))
    assert_clean_refusal(proc, "No room to run in", "Free some space")
    assert not any((small_disk / "run").iterdir())


def test_the_manifest_write_fails_after_the_result_is_on_disk(tmp_path, monkeypatch):
    """The narrowest window, by fault injection at the file-writing call: the result is
    written, the manifest rewrite after it finds the disk full. The manifest that ends the run
    must list that result."""
    import bench.runner as runner_mod
    from bench.config import load_suite
    from bench.devices import get_backend
    from bench.progress import Display
    from bench.rundir import StorageError, claim_out_dir

    monkeypatch.setenv("BENCH_WORKLOAD_MODULES", "tests.faulty_workloads")
    suite = load_suite(str(suite_file(tmp_path, "  - {id: a, workload: test-sleep, "
                                                "mode: infer}\n")))
    out = claim_out_dir(tmp_path / "run", "r1")
    runner = runner_mod.Runner(suite, get_backend("cpu"), out, "r1", Display(quiet=True), [])
    runner._start_manifest()
    doc = read_json(ROOT / "tests/fixtures/results/smoke-cpu-1thread/gemm-infer.json")
    real_write = runner_mod.atomic_write_json

    def full_disk_for_manifests(path, payload):
        if Path(path).name == "manifest.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, payload)

    monkeypatch.setattr(runner_mod, "atomic_write_json", full_disk_for_manifests)
    with pytest.raises(StorageError):
        runner.write(suite.entries[0], doc)
    assert (out / "a.json").exists()
    monkeypatch.setattr(runner_mod, "atomic_write_json", real_write)  # the reserve freed room
    assert runner._end_on_storage_error(StorageError("x", OSError(errno.ENOSPC, "full"))) == 1
    manifest = read_json(out / "manifest.json")
    assert manifest["state"] == "failed"
    assert manifest["entries"][0]["file"] == "a.json"
    assert manifest["entries"][0]["sha256"] == doc["sha256"]
    assert not (out / ".bench-reserve").exists()


# -- 5. kill -9 of the parent -----------------------------------------------------------------

def _children(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True)
                if "bench.child" in " ".join(p.cmdline())]
    except psutil.Error:
        return []


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_kill_9_of_the_parent_takes_its_children_and_their_scratch(tmp_path):
    from testbed.report import write_report

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    suite = suite_file(tmp_path, "  - {id: quick, workload: test-sleep, mode: infer}\n"
                                 "  - {id: hung, workload: test-hang, mode: infer, "
                                 "rules: {timeout_s: 600}}\n")
    out = tmp_path / "run"
    hanging = tmp_path / "hanging"
    parent = subprocess.Popen([sys.executable, "-m", "bench", "run", "--suite", str(suite),
                               "--device", "cpu", "--out", str(out), "--quiet"], cwd=ROOT,
                              env=bench_env(TMPDIR=str(scratch), TEST_HANG_MARKER=str(hanging)))
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while not hanging.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert hanging.exists(), "the hung entry never started"
        children = _children(parent.pid)
        assert children and (out / "quick.json").exists()
        assert list(scratch.glob("bench-child-*"))
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (any(_alive(c) for c in children)
                                                or list(scratch.glob("bench-child-*"))):
            time.sleep(0.2)
        assert not any(_alive(c) for c in children), "a child outlived its parent"
        assert not list(scratch.glob("bench-child-*")), "scratch directories were left"
    finally:
        for child in children:
            if _alive(child):
                child.kill()
        if parent.poll() is None:
            parent.kill()
    assert read_json(out / "manifest.json")["state"] == "running"
    report = write_report([out], tmp_path / "report")
    [run] = report.inputs.incomplete
    assert run.state == "running" and (run.done, run.total) == (1, 2)
    html = report.html.read_text()
    assert "Incomplete runs" in html and "Some runs did not finish" in html
    assert "## Incomplete runs" in report.markdown.read_text()


# -- 6. only chown what the tool created ------------------------------------------------------

def test_an_existing_directory_is_never_chowned(tmp_path):
    from testbed.launch.container import prepare_results_dir

    require_root("chown (it happens only as root)")

    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    (home / ".bashrc").write_text("# mine\n")
    before = home.stat()
    with pytest.raises(UserError, match="cannot write it"):
        prepare_results_dir(home, "10001:10001")
    after = home.stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == \
        (before.st_uid, before.st_gid, before.st_mode)
    fresh = tmp_path / "new" / "run"
    prepare_results_dir(fresh, "10001:10001")
    assert (fresh.stat().st_uid, fresh.stat().st_gid) == (10001, 10001)
    assert fresh.parent.stat().st_uid == 0  # only the directory the container writes
    writable = tmp_path / "shared"
    writable.mkdir()
    writable.chmod(0o1777)
    prepare_results_dir(writable, "10001:10001")  # writable for the user: used, not changed
    assert writable.stat().st_uid == 0


# -- 11. figures no device could produce -------------------------------------------------------

def test_infinite_and_zero_throughputs_are_errors_that_keep_the_document(tmp_path):
    suite = suite_file(tmp_path, "  - {workload: test-inf, mode: infer}\n"
                                 "  - {workload: test-zero, mode: infer}\n"
                                 "  - {workload: test-sleep, mode: infer}\n")
    out = tmp_path / "run"
    proc = run_bench("run", "--suite", str(suite), "--device", "cpu", "--out", str(out))
    assert proc.returncode == 1, proc.stderr
    manifest = manifest_matches_disk(out)
    assert [e["status"] for e in manifest["entries"]] == ["error", "error", "ok"]
    for name, needle in (("test-inf-infer", "no finite throughput"),
                         ("test-zero-infer", "processed no items")):
        report = validate_file(out / f"{name}.json")
        assert report.ok, report.problems
        assert report.doc["status"] == "error" and needle in report.doc["error"]["message"]


def test_a_batch_size_of_zero_is_refused_before_anything_runs(tmp_path, capsys):
    suite = suite_file(tmp_path, "  - {workload: test-sleep, mode: infer, "
                                 "params: {batch_size: 0}}\n")
    code, err = cli(capsys, "run", "--suite", str(suite), "--device", "cpu", "--out",
                    str(tmp_path / "run"))
    assert code == 2 and "batch_size=0 must be at least 1" in err, err
    code, err = cli(capsys, "run", "--suite", "smoke", "--set", "resnet-infer.batch_size=0",
                    "--out", str(tmp_path / "run"))
    assert code == 2 and "batch_size=0 must be at least 1" in err, err


@pytest.mark.parametrize(("rules", "path"), [
    ("rules: {timeout_s: .inf}\n", "$.rules.timeout_s"),
    ("rules: {min_duration_s: .nan}\n", "$.rules.min_duration_s"),
    ("telemetry: {interval_s: .nan}\n", "$.telemetry.interval_s"),
    ("rules: {timeout_s: -.inf}\n", "$.rules.timeout_s"),
    ("rules: {timeout_s: 1e400}\n", "$.rules.timeout_s"),
])
def test_infinite_and_nan_run_rules_are_refused(tmp_path, capsys, rules, path):
    suite = suite_file(tmp_path, "  - {workload: test-sleep, mode: infer}\n", rules)
    code, err = cli(capsys, "run", "--suite", str(suite), "--device", "cpu", "--out",
                    str(tmp_path / "run"))
    assert code == 2 and str(suite) in err and path in err, err


@pytest.mark.parametrize("value", ["[1, 2", "{a: b", "'unclosed", ".inf", ".nan", "9" * 5000,
                                   "*alias", "!!python/object:os.system x", "[" * 5000])
def test_a_set_value_that_is_not_usable_yaml_is_refused(tmp_path, capsys, value):
    code, err = cli(capsys, "run", "--suite", "smoke", "--set",
                    f"resnet-infer.batch_size={value}", "--out", str(tmp_path / "run"))
    assert code == 2 and "resnet-infer.batch_size" in err, err
    assert "Traceback" not in err and len(err) < 1200


# -- 13. the unwritable-directory test runs as root too ----------------------------------------

@pytest.fixture
def read_only_dir(tmp_path):
    """A directory no one can write: a read-only tmpfs as root (permission bits do not stop
    root), mode 0500 otherwise."""
    mnt = tmp_path / "ro"
    if os.geteuid() == 0:
        _mount_tmpfs(mnt, "ro,size=1m")
        yield mnt
        subprocess.run(["umount", "-l", str(mnt)], check=False)
    else:
        mnt.mkdir(mode=0o500)
        yield mnt


def test_an_unwritable_output_directory_is_refused(tmp_path, read_only_dir):
    """As a user would meet it: the real CLI, exit code 2, one paragraph, nothing written."""
    suite = suite_file(tmp_path, "  - {workload: test-sleep, mode: infer}\n")
    proc = run_bench("run", "--suite", str(suite), "--device", "cpu", "--out",
                     str(read_only_dir / "run"))
    assert_clean_refusal(proc, f"Output directory {read_only_dir / 'run'} is not writable",
                         "--out DIR")
    assert not any(read_only_dir.iterdir())


def test_report_and_audit_outputs_that_are_files_or_read_only_are_clear_errors(
        tmp_path, read_only_dir):
    from testbed.audit.run import audit
    from testbed.report import write_report

    run = ROOT / "tests/fixtures/results/smoke-cpu-1thread"
    a_file = tmp_path / "file"
    a_file.write_text("not a directory")
    for out in (a_file, read_only_dir, read_only_dir / "sub", a_file / "sub"):
        with pytest.raises(UserError, match=r"not writable|is a file|Cannot"):
            write_report([run], out)
        with pytest.raises(UserError, match=r"not writable|is a file|Cannot"):
            audit(run, tmp_path / "audits", native=True, out=out)
    assert a_file.read_text() == "not a directory"
