"""`invoke bench --slurm`: the generated scripts for every vendor, and real jobs on a real Slurm.

The cluster is two `slurmd -N n1|n2` on this machine, started by scripts/slurm-cluster.sh
(Debian's slurm-wlm and munge, installed by scripts/system-deps.sh) in a fresh directory with
free ports, so it never meets another cluster on the machine. The job tests submit through
`invoke bench --slurm` as a user would and read the gathered run directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.validate import validate_file
from testbed.images.spec import VENDORS, load_spec
from testbed.launch.base import RunRequest
from testbed.launch.slurm import (
    SlurmOptions,
    docker_node_options,
    parse_record,
    plan_job,
)
from testbed.launch.slurm_script import batch_script, node_script
from tests.conftest import ROOT, bench_env, skip_or_fail
from tests.test_vendor_specs import ASCEND_HOST, make_host, make_kfd_host

INVOKE = [sys.executable, "-m", "invoke"]


def _plan(vendor: str, suite: str, options: SlurmOptions, run_id: str, run_dir: Path,
          **request):
    """``plan_job`` for a request of ``vendor`` and ``suite`` with this run id and directory
    (``request``: more of its fields; lists become tuples)."""
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in request.items()}
    return plan_job(RunRequest(suite=suite, vendor=vendor, run_id=run_id, out=run_dir,
                               launcher="slurm", **fields), options)


# -- the scripts, for every vendor, at 4 nodes x 8 devices --------------------------------------
def _per_node(vendor: str) -> int | None:
    """8 devices per node, except a Jetson board: one integrated GPU."""
    return None if load_spec(vendor).run["select_by"] == "single" else 8


def _job(vendor: str, tmp_path: Path, **changes):
    job = _plan(vendor, "micro", SlurmOptions(nodes=4, devices_per_node=_per_node(vendor),
                                              partition="gpu", account="lab", time="2:00:00"),
                f"20260101T000000Z-{vendor}-micro-abcdef", tmp_path / "run")
    return dataclasses.replace(job, **changes)


def _write_stub(path: Path, body: str) -> None:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _run_batch(job, tmp_path: Path) -> list[str]:
    """Run the batch script with stub srun/scontrol: the srun lines it issues, in order."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    _write_stub(stubs / "srun", f'echo "srun $*" >> {tmp_path}/sruns\n')
    _write_stub(stubs / "scontrol", 'if [ "$2" = hostnames ]; then printf "gpu01\\ngpu02\\n"; '
                                    'else echo "NodeName=gpu01 NodeAddr=10.0.0.1 Port=0"; fi\n')
    script = tmp_path / "job.sbatch"
    script.write_text(batch_script(job))
    (Path(job.run_dir) / "slurm").mkdir(parents=True, exist_ok=True)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "SLURM_JOB_NODELIST": "gpu[01-04]",
           "SLURM_JOB_ID": "4242"}
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return (tmp_path / "sruns").read_text().splitlines()


