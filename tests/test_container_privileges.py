"""Least privilege for every vendor's container (docs/security.md).

The vendor schema makes every widening of privilege carry a reason, and refuses some outright
(the host's root or a container engine's socket as a mount); the run options give every
vendor a non-root user with only its device nodes' groups, a read-only root with tmpfs
scratch, a pids limit and an optional memory limit. The last test runs the real cpu image
with those options and looks from inside.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from bench.schema import validation_errors
from testbed.images.containers import run_options
from testbed.images.spec import VENDORS, load_spec
from tests.test_vendor_specs import make_kfd_host

SPECS = {v: load_spec(v) for v in VENDORS}


def problems(data: dict) -> str:
    return " | ".join(str(p) for p in validation_errors(data, "vendor"))


def run_of(vendor: str, **changes) -> dict:
    data = copy.deepcopy(SPECS[vendor].data)
    for key, value in changes.items():
        if value is None:
            data["run"].pop(key, None)
        else:
            data["run"][key] = value
    return data


@pytest.mark.parametrize(("changes", "reason_field"), [
    ({"network": "host"}, "network_reason"),
    ({"network": "bridge"}, "network_reason"),
    ({"network": None}, "network"),
    ({"cap_drop": None}, "cap_drop_reason"),
    ({"cap_drop": ["NET_RAW"]}, "cap_drop_reason"),
    ({"security_opt": None}, "security_reason"),
    ({"security_opt": ["seccomp=unconfined", "no-new-privileges"]}, "security_reason"),
    ({"cap_add": ["SYS_ADMIN"]}, "security_reason"),
    ({"privileged": True}, "privileged_reason"),
    ({"ipc": "host"}, "ipc_reason"),
    ({"read_only_root": False}, "read_only_reason"),
])
def test_every_widening_of_privilege_needs_a_reason(changes, reason_field):
    for vendor in ("cpu", "mlu"):
        data = run_of(vendor, **changes)
        assert reason_field in problems(data), (vendor, changes)
        if reason_field != "network":
            data["run"][reason_field] = "a reason a reviewer can check"
            assert problems(data) == "", (vendor, changes)


def test_a_root_user_needs_a_reason():
    data = copy.deepcopy(SPECS["corex"].data)
    data["user"]["uid"] = 0
    assert "root_reason" in problems(data)
    data["user"]["root_reason"] = "the vendor's nodes are 0600 root"
    assert problems(data) == ""


@pytest.mark.parametrize("source", ["/", "//", "/etc", "/etc/", "/var/run/docker.sock",
                                    "/run/docker.sock", "/run/containerd/containerd.sock",
                                    "/proc", "/sys", "/dev", "/home", "/root", "/var/lib/docker",
                                    "/usr"])
def test_host_mounts_that_hand_over_the_host_are_refused_even_with_a_reason(source):
    data = run_of("jetson")
    data["run"]["mounts"].append({"source": source, "target": "/host", "read_only": True,
                                  "optional": False, "reason": "I insist"})
    assert "$.run.mounts[3].source" in problems(data), source


def test_every_mount_says_why():
    data = run_of("jetson")
    del data["run"]["mounts"][1]["reason"]
    assert "reason" in problems(data)
    for vendor in VENDORS:
        for mount in SPECS[vendor].run.get("mounts", []):
            assert len(mount["reason"]) > 20, (vendor, mount)


def _host(tmp_path: Path, *nodes: str, gid: int | None = None) -> Path:
    for node in nodes:
        path = tmp_path / node.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        if gid is not None:
            os.chown(path, -1, gid)
    return tmp_path


def _options(vendor: str, host: Path, memory: str | None = None, uid: int = 1000):
    return run_options(SPECS[vendor], f"accel-testbed/{vendor}:t", "sha256:" + "a" * 64, "c",
                       ["run"], Path("/tmp/out"), None, [], uid, uid, name="n", host_root=host,
                       memory=memory)


def _own_group() -> int:
    """A group other than root's that this process may give its files."""
    if os.geteuid() == 0:
        return 44
    groups = [g for g in os.getgroups() if g != 0]
    if not groups:
        pytest.skip("this user belongs to no group besides root")
    return groups[0]


