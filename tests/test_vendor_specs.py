"""Vendor specs and the `docker run` options derived from them (no engine needed).

The accelerator images cannot run here, so their options are checked against the vendor facts
(docs/vendors.md) with a fake host laid out as a directory: /dev nodes, mounts and the AMD KFD
topology are files under ``host``, and the real option code looks them up there.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest
from docker.types import DeviceRequest

from bench.distributed import parse_devices
from bench.errors import UserError
from bench.schema import validation_errors
from testbed.images.build import base_reference, build_inputs_sha256, image_tag
from testbed.images.containers import (
    container_user,
    run_options,
    suite_mount,
)
from testbed.images.lock import canonical, lock_inputs, locked, platform_tags, wheel_name_version
from testbed.images.spec import REPO_DIR, VENDORS, VendorSpec, load_spec
from testbed.launch.base import RunRequest

SPECS = {v: load_spec(v) for v in VENDORS}


def make_host(tmp_path: Path, *paths: str) -> Path:
    for path in paths:
        node = tmp_path / path.lstrip("/")
        node.parent.mkdir(parents=True, exist_ok=True)
        node.touch()
    return tmp_path


def options(vendor: str, host: Path, devices=None, uid=1000, gid=1000, runtimes=frozenset()):
    spec = SPECS[vendor]
    return run_options(spec, f"accel-testbed/{vendor}:0123456789abcdef", "sha256:" + "a" * 64,
                       "abc123", ["run", "--suite", "smoke"], Path("/tmp/out"), devices, [],
                       uid, gid, name="n", host_root=host, runtimes=runtimes)


ASCEND_HOST = ("/dev/davinci0", "/dev/davinci1", "/dev/davinci_manager", "/dev/devmm_svm",
               "/dev/hisi_hdc", "/usr/local/Ascend/driver/version.info")


def make_kfd_host(tmp_path: Path, minors: list[int], cpu_nodes: int = 1) -> Path:
    """A host whose KFD topology has ``cpu_nodes`` CPU nodes, then one GPU per render minor."""
    nodes = tmp_path / "sys/class/kfd/kfd/topology/nodes"
    for n in range(cpu_nodes):
        (nodes / str(n)).mkdir(parents=True)
        (nodes / str(n) / "properties").write_text(
            "cpu_cores_count 64\nsimd_count 0\ndrm_render_minor 0\n")
    for k, minor in enumerate(minors):
        node = nodes / str(cpu_nodes + k)
        node.mkdir(parents=True)
        node.joinpath("properties").write_text(
            f"cpu_cores_count 0\nsimd_count 1216\ngfx_target_version 90402\n"
            f"drm_render_minor {minor}\n")
    return make_host(tmp_path, "/dev/kfd", *(f"/dev/dri/renderD{m}" for m in minors))


def flag_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


@pytest.mark.parametrize("vendor", VENDORS)
def test_every_image_has_a_valid_spec_dockerfile_and_hash_pinned_lock(vendor):
    spec = SPECS[vendor]
    docker = spec.dockerfile.read_text()
    assert "ARG BASE_IMAGE" in docker and "FROM ${BASE_IMAGE}" in docker
    assert "--require-hashes" in docker and "--no-index" in docker
    assert "docker commit" not in docker
    pins = locked(spec.lock_path)
    assert pins, spec.lock_path
    lines = [ln for ln in spec.lock_path.read_text().splitlines() if ln and ln[0] != "#"]
    assert sum("--hash=sha256:" in ln for ln in lines) == len(pins)
    for provided in spec.python["provided_by_base"]:
        assert provided not in pins, f"{vendor}: {provided} must stay the base's own build"


@pytest.mark.parametrize("vendor", VENDORS)
def test_least_privilege_for_every_vendor(vendor, tmp_path):
    host = make_host(tmp_path, "/dev/cambricon_dev0", "/dev/cambricon_ctl", "/dev/iluvatar0",
                     "/etc/nv_tegra_release", *ASCEND_HOST)
    make_kfd_host(host, [128])
    opts = options(vendor, host)
    argv = opts.docker_cli()
    assert "--privileged" not in argv and not opts.privileged
    assert not any("unconfined" in a for a in argv)
    assert flag_values(argv, "--cap-drop") == ["ALL"] and not opts.cap_add
    assert flag_values(argv, "--security-opt") == ["no-new-privileges"]
    assert flag_values(argv, "--network") == ["none"]
    assert flag_values(argv, "--ipc") == []  # a large --shm-size instead of the host's IPC
    kwargs = opts.docker_kwargs()
    assert kwargs["privileged"] is False and kwargs["network_mode"] == "none"
    assert kwargs["volumes"]["/tmp/out"] == {"bind": "/results", "mode": "rw"}
    env = dict(e.split("=", 1) for e in flag_values(argv, "-e"))
    assert env["TESTBED_IMAGE"] == f"accel-testbed/{vendor}:0123456789abcdef"
    assert env["TESTBED_IMAGE_DIGEST"] == "sha256:" + "a" * 64
    assert env["TESTBED_GIT_COMMIT"] == "abc123"


def test_schema_requires_a_reason_for_privilege():
    data = copy.deepcopy(SPECS["corex"].data)
    data["run"]["privileged"] = True
    assert any("privileged_reason" in p.message for p in validation_errors(data, "vendor"))
    data["run"]["privileged_reason"] = "the vendor runtime needs /lib/modules"
    assert validation_errors(data, "vendor") == []
    data["run"]["security_opt"] = ["seccomp=unconfined"]
    assert any("security_reason" in p.message for p in validation_errors(data, "vendor"))
    data = copy.deepcopy(SPECS["mlu"].data)
    data["user"]["uid"] = 0
    assert any("root_reason" in p.message for p in validation_errors(data, "vendor"))
    data = copy.deepcopy(SPECS["cuda"].data)
    data["run"]["ipc"] = "host"
    assert any("ipc_reason" in p.message for p in validation_errors(data, "vendor"))


def test_cuda_gpus_capabilities_and_device_selection(tmp_path):
    opts = options("cuda", tmp_path)
    argv = opts.docker_cli()
    assert flag_values(argv, "--gpus") == ["all"]
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in flag_values(argv, "-e")
    assert flag_values(argv, "--shm-size") == ["16g"]
    assert opts.user == "1000:1000"
    request = opts.docker_kwargs()["device_requests"][0]
    assert request == DeviceRequest(count=-1, capabilities=[["gpu"]])
    opts = options("cuda", tmp_path, devices=[0, 1])
    assert flag_values(opts.docker_cli(), "--gpus") == ['"device=0,1"']
    request = opts.docker_kwargs()["device_requests"][0]
    assert request["DeviceIDs"] == ["0", "1"] and request["Capabilities"] == [["gpu"]]
    assert "NVIDIA_VISIBLE_DEVICES" not in opts.environment  # the toolkit sets it from --gpus


def test_mlu_device_nodes_control_node_and_visible_devices(tmp_path):
    host = make_host(tmp_path, *(f"/dev/cambricon_dev{i}" for i in range(4)),
                     "/dev/cambricon_ctl", "/dev/cambricon_ipcm0", "/dev/commu0",
                     "/dev/cambricon_dev_bogus", "/usr/bin/cnmon")
    opts = options("mlu", host)
    assert opts.devices == ["/dev/cambricon_ctl", "/dev/cambricon_dev0", "/dev/cambricon_ipcm0",
                            "/dev/commu0", "/dev/cambricon_dev1", "/dev/cambricon_dev2",
                            "/dev/cambricon_dev3"]
    assert opts.environment["MLU_VISIBLE_DEVICES"] == "0,1,2,3"
    argv = opts.docker_cli()
    assert "/usr/bin/cnmon:/usr/bin/cnmon:ro" in flag_values(argv, "-v")
    assert opts.user == "1000:1000"  # non-root, like cpu and cuda
    assert opts.docker_kwargs()["devices"][0] == "/dev/cambricon_ctl:/dev/cambricon_ctl:rwm"
    opts = options("mlu", host, devices=[2, 3])
    assert opts.devices == ["/dev/cambricon_ctl", "/dev/cambricon_dev2", "/dev/cambricon_dev3"]
    assert opts.environment["MLU_VISIBLE_DEVICES"] == "0,1"
    with pytest.raises(UserError, match="/dev/cambricon_dev5"):
        options("mlu", host, devices=[5])


def test_mlu_without_driver_nodes_says_so(tmp_path):
    with pytest.raises(UserError, match=r"No /dev/cambricon_dev\* on this host"):
        options("mlu", tmp_path)
    host = make_host(tmp_path, "/dev/cambricon_dev0")
    with pytest.raises(UserError, match="/dev/cambricon_ctl"):
        options("mlu", host)


def test_corex_device_nodes_and_cuda_visible_devices(tmp_path):
    host = make_host(tmp_path, "/dev/iluvatar0", "/dev/iluvatar1", "/dev/itrctl")
    opts = options("corex", host)
    assert opts.devices == ["/dev/itrctl", "/dev/iluvatar0", "/dev/iluvatar1"]
    assert opts.environment["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert opts.runtime is None and opts.gpus is None
    opts = options("corex", make_host(tmp_path / "b", "/dev/iluvatar0", "/dev/iluvatar1"), [1])
    assert opts.devices == ["/dev/iluvatar1"]
    assert opts.environment["CUDA_VISIBLE_DEVICES"] == "0"


def test_jetson_runtime_and_mounts(tmp_path):
    host = make_host(tmp_path, "/etc/nv_tegra_release", "/run/jtop.sock")
    opts = options("jetson", host)
    argv = opts.docker_cli()
    assert flag_values(argv, "--runtime") == ["nvidia"]
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in flag_values(argv, "-e")
    assert flag_values(argv, "-v")[1:] == ["/etc/nv_tegra_release:/etc/nv_tegra_release:ro",
                                           "/run/jtop.sock:/run/jtop.sock"]
    assert opts.docker_kwargs()["runtime"] == "nvidia"
    assert options("jetson", host, devices=[0]).devices == []
    with pytest.raises(UserError, match="one integrated GPU"):
        options("jetson", host, devices=[1])
    with pytest.raises(UserError, match="/etc/nv_tegra_release"):
        options("jetson", tmp_path / "not-a-jetson")


def test_ascend_device_nodes_driver_and_group(tmp_path):
    host = make_host(tmp_path, *ASCEND_HOST, "/dev/davinci3", "/usr/local/bin/npu-smi")
    opts = options("ascend", host)
    assert opts.devices == ["/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc",
                            "/dev/davinci0", "/dev/davinci1", "/dev/davinci3"]
    assert opts.environment["ASCEND_RT_VISIBLE_DEVICES"] == "0,1,2"
    argv = opts.docker_cli()
    mounts = flag_values(argv, "-v")
    assert "/usr/local/Ascend/driver:/usr/local/Ascend/driver:ro" in mounts
    assert "/usr/local/bin/npu-smi:/usr/local/bin/npu-smi:ro" in mounts
    assert not any(m.startswith("/usr/local/dcmi") for m in mounts)  # optional, absent here
    assert opts.user == "1000:1000" and opts.runtime is None
    gid = str((host / "dev/davinci0").stat().st_gid)
    assert opts.group_add == ([gid] if gid != "0" else [])  # the nodes' group, never root's
    assert opts.docker_kwargs()["group_add"] == (opts.group_add or None)
    opts = options("ascend", host, devices=[3])
    assert opts.devices[-1] == "/dev/davinci3" and len(opts.devices) == 4
    assert opts.environment["ASCEND_RT_VISIBLE_DEVICES"] == "0"
    with pytest.raises(UserError, match="/dev/davinci2"):
        options("ascend", host, devices=[2])
    with pytest.raises(UserError, match="/usr/local/Ascend/driver"):
        options("ascend", make_host(tmp_path / "nodriver", *ASCEND_HOST[:5]))


def test_ascend_docker_runtime_is_used_when_installed(tmp_path):
    host = make_host(tmp_path, *ASCEND_HOST, "/dev/davinci3")
    opts = options("ascend", host, devices=[1, 3], runtimes=frozenset({"runc", "ascend"}))
    argv = opts.docker_cli()
    assert flag_values(argv, "--runtime") == ["ascend"]
    env = dict(e.split("=", 1) for e in flag_values(argv, "-e"))
    assert env["ASCEND_VISIBLE_DEVICES"] == "1,3"  # host indices, for the runtime
    assert env["ASCEND_RT_VISIBLE_DEVICES"] == "0,1"  # what torch_npu then sees
    assert opts.devices == [] and flag_values(argv, "-v") == ["/tmp/out:/results"]
    assert "--privileged" not in argv


def test_rocm_render_nodes_from_the_kfd_topology(tmp_path):
    host = make_kfd_host(tmp_path, [128, 129, 130, 131], cpu_nodes=2)
    make_host(host, "/opt/hyhal/bin/hy-smi")
    opts = options("rocm", host)
    assert opts.devices == ["/dev/kfd", "/dev/dri/renderD128", "/dev/dri/renderD129",
                            "/dev/dri/renderD130", "/dev/dri/renderD131"]
    assert opts.environment["HIP_VISIBLE_DEVICES"] == "0,1,2,3"
    assert "/opt/hyhal:/opt/hyhal:ro" in flag_values(opts.docker_cli(), "-v")
    opts = options("rocm", host, devices=[2])
    assert opts.devices == ["/dev/kfd", "/dev/dri/renderD130"]  # that GPU only, not /dev/dri
    assert opts.environment["HIP_VISIBLE_DEVICES"] == "0"
    assert opts.user == "1000:1000"
    with pytest.raises(UserError, match=r"4 rocm GPU\(s\) \(0-3\); --devices names 7"):
        options("rocm", host, devices=[7])


def test_rocm_without_driver_or_nodes_says_so(tmp_path):
    with pytest.raises(UserError, match=r"KFD topology .* lists no GPU"):
        options("rocm", tmp_path)
    host = make_kfd_host(tmp_path / "b", [128])
    (host / "dev/dri/renderD128").unlink()
    with pytest.raises(UserError, match="/dev/dri/renderD128"):
        options("rocm", host)


def test_device_groups_are_the_nodes_own_gids(tmp_path):
    """/dev/kfd in group video (44 on Debian), renderD* in render: the run gets exactly those
    gids, numerically (the image's /etc/group may name other ids), and never gid 0."""
    from testbed.images.containers import device_groups

    host = make_kfd_host(tmp_path, [128, 129])
    kfd, render = host / "dev/kfd", host / "dev/dri/renderD128"
    if os.geteuid() == 0:
        os.chown(kfd, -1, 44)
        os.chown(render, -1, 109)
        os.chown(host / "dev/dri/renderD129", -1, 109)
    expected = sorted({kfd.stat().st_gid, render.stat().st_gid} - {0})
    assert device_groups(["/dev/kfd", "/dev/dri/renderD128", "/dev/dri/renderD129",
                          "/dev/absent"], host) == [str(g) for g in expected]
    if os.geteuid() == 0:
        argv = options("rocm", host, devices=[1]).docker_cli()
        assert flag_values(argv, "--group-add") == ["44", "109"]


def test_kfd_topology_worked_by_hand(tmp_path):
    from testbed.images.kfd import node_properties, render_minors

    assert node_properties("simd_count 304\ndrm_render_minor 129\nname gfx942\n") == {
        "simd_count": 304, "drm_render_minor": 129}
    host = make_kfd_host(tmp_path, [136, 128], cpu_nodes=1)  # node order, not minor order
    assert render_minors(host) == [136, 128]
    assert render_minors(tmp_path / "nothing") == []


def test_cpu_has_no_devices_and_runs_non_root(tmp_path):
    opts = options("cpu", tmp_path)
    assert opts.devices == [] and opts.gpus is None and opts.runtime is None
    with pytest.raises(UserError, match="no devices to select"):
        options("cpu", tmp_path, devices=[0])
    assert container_user(SPECS["cpu"], 1000, 100) == "1000:100"
    assert container_user(SPECS["cpu"], 0, 0) == "10001:10001"  # never root


def test_parse_devices():
    assert parse_devices("0,1") == [0, 1]
    assert parse_devices(" 3 ") == [3]
    assert parse_devices(None) is None
    with pytest.raises(UserError, match="not a device index"):
        parse_devices("0,gpu1")
    with pytest.raises(UserError, match="twice"):
        parse_devices("1,1")


def test_suite_file_is_mounted_read_only(tmp_path):
    suite = tmp_path / "mine.yaml"
    suite.write_text("name: mine\n")
    suite_arg, mount = suite_mount(str(suite))
    request = RunRequest(suite=str(suite), only=("a", "b"), overrides=("a.x=1",))
    cmd = request.bench_args("cpu", "rid", suite=suite_arg, extra=("--out", "/results"))
    assert cmd == ["run", "--suite", "/suites/mine.yaml", "--device", "cpu", "--run-id", "rid",
                   "--only", "a,b", "--set", "a.x=1", "--out", "/results"]
    assert mount.read_only and mount.source == str(suite)
    assert suite_mount("smoke") == ("smoke", None)
    with pytest.raises(UserError, match="does not exist"):
        suite_mount(str(tmp_path / "missing.yaml"))


def test_build_inputs_hash_covers_files_args_and_base():
    files = [("Dockerfile", "1" * 64), ("testbed/bench/a.py", "2" * 64)]
    args = {"BASE_IMAGE": "b:1"}
    ref = build_inputs_sha256(files, args, "sha256:" + "0" * 64)
    assert ref == build_inputs_sha256(list(reversed(files)), args, "sha256:" + "0" * 64)
    changed = [
        build_inputs_sha256([files[0], ("testbed/bench/a.py", "3" * 64)], args,
                            "sha256:" + "0" * 64),
        build_inputs_sha256([*files, ("testbed/bench/b.py", "2" * 64)], args,
                            "sha256:" + "0" * 64),
        build_inputs_sha256([("Dockerfile", "1" * 64), ("testbed/bench/c.py", "2" * 64)], args,
                            "sha256:" + "0" * 64),
        build_inputs_sha256(files, {"BASE_IMAGE": "b:2"}, "sha256:" + "0" * 64),
        build_inputs_sha256(files, args, "sha256:" + "1" * 64),
    ]
    assert len({ref, *changed}) == 6
    assert re.fullmatch(r"accel-testbed/cpu:[0-9a-f]{16}", image_tag(SPECS["cpu"], ref))
    assert image_tag(SPECS["cpu"], ref).endswith(ref[:16])


def test_platform_tags_worked_by_hand():
    assert platform_tags("x86_64", "2.17") == [
        *(f"manylinux_2_{m}_x86_64" for m in range(17, 4, -1)),
        "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    tags = platform_tags("aarch64", "2.31")
    assert tags[0] == "manylinux_2_31_aarch64" and tags[-2] == "manylinux_2_17_aarch64"
    assert tags[-1] == "manylinux2014_aarch64" and len(tags) == 16


def test_lock_inputs_follow_pyproject_pins_and_base():
    cpu = lock_inputs(SPECS["cpu"])
    assert "torch==2.13.0" in cpu and not any(r.startswith("torch>=") for r in cpu)
    cuda = lock_inputs(SPECS["cuda"])
    assert not any(r.startswith(("torch", "numpy")) for r in cuda)
    assert any(r.startswith("jsonschema") for r in cuda)
    assert wheel_name_version("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl") == (
        "torch", "2.13.0+cpu")
    assert wheel_name_version("PyYAML-6.0.3-cp311-cp311-manylinux2014_x86_64.whl")[0] == "pyyaml"


def test_base_image_rules():
    with pytest.raises(UserError, match=r"--base IMAGE.*cambricon-base/pytorch"):
        base_reference(SPECS["mlu"], None)
    with pytest.raises(UserError, match="invoke build --vendor corex --base IMAGE"):
        base_reference(SPECS["corex"], None)
    with pytest.raises(UserError, match="refuses an unpinned public base"):
        base_reference(SPECS["jetson"], None)
    with pytest.raises(UserError, match=r"rocm/pytorch:rocm6\.2\.4.*docker inspect"):
        base_reference(SPECS["rocm"], None)
    assert base_reference(SPECS["ascend"], None) == (
        "quay.io/ascend/torch-npu:2.7.1.post4-910b-ubuntu22.04-py3.11@sha256:"
        "eb6a005bcd54de586ea78780ce5406eb92663d1a0ce8c27ca4085855c27b31b3")
    with pytest.raises(UserError, match="not pinned by digest"):
        base_reference(SPECS["cuda"], "nvcr.io/nvidia/pytorch:24.02-py3")
    unpinned = VendorSpec(copy.deepcopy(SPECS["cuda"].data), SPECS["cuda"].directory)
    unpinned.data["base"]["digest"] = None
    with pytest.raises(UserError, match=r"docker inspect --format '\{\{index .RepoDigests 0\}\}'"):
        base_reference(unpinned, None)
    assert base_reference(SPECS["cuda"], None) == (
        "nvcr.io/nvidia/pytorch:24.02-py3@" + SPECS["cuda"].base["digest"])
    assert base_reference(SPECS["mlu"], "vendor/img:1") == "vendor/img:1"
    assert base_reference(SPECS["cpu"], None) is None  # made locally from the recipe


def test_unknown_vendor_and_bad_spec(tmp_path):
    with pytest.raises(UserError, match="Unknown vendor 'tpu'"):
        load_spec("tpu")
    (tmp_path / "images" / "cpu").mkdir(parents=True)
    (tmp_path / "images" / "cpu" / "vendor.yaml").write_text(
        (REPO_DIR / "images" / "cpu" / "vendor.yaml").read_text().replace("uid: 10001",
                                                                          "uid: -1"))
    (tmp_path / "images" / "cpu" / "Dockerfile").write_text("FROM x\n")
    with pytest.raises(UserError, match=r"\$\.user\.uid"):
        load_spec("cpu", tmp_path)
    # read as every user YAML is (bench.schema.read_yaml_file): limits, the file named
    spec = tmp_path / "images" / "cpu" / "vendor.yaml"
    spec.write_text("vendor: " + "[" * 100 + "]" * 100 + "\n")
    with pytest.raises(UserError, match=re.escape(f"Vendor spec {spec} nests deeper than")):
        load_spec("cpu", tmp_path)
    spec.unlink()
    with pytest.raises(UserError, match=r"Restore images/cpu/vendor\.yaml"):
        load_spec("cpu", tmp_path)


@pytest.mark.parametrize("vendor", VENDORS)
def test_lock_covers_pyproject_dependencies(vendor):
    """A dependency added to pyproject.toml without `invoke lock` fails here, not in an image."""
    from packaging.requirements import Requirement

    spec = SPECS[vendor]
    pins = locked(spec.lock_path)
    for text in lock_inputs(spec):
        req = Requirement(text)
        name = canonical(req.name)
        assert name in pins, f"{spec.lock_path}: no {name}; run `invoke lock --vendor {vendor}`"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"{spec.lock_path}: {name}=={pins[name]} does not satisfy {text}"