def _run_node(job, tmp_path: Path, entry: str, nnodes: int, placement: str,
              node_rank: int = 3) -> list[str]:
    """Run the node script as task ``node_rank`` of a step, with a stub for what it starts:
    the argv it would exec."""
    stub = tmp_path / "argv"
    _write_stub(stub, 'printf "%s\\n" "$@"\n')
    if job.container == "none":
        job = dataclasses.replace(job, python=str(stub))
    script = tmp_path / "node.sh"
    script.write_text(node_script(job))
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    for tool in ("docker", "apptainer"):
        shutil.copy(stub, stubs / tool)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "RUN_DIR": job.run_dir, "SLURM_JOB_ID": "4242",
           "SLURM_NODEID": str(node_rank), "SLURMD_NODENAME": f"gpu0{node_rank + 1}",
           "BENCH_RDZV_ENDPOINT": "10.0.0.1:29642"}
    proc = subprocess.run(["bash", str(script), entry, str(nnodes), placement], env=env,
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


@pytest.mark.parametrize("vendor", VENDORS)
def test_batch_script_for_four_nodes_of_eight_devices(vendor, tmp_path):
    job = _job(vendor, tmp_path)
    text = batch_script(job)
    gres = load_spec(vendor).data["cluster"]["slurm_gres"]
    for line in ("#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=1", "#SBATCH --exclusive",
                 "#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --time=2:00:00",
                 f"#SBATCH --output={job.run_dir}/slurm/job-%j.out"):
        assert line in text.splitlines(), line
    assert (f"#SBATCH --gres={gres}:8" in text) == bool(gres)
    assert ("--gres" in text) == bool(gres)
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0

    sruns = _run_batch(job, tmp_path)
    steps = {s.entry: s.placement for s in job.steps}
    assert [line.split()[-3] for line in sruns] == list(steps)  # one step per entry, in order
    for line in sruns:
        _entry, nnodes, placement = line.split()[-3:]
        if placement == "multi":
            assert line.startswith("srun --nodes=4 --ntasks-per-node=1") and nnodes == "4"
        else:
            assert line.startswith("srun --nodes=1 --ntasks=1 --nodelist=gpu01")
            assert nnodes == "1"
    assert steps["collectives"] == "multi" and steps["gemm-fp32"] == "single"
    log = (Path(job.run_dir) / "slurm" / "steps.tsv").read_text().splitlines()
    assert [row.split("\t")[:2] for row in log] == [[e, "0"] for e in steps]


@pytest.mark.parametrize("vendor", VENDORS)
def test_node_script_starts_rank_of_a_four_node_collective(vendor, tmp_path):
    job = _job(vendor, tmp_path)
    argv = _run_node(job, tmp_path, "collectives", 4, "multi")
    assert argv[:2] == ["-m", "bench"] and argv[2] == "run"
    node_dir = f"{job.run_dir}/nodes/gpu04"
    assert _value(argv, "--device") == load_spec(vendor).data["bench_device"]
    assert _value(argv, "--only") == "collectives"
    assert _value(argv, "--out") == f"{node_dir}/collectives"
    assert _value(argv, "--idle-file") == f"{node_dir}/idle.json"
    assert ("--nproc-per-node" in argv) == bool(_per_node(vendor))
    if _per_node(vendor):
        assert _value(argv, "--nproc-per-node") == "8"
    assert _value(argv, "--nnodes") == "4" and _value(argv, "--node-rank") == "3"
    assert _value(argv, "--rdzv-endpoint") == "10.0.0.1:29642"
    assert _value(argv, "--rdzv-id") == "4242-collectives"
    assert _value(argv, "--launcher") == "slurm" and _value(argv, "--job-id") == "4242"
    assert Path(node_dir).is_dir()
    single = _run_node(job, tmp_path, "gemm-fp32", 1, "single", node_rank=0)
    assert "--nnodes" not in single and "--per-node" not in single
    assert "--per-node" in _run_node(job, tmp_path, "gemm-fp32", 1, "per_node")


def _node_host(tmp_path: Path) -> Path:
    """A host laid out like an 8-device node of every vendor that selects device nodes."""
    host = tmp_path / "host"
    make_kfd_host(host, [128 + i for i in range(8)])  # rocm: KFD topology and render nodes
    make_host(host, *(f"/dev/{name}{i}" for i in range(8)
                      for name in ("cambricon_dev", "iluvatar", "davinci")),
              "/dev/cambricon_ctl", "/etc/nv_tegra_release", *ASCEND_HOST)
    return host


@pytest.mark.parametrize("vendor", VENDORS)
def test_node_script_in_the_vendor_image_with_its_passthrough(vendor, tmp_path):
    spec = load_spec(vendor)
    tag = f"accel-testbed/{vendor}:0123456789abcdef"
    devices = None if spec.run["select_by"] == "none" else _per_node(vendor)
    options = docker_node_options(spec, tag, "sha256:" + "a" * 64, "abc123", devices, 1000,
                                  1000, host_root=_node_host(tmp_path))
    job = _job(vendor, tmp_path, container="docker", image=tag, container_options=options)
    argv = _run_node(job, tmp_path, "collectives", 4, "multi")
    image_at = argv.index(tag)
    docker, bench = argv[:image_at], argv[image_at + 1:]
    assert docker[:2] == ["run", "--rm"] and _value(docker, "--network") == "host"
    assert "--privileged" not in docker and _value(docker, "--cap-drop") == "ALL"
    node_dir = f"{job.run_dir}/nodes/gpu04"
    assert f"{node_dir}:{node_dir}" in docker
    if vendor == "cuda":
        assert _value(docker, "--gpus") == '"device=0,1,2,3,4,5,6,7"'
    if vendor == "mlu":
        assert "/dev/cambricon_dev7" in docker and "/dev/cambricon_ctl" in docker
        assert "MLU_VISIBLE_DEVICES=0,1,2,3,4,5,6,7" in docker
    if vendor == "corex":
        assert "/dev/iluvatar7" in docker
    assert bench[0] == "run" and _value(bench, "--node-rank") == "3"  # the image's entrypoint

    sif = tmp_path / "bench.sif"
    sif.write_bytes(b"not really an image")
    job = _job(vendor, tmp_path, container="apptainer", image=str(sif),
               container_options=tuple(spec.data["cluster"]["apptainer_flags"]))
    argv = _run_node(job, tmp_path, "collectives", 4, "multi")
    assert argv[0] == "run" and argv[argv.index(str(sif)) + 1] == "run"
    assert ("--nv" in argv) == ("--nv" in spec.data["cluster"]["apptainer_flags"])


def test_scheduler_record_is_parsed():
    record = parse_record("JobId=7 JobName=bench-micro JobState=CANCELLED Reason=None "
                          "Command=/runs/a b/job.sbatch NodeList=n[1-2] ExitCode=0:15")
    assert record["JobState"] == "CANCELLED" and record["NodeList"] == "n[1-2]"
    assert record["Command"] == "/runs/a b/job.sbatch" and record["ExitCode"] == "0:15"


# -- real jobs ---------------------------------------------------------------------------------
def _free_ports(count: int) -> int:
    """A base port with ``count`` consecutive free ports after it."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count > 65000:
            continue
        try:
            socks = []
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free ports")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real two-node Slurm cluster on this machine, stopped after the module."""
    missing = [t for t in ("munged", "slurmctld", "slurmd", "sbatch") if not shutil.which(t)]
    if missing:
        skip_or_fail(f"Slurm is not installed ({', '.join(missing)} missing); "
                     "scripts/system-deps.sh installs slurm-wlm and munge")
    if os.getuid() != 0:
        skip_or_fail("the test cluster's daemons run as root (SlurmUser=root)")
    directory = tmp_path_factory.mktemp("slurm")
    base = _free_ports(3)
    env = {**os.environ, "BENCH_SLURM_CTLD_PORT": str(base),
           "BENCH_SLURM_NODE_PORT": str(base + 1)}
    script = ROOT / "scripts" / "slurm-cluster.sh"
    proc = subprocess.run(["bash", str(script), "start", str(directory)], env=env,
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        subprocess.run(["bash", str(script), "stop", str(directory)], timeout=60)
        pytest.fail(f"the test cluster did not start: {proc.stderr[-2000:]}")
    yield {"SLURM_CONF": str(directory / "slurm.conf")}
    subprocess.run(["bash", str(script), "stop", str(directory)], timeout=60)


RULES = ("rules: {warmup_iters: 1, min_iters: 3, min_duration_s: 0.05, repeats: 1, "
         "timeout_s: 120}\ntelemetry: {interval_s: 0.1, idle_s: 0.2}\n")


def _invoke_slurm(suite: Path, out: Path, env: dict[str, str], *extra: str, wait: bool = True,
                  timeout_s: float = 300
                  ) -> subprocess.Popen[str] | subprocess.CompletedProcess[str]:
    cmd = [*INVOKE, "bench", "--slurm", "--nodes", "2", "--vendor", "cpu", "--suite", str(suite),
           "--out", str(out), "--no-report", *extra]
    if wait:
        return subprocess.run(cmd, cwd=ROOT, env=bench_env(**env), capture_output=True,
                              text=True, timeout=timeout_s)
    return subprocess.Popen(cmd, cwd=ROOT, env=bench_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_a_suite_runs_as_one_job_and_is_gathered(cluster, tmp_path):
    """Collectives across both nodes through srun + torchrun's c10d rendezvous, and a per-node
    entry on each node: one gathered, valid run. (A single-device entry on the first node is
    the first entry of the scancel test.)"""
    suite = tmp_path / "cluster.yaml"
    suite.write_text(
        "name: cluster\n" + RULES + "entries:\n"
        "  - {id: coll, workload: collectives, mode: infer, params: {nproc: 1, "
        "ops: [all_reduce, all_gather], sizes_bytes: [65536]}}\n"
        "  - {id: spread, workload: test-sleep, mode: infer, per_node: true}\n")
    out = tmp_path / "run"
    proc = _invoke_slurm(suite, out, cluster)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[1/2] coll" in proc.stdout + proc.stderr

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["state"] == "finished"
    assert manifest["slurm"]["state"] == "COMPLETED" and manifest["slurm"]["nodes"] == ["n1",
                                                                                        "n2"]
    entries = {e["id"]: e for e in manifest["entries"]}
    assert set(entries) == {"coll", "spread.n1", "spread.n2"}
    assert {e["status"] for e in entries.values()} == {"ok"}
    assert entries["coll"]["nodes"] == ["n1", "n2"] and entries["spread.n2"]["nodes"] == ["n2"]
    contributed = {c["node"]: sorted(e["entry"] for e in c["entries"])
                   for c in manifest["slurm"]["contributions"]}
    assert contributed == {"n1": ["coll", "spread"], "n2": ["coll", "spread"]}
    # what ran and what the scheduler recorded are kept
    assert "srun --nodes=2 --ntasks-per-node=1 --job-name=coll" in \
        (out / "slurm" / "job.sbatch").read_text()
    assert "JobState=COMPLETED" in (out / "slurm" / "job-record.txt").read_text()
    for name in ("coll", "spread.n1", "spread.n2", "manifest"):
        assert validate_file(out / f"{name}.json").ok, name

    coll = json.loads((out / "coll.json").read_text())
    assert coll["placement"]["world_size"] == 2 and coll["placement"]["launcher"] == "slurm"
    assert coll["placement"]["job_id"] == manifest["slurm"]["job_id"]
    ranks = {n["node"]: n["ranks"] for n in coll["placement"]["nodes"]}
    assert sorted(ranks) == ["n1", "n2"]
    assert sorted(r for node_ranks in ranks.values() for r in node_ranks) == [0, 1]
    assert [p["status"] for p in coll["points"]] == ["ok", "ok"]
    assert [n["node"] for n in coll["telemetry"]["nodes"]] == ["n2"]  # node 2's own series
    assert [n["node"] for n in coll["repeats"][0]["telemetry"]["nodes"]] == ["n1", "n2"]
    spread = json.loads((out / "spread.n2.json").read_text())
    assert spread["placement"]["per_node"] is True and spread["placement"]["node"] == "n2"


def test_a_training_entry_trains_across_both_nodes(cluster, tmp_path):
    """llm-pretrain with nnodes 2 goes through the same launcher: one rank on each node, FSDP
    on gloo, the checkpoint round trip in one directory both nodes share (one host here), one
    gathered result naming both nodes and ranks; a one-node entry beside it runs on n1 only."""
    suite = tmp_path / "train.yaml"
    ckpt = tmp_path / "shared"
    ckpt.mkdir()
    suite.write_text(
        "name: train-cluster\n" + RULES + "entries:\n"
        "  - {id: fsdp2, workload: llm-pretrain, mode: train, config: small, precision: fp32,\n"
        "     rules: {timeout_s: 600},\n"
        "     params: {model: llama3-8b, nproc: 1, nnodes: 2, strategy: fsdp, loss_steps: 5,\n"
        f"              checkpoint_dir: '{ckpt}'}}}}\n"
        "  - {id: one, workload: llm-pretrain, mode: train, config: small, precision: fp32,\n"
        "     params: {model: llama3-8b, checkpoint: false, loss_steps: 5}}\n")
    out = tmp_path / "run"
    proc = _invoke_slurm(suite, out, cluster, timeout_s=900)  # two ranks on a busy host
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    entries = {e["id"]: e for e in manifest["entries"]}
    assert entries["fsdp2"]["status"] == "ok" and entries["fsdp2"]["nodes"] == ["n1", "n2"]
    assert entries["one"]["status"] == "ok" and entries["one"]["nodes"] == ["n1"]
    assert "srun --nodes=2 --ntasks-per-node=1 --job-name=fsdp2" in \
        (out / "slurm" / "job.sbatch").read_text()
    doc = json.loads((out / "fsdp2.json").read_text())
    assert validate_file(out / "fsdp2.json").ok
    assert doc["placement"]["world_size"] == 2 and doc["placement"]["nnodes"] == 2
    ranks = {n["node"]: n["ranks"] for n in doc["placement"]["nodes"]}
    assert sorted(ranks) == ["n1", "n2"]
    assert sorted(r for node_ranks in ranks.values() for r in node_ranks) == [0, 1]
    info = doc["workload"]["info"]
    assert info["strategy"] == "fsdp" and info["nnodes"] == 2
    assert "--rdzv_backend" in info["command"] and "--node_rank" in info["command"]
    assert doc["metrics"]["checkpoint_resume_loss_diff"]["value"] is not None
    assert [n["node"] for n in doc["repeats"][0]["telemetry"]["nodes"]] == ["n1", "n2"]
    assert list(ckpt.glob("bench-train-*-checkpoint"))  # the one directory both nodes wrote


def test_scancel_keeps_finished_results_and_marks_the_rest(cluster, tmp_path):
    suite = tmp_path / "cancel.yaml"
    suite.write_text(
        "name: cancel\n" + RULES + "entries:\n"
        "  - {id: first, workload: test-sleep, mode: infer}\n"
        "  - {id: hang, workload: test-hang, mode: infer}\n"
        "  - {id: never, workload: test-sleep, mode: infer}\n")
    out = tmp_path / "run"
    proc = _invoke_slurm(suite, out, cluster, wait=False)
    try:
        deadline = time.monotonic() + 180
        hang_started = out / "nodes" / "n1" / "hang" / "manifest.json"
        while not hang_started.exists():
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the job never reached its second entry"
            time.sleep(0.5)
        job_id = json.loads((out / "manifest.json").read_text())["slurm"]["job_id"]
        subprocess.run(["scancel", job_id], env={**os.environ, **cluster}, check=True)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["state"] == "interrupted" and manifest["slurm"]["state"] == "CANCELLED"
    entries = {e["id"]: e for e in manifest["entries"]}
    assert entries["first"]["status"] == "ok" and validate_file(out / "first.json").ok
    assert entries["first"]["nodes"] == ["n1"]  # a single-device entry: the first node only
    assert not (out / "nodes" / "n2" / "first").exists()
    assert entries["hang"]["status"] in ("interrupted", "killed")
    assert entries["never"]["status"] == "interrupted"
    assert "was cancelled (scancel)" in entries["never"]["error"]
    assert "never: not run: job" in output


def test_a_gathered_result_that_fails_validation_is_set_aside(cluster, tmp_path):
    """Was: written under its name anyway, with schema_problems in the manifest, and exit 130
    (the job FAILED because a step exited 1). Now the launchers' one policy: renamed
    bad.json.rejected, its manifest entry an error naming it, exit 1; the node's own file is
    left as it came, and `invoke gather` accepts the same."""
    suite = tmp_path / "invalid.yaml"
    suite.write_text("name: invalid\n" + RULES + "entries:\n"
                     "  - {id: good, workload: test-sleep, mode: infer}\n"
                     "  - {id: bad, workload: test-invalid-result, mode: infer}\n")
    out = tmp_path / "run"
    proc = _invoke_slurm(suite, out, cluster)
    said = proc.stdout + proc.stderr
    assert proc.returncode == 1, said[-3000:]
    assert "-> renamed bad.json.rejected" in said and "Traceback" not in said
    node_file = out / "nodes" / "n1" / "bad" / "bad.json"
    assert node_file.is_file() and not (out / "bad.json").exists()
    assert (out / "bad.json.rejected").read_bytes() == node_file.read_bytes()
    assert validate_file(out / "good.json").ok and validate_file(out / "manifest.json").ok
    manifest = json.loads((out / "manifest.json").read_text())
    # the job FAILED (a step exited 1), yet every entry ran: the run finished (was:
    # interrupted, exit 130, as if it had been cancelled)
    assert manifest["slurm"]["state"] == "FAILED" and manifest["state"] == "finished"
    entries = {e["id"]: e for e in manifest["entries"]}
    assert entries["good"]["status"] == "ok"
    assert entries["bad"]["status"] == "error" and entries["bad"]["file"] is None
    assert entries["bad"]["rejected"] == "bad.json.rejected"
    assert "$.workload.item_unit" in entries["bad"]["schema_problems"][0]

    again = subprocess.run([*INVOKE, "gather", str(out), "--no-report"], cwd=ROOT,
                           env=bench_env(**cluster), capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 1, again.stdout[-3000:] + again.stderr[-3000:]
    assert not (out / "bad.json").exists() and (out / "bad.json.rejected").is_file()
    assert json.loads((out / "manifest.json").read_text())["entries"][1]["rejected"] == \
        "bad.json.rejected"


def test_a_run_planned_before_the_job_held_its_request_is_still_read(tmp_path):
    """plan.json of runs planned before (the request's fields at its top level): `invoke
    gather` still reads them, as the same job."""
    from testbed.launch.slurm import read_job, write_job

    job = _job("cpu", tmp_path, extra_sbatch=("--qos=high",))
    job = dataclasses.replace(job, request=dataclasses.replace(
        job.request, label="lab-a", overrides=("gemm-fp32.n=64",), require_quiet=True))
    write_job(job, tmp_path / "run")
    plan = tmp_path / "run" / "slurm" / "plan.json"
    data = json.loads(plan.read_text())
    request = data.pop("request")
    data.update(run_id=request["run_id"], run_dir=request["out"], suite=request["suite"],
                vendor=request["vendor"], label=request["label"],
                overrides=request["overrides"], require_quiet=request["require_quiet"])
    plan.write_text(json.dumps(data))
    assert read_job(tmp_path / "run") == job


def test_missing_sbatch_or_unreachable_controller_names_the_fix(cluster, tmp_path):
    suite = "smoke"
    proc = subprocess.run([*INVOKE, "bench", "--slurm", "--vendor", "cpu", "--suite", suite,
                           "--out", str(tmp_path / "a")], cwd=ROOT,
                          env=bench_env(PATH=str(Path(sys.executable).parent)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "`sbatch` is not on PATH" in proc.stderr
    assert "scripts/slurm-cluster.sh start" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "a").exists()  # nothing written

    conf = Path(cluster["SLURM_CONF"]).read_text()
    dead = tmp_path / "dead.conf"
    port = _free_ports(1)
    dead.write_text("\n".join(f"SlurmctldPort={port}" if line.startswith("SlurmctldPort=")
                              else line for line in conf.splitlines()) + "\n")
    proc = subprocess.run([*INVOKE, "bench", "--slurm", "--vendor", "cpu", "--suite", suite,
                           "--out", str(tmp_path / "b")], cwd=ROOT,
                          env=bench_env(SLURM_CONF=str(dead)), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "The Slurm controller does not answer" in proc.stderr and "DOWN" in proc.stderr
    assert "SLURM_CONF" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "b").exists()


# -- gathering what the nodes left, whatever ended the job --------------------------------------
def _left_behind(tmp_path: Path, scheduler_state: str):
    """A run directory as a 2-node job leaves it: entry ``a`` finished on n1, entry ``b`` was
    running on both nodes (n2 never wrote its result, n1's runner stopped without a word),
    entry ``c`` never started."""
    import tests.faulty_workloads  # noqa: F401 - registers test-sleep in this process
    from bench.jsonio import atomic_write_json
    from testbed.launch.slurm import JobState, write_job

    suite = tmp_path / "left.yaml"
    suite.write_text("name: left\n" + RULES + "entries:\n"
                     "  - {id: a, workload: test-sleep, mode: infer}\n"
                     "  - {id: b, workload: test-sleep, mode: infer, per_node: true}\n"
                     "  - {id: c, workload: test-sleep, mode: infer}\n")
    run = tmp_path / "run"
    job = _plan("cpu", str(suite), SlurmOptions(nodes=2), "20260101T000000Z-cpu-left-0", run)
    write_job(job, run)
    node = run / "nodes"
    for entry in ("a", "b"):
        (node / "n1" / entry).mkdir(parents=True)
    doc = {"status": "ok", "sha256": "1" * 64, "placement": {"node": "n1", "node_rank": 0}}
    atomic_write_json(node / "n1" / "a" / "a.json", doc)
    atomic_write_json(node / "n1" / "a" / "manifest.json", {"state": "finished", "entries": [
        {"id": "a", "status": "ok"}]})
    atomic_write_json(node / "n1" / "b" / "manifest.json", {"state": "running", "entries": [
        {"id": "b", "status": "pending"}]})
    (run / "slurm" / "steps.tsv").write_text("a\t0\t2026-01-01T00:00:00Z\n")
    state = JobState(scheduler_state, "None", ["n1", "n2"], {"JobState": scheduler_state},
                     f"JobId=1 JobState={scheduler_state}\n")
    return run, state


@pytest.mark.parametrize(("scheduler_state", "words"), [
    ("TIMEOUT", "reached its time limit"), ("NODE_FAIL", "lost a node"),
    ("CANCELLED", "was cancelled (scancel)")])
def test_what_finished_is_kept_and_the_rest_marked_with_the_reason(scheduler_state, words,
                                                                   tmp_path):
    from testbed.launch.slurm import gather

    run, state = _left_behind(tmp_path, scheduler_state)
    manifest = gather(run, "1", state)
    assert manifest["state"] == "interrupted"
    entries = {e["id"]: e for e in manifest["entries"]}
    assert entries["a"]["status"] == "ok" and (run / "a.json").exists()
    assert entries["b.n1"]["status"] == "killed" and "node n1 stopped" in entries["b.n1"]["error"]
    assert entries["b.n2"]["status"] == "interrupted"
    assert entries["c"]["status"] == "interrupted"
    assert entries["c"]["error"] == f"not run: job 1 {words} before this step"
    contributed = {c["node"]: [e["entry"] for e in c["entries"]]
                   for c in manifest["slurm"]["contributions"]}
    assert contributed == {"n1": ["a"], "n2": []}


@pytest.mark.parametrize(("vendor", "options", "image", "words"), [
    ("cuda", SlurmOptions(nodes=0), None, "at least one node"),
    ("cuda", SlurmOptions(devices_per_node=0), None, "not a device count"),
    ("cuda", SlurmOptions(container="podman"), None, "docker, apptainer or none"),
    ("jetson", SlurmOptions(devices_per_node=8), None, "one device"),
    ("cuda", SlurmOptions(container="apptainer"), None, "needs --image FILE.sif"),
    ("cuda", SlurmOptions(container="apptainer"), "/nonexistent.sif", "does not exist"),
    ("gaudi", SlurmOptions(), None, "Unknown vendor"),
])
def test_bad_slurm_options_are_refused_before_anything_is_written(vendor, options, image,
                                                                  words, tmp_path):
    from bench.errors import UserError

    with pytest.raises(UserError, match=words):
        _plan(vendor, "micro", options, "x", tmp_path / "run", image=image)
    assert not (tmp_path / "run").exists()


def test_an_entry_stopped_in_its_preflight_did_not_run(tmp_path):
    """scancel during a step's preflight (before its entry began): the node's manifest says
    interrupted with the entry still pending; the gathered run says it did not run."""
    from bench.jsonio import atomic_write_json
    from testbed.launch.slurm import gather

    run, state = _left_behind(tmp_path, "CANCELLED")
    (run / "nodes" / "n1" / "c").mkdir(parents=True)
    atomic_write_json(run / "nodes" / "n1" / "c" / "manifest.json", {
        "state": "interrupted", "entries": [{"id": "c", "status": "pending"}]})
    entries = {e["id"]: e for e in gather(run, "1", state)["entries"]}
    assert entries["c"]["status"] == "interrupted"
    assert entries["c"]["error"] == "not run: job 1 was cancelled (scancel) before this step"
# -- no injection into the generated scripts ----------------------------------------------------
# What the probe fed every option: a newline ends an #SBATCH line (or a comment) and starts a
# command; $(), backticks, quotes and ; break out of a quoted or unquoted shell word.
INJECTIONS = ["x\ntouch INJECTED", "x$(touch INJECTED)", "x`touch INJECTED`",
              "x'; touch INJECTED; '", 'x"; touch INJECTED; "', "x; touch INJECTED"]


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("option", ["partition", "account", "time", "gres"])
def test_sbatch_line_options_refuse_shell_and_newlines(option, payload, tmp_path):
    from bench.errors import UserError

    with pytest.raises(UserError, match=f"--{option}"):
        _plan("cuda", "micro", SlurmOptions(**{option: payload}), "x", tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("payload", INJECTIONS)
def test_a_run_directory_that_would_break_out_of_sbatch_output_is_refused(payload, tmp_path):
    from bench.errors import UserError

    with pytest.raises(UserError, match="--out"):
        _plan("cuda", "micro", SlurmOptions(), "x", tmp_path / payload)


@pytest.mark.parametrize("option", ["suite", "label", "set", "only", "image"])
def test_a_newline_in_any_quoted_value_is_refused(option, tmp_path):
    from bench.errors import UserError

    value = INJECTIONS[0]
    kwargs: dict = {}
    suite = "micro"
    if option == "suite":
        suite = str(tmp_path / f"{value}.yaml")
        Path(suite).write_text((ROOT / "bench/suites/smoke.yaml").read_text())
    elif option == "set":
        kwargs["overrides"] = (f"gemm-fp32.n={value}",)
    elif option == "only":
        kwargs["only"] = [value]
    else:
        kwargs[option] = value
    with pytest.raises(UserError, match="control character"):
        _plan("cuda", suite, SlurmOptions(), "x", tmp_path / "run", **kwargs)


@pytest.mark.parametrize("payload", INJECTIONS[1:])
def test_file_names_with_shell_characters_reach_the_nodes_as_they_are(payload, tmp_path):
    """A suite file and an apptainer image may legitimately be named so: quoted, they arrive
    verbatim and run nothing (the scripts are executed here with stub srun and apptainer)."""
    suite = tmp_path / f"{payload}.yaml"
    suite.write_text((ROOT / "bench/suites/smoke.yaml").read_text())
    sif = tmp_path / f"{payload}.sif"
    sif.write_bytes(b"sif")
    job = _plan("cpu", str(suite), SlurmOptions(nodes=2, container="apptainer",
                                                partition="debug"),
                "20260101T000000Z-cpu-s-abcdef", tmp_path / "run", image=str(sif))
    text = batch_script(job)
    assert all(line.startswith("#") or "INJECTED" not in line for line in text.splitlines())
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    _write_stub(stubs / "srun", f'echo "srun $*" >> {tmp_path}/sruns\n')
    _write_stub(stubs / "scontrol", 'printf "n1\\n"\n')
    script = tmp_path / "job.sbatch"
    script.write_text(text)
    (Path(job.run_dir) / "slurm").mkdir(parents=True)
    proc = subprocess.run(["bash", str(script)], env={
        "PATH": f"{stubs}:/usr/bin:/bin", "SLURM_JOB_NODELIST": "n1", "SLURM_JOB_ID": "7"},
        capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    argv = _run_node(job, tmp_path, "gemm-infer", 1, "single", node_rank=0)
    assert not (tmp_path / "INJECTED").exists()
    assert _value(argv, "--suite") == str(suite.resolve())
    assert str(sif.resolve()) in argv


def test_a_tampered_plan_is_refused_when_gathered(tmp_path):
    from bench.errors import UserError
    from testbed.launch.slurm import read_job, write_job

    job = _job("cpu", tmp_path)
    write_job(job, tmp_path / "run")
    plan = tmp_path / "run" / "slurm" / "plan.json"
    data = json.loads(plan.read_text())
    data["partition"] = "debug\ntouch INJECTED"
    plan.write_text(json.dumps(data))
    with pytest.raises(UserError, match="not a Slurm run's plan"):
        read_job(tmp_path / "run")