@pytest.mark.parametrize("vendor", VENDORS)
def test_every_vendor_runs_non_root_read_only_with_limits(vendor, tmp_path):
    gid = _own_group()
    host = make_kfd_host(tmp_path, [128])  # rocm: /dev/kfd and one render node
    host = _host(host, "/dev/cambricon_dev0", "/dev/cambricon_ctl", "/dev/iluvatar0",
                 "/etc/nv_tegra_release", "/dev/nvhost-ctrl-gpu", "/dev/davinci0",
                 "/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc", "/dev/kfd",
                 "/dev/dri/renderD128", gid=gid)
    (host / "usr/local/Ascend/driver").mkdir(parents=True)
    opts = _options(vendor, host, memory="8g")
    argv = opts.docker_cli()
    assert opts.user == "1000:1000"
    assert _options(vendor, host, uid=0).user == "10001:10001"  # never root
    assert "--read-only" in argv and opts.docker_kwargs()["read_only"] is True
    assert opts.tmpfs == {"/tmp": "rw,nosuid,nodev,size=16g,mode=1777"}
    assert argv[argv.index("--tmpfs") + 1] == "/tmp:rw,nosuid,nodev,size=16g,mode=1777"
    assert argv[argv.index("--pids-limit") + 1] == "4096"
    assert argv[argv.index("--memory") + 1] == "8g" == argv[argv.index("--memory-swap") + 1]
    kwargs = opts.docker_kwargs()
    assert kwargs["pids_limit"] == 4096 and kwargs["mem_limit"] == "8g"
    assert kwargs["memswap_limit"] == "8g"
    expected_groups = [] if vendor in ("cpu", "cuda") else [str(gid)]
    assert opts.group_add == expected_groups, opts.devices
    assert argv.count("--group-add") == len(expected_groups)
    assert "--memory" not in _options(vendor, host).docker_cli()  # no limit unless asked


def test_device_nodes_of_root_group_add_no_group(tmp_path):
    host = _host(tmp_path, "/dev/cambricon_dev0", "/dev/cambricon_ctl")
    assert _options("mlu", host).group_add == []  # group 0 would be far more than a device


PROBE = r"""
import json, os, pathlib, socket
out = {"uid": os.getuid(), "groups": os.getgroups()}
try:
    open("/opt/probe", "w")
    out["root_fs"] = "writable"
except OSError as exc:
    out["root_fs"] = exc.strerror
pathlib.Path("/tmp/probe").write_text("x")
out["tmp"] = "writable"
for f in ("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"):
    if os.path.exists(f):
        out["pids_max"] = open(f).read().strip()
for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
    if os.path.exists(f):
        out["memory_max"] = open(f).read().strip()
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
out["cap_eff"] = status["CapEff"].strip()
out["no_new_privs"] = status["NoNewPrivs"].strip()
out["interfaces"] = sorted(name for _, name in socket.if_nameindex())
print(json.dumps(out))
"""


@pytest.mark.docker
@pytest.mark.slow
def test_the_cpu_image_runs_with_least_privilege(client, built, tmp_path):
    """From inside the real cpu image, started with the options `invoke bench` uses."""
    spec = SPECS["cpu"]
    out = tmp_path / "out"
    out.mkdir()
    opts = run_options(spec, built.tag, built.digest, "c", [], out, None, [], 0, 0,
                       name=None, memory="2g")
    kwargs = {**opts.docker_kwargs(), "entrypoint": ["python", "-c", PROBE], "command": []}
    container = client.containers.create(**kwargs)
    try:
        container.start()
        assert container.wait(timeout=120)["StatusCode"] == 0, container.logs().decode()
        seen = json.loads(container.logs(stderr=False).decode().strip().splitlines()[-1])
    finally:
        container.remove(force=True)
    assert seen["uid"] == 10001
    assert seen["root_fs"] == "Read-only file system" and seen["tmp"] == "writable"
    assert seen["pids_max"] == "4096"
    assert seen["memory_max"] == str(2 << 30)
    assert int(seen["cap_eff"], 16) == 0 and seen["no_new_privs"] == "1"
    assert seen["interfaces"] == ["lo"]
