"""``invoke bench --vendor V``: run ``python -m bench run`` in the vendor's image.

``run_options`` turns a vendor spec (its passthrough, environment, mounts, user) and the
devices asked for into one ``RunOptions``; that object gives both the Docker SDK arguments the
run uses and the equivalent ``docker run`` command line (printed, documented, unit-tested for
every vendor). ``find_bench_image`` finds the image built from the current sources,
``stream_container`` streams the container's progress and stops it on Ctrl-C (SIGTERM, which
the bench treats as Ctrl-C and keeps what finished). The container launcher
(``testbed/launch/container.py``) puts them together; its results are accepted on the host by
the launchers' one policy (``testbed.launch.base.accept_results``).

Least privilege (docs/security.md): no network, all capabilities dropped, no new privileges,
a non-root user that joins only the groups of the device nodes it is given, a read-only root
file system with a tmpfs for scratch, a pids limit and an optional memory limit. The vendor
schema makes every widening of that carry a ``reason``.
"""

from __future__ import annotations

import contextlib
import glob
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import UserError
from testbed.images.build import (
    BASE_ARG,
    INPUTS_LABEL,
    LABEL_PREFIX,
    build_inputs_sha256,
    context_files,
)
from testbed.images.engine import find_image
from testbed.images.kfd import TOPOLOGY, render_minors
from testbed.images.lock import sha256_file
from testbed.images.spec import REPO_DIR, VendorSpec

RESULTS_MOUNT = "/results"
SUITE_MOUNT = "/suites"
DEFAULT_TMPFS = {"/tmp": "16g"}
DEFAULT_PIDS_LIMIT = 4096
STOP_GRACE_S = 30
Log = Callable[[str], None]


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool

    def cli(self) -> str:
        return f"{self.source}:{self.target}" + (":ro" if self.read_only else "")


@dataclass
class RunOptions:
    """One container run: what the Docker SDK is given, and the same as a command line."""

    image: str
    command: list[str]
    user: str | None = None
    gpus: list[str] | None = None  # None: no --gpus; ["all"] or device indices
    runtime: str | None = None
    devices: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    shm_size: str | None = None
    ipc_mode: str | None = None
    network_mode: str | None = None
    cap_drop: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    privileged: bool = False
    name: str | None = None
    group_add: list[str] = field(default_factory=list)  # numeric gids (device nodes, groups_of)
    read_only: bool = True
    tmpfs: dict[str, str] = field(default_factory=dict)  # path -> mount options
    pids_limit: int | None = None
    memory: str | None = None  # docker's format, e.g. 32g; swap is not allowed on top

    def docker_kwargs(self) -> dict[str, Any]:
        """Arguments for ``client.containers.create``."""
        from docker.types import DeviceRequest

        kwargs: dict[str, Any] = {
            "image": self.image, "command": self.command, "name": self.name,
            "environment": dict(self.environment),
            "volumes": {m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
                        for m in self.mounts},
            "devices": [f"{d}:{d}:rwm" for d in self.devices],
            "cap_drop": self.cap_drop or None, "cap_add": self.cap_add or None,
            "security_opt": self.security_opt or None, "privileged": self.privileged,
            "group_add": self.group_add or None, "read_only": self.read_only,
            "tmpfs": dict(self.tmpfs) or None, "detach": True,
        }
        optional = {"user": self.user, "runtime": self.runtime, "shm_size": self.shm_size,
                    "ipc_mode": self.ipc_mode, "network_mode": self.network_mode,
                    "pids_limit": self.pids_limit, "mem_limit": self.memory,
                    "memswap_limit": self.memory}
        kwargs.update({k: v for k, v in optional.items() if v is not None})
        if self.gpus is not None:
            all_gpus = self.gpus == ["all"]
            kwargs["device_requests"] = [DeviceRequest(
                count=-1 if all_gpus else None, device_ids=None if all_gpus else self.gpus,
                capabilities=[["gpu"]])]
        return kwargs

    def docker_cli(self) -> list[str]:
        """The same run as ``docker run`` arguments (for humans and the docs)."""
        argv = ["docker", "run", "--rm"]
        if self.name:
            argv += ["--name", self.name]
        return [*argv, *self.cli_options(), self.image, *self.command]

    def cli_options(self) -> list[str]:
        """The options of ``docker run`` between its name and the image (the Slurm node
        script starts the container with these)."""
        argv: list[str] = []
        if self.user:
            argv += ["--user", self.user]
        if self.gpus is not None:
            argv += ["--gpus", "all" if self.gpus == ["all"]
                     else f'"device={",".join(self.gpus)}"']
        if self.runtime:
            argv += ["--runtime", self.runtime]
        for dev in self.devices:
            argv += ["--device", dev]
        for key, value in self.environment.items():
            argv += ["-e", f"{key}={value}"]
        for mount in self.mounts:
            argv += ["-v", mount.cli()]
        for flag, value in (("--shm-size", self.shm_size), ("--ipc", self.ipc_mode),
                            ("--network", self.network_mode)):
            if value:
                argv += [flag, value]
        argv += [a for cap in self.cap_drop for a in ("--cap-drop", cap)]
        argv += [a for cap in self.cap_add for a in ("--cap-add", cap)]
        argv += [a for opt in self.security_opt for a in ("--security-opt", opt)]
        argv += [a for gid in self.group_add for a in ("--group-add", gid)]
        if self.privileged:
            argv.append("--privileged")
        if self.read_only:
            argv.append("--read-only")
        for path, opts in self.tmpfs.items():
            argv += ["--tmpfs", f"{path}:{opts}"]
        if self.pids_limit is not None:
            argv += ["--pids-limit", str(self.pids_limit)]
        if self.memory:
            argv += ["--memory", self.memory, "--memory-swap", self.memory]
        return argv


def _on_host(host_root: Path, path: str) -> Path:
    return host_root / path.lstrip("/")


def host_device_indices(pattern: str, glob_pattern: str, host_root: Path) -> list[int]:
    """Indices of the host's device nodes (``/dev/cambricon_dev*`` -> [0, 1, ...])."""
    regex = re.compile(re.escape(pattern).replace(re.escape("{index}"), r"(\d+)") + "$")
    found = []
    for node in glob.glob(str(_on_host(host_root, glob_pattern))):
        match = regex.match("/" + Path(node).relative_to(host_root).as_posix())
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


def device_groups(nodes: list[str], host_root: Path = Path("/")) -> list[str]:
    """The host groups owning ``nodes`` (numeric, as ``--group-add`` takes them): a non-root
    user in the container can then open exactly those nodes (the device nodes it is given, and
    the host paths a spec names in ``user.groups_of``: a jtop socket, nodes the vendor's
    runtime maps). Group 0 is never added: joining root's group would widen far more than
    one device."""
    gids = set()
    for node in nodes:
        with contextlib.suppress(OSError):
            gids.add(_on_host(host_root, node).stat().st_gid)
    return [str(g) for g in sorted(gids - {0})]


def _selected(spec: VendorSpec, devices: list[int] | None, host_root: Path
              ) -> tuple[list[int], list[str]]:
    """(indices, per-device nodes) for ``device_nodes`` and ``kfd_render_nodes`` specs."""
    run, vendor = spec.run, spec.vendor
    if run["select_by"] == "kfd_render_nodes":
        minors = render_minors(host_root)
        if not minors:
            raise UserError(f"The host's KFD topology (/{TOPOLOGY}) lists no GPU, so no "
                            f"{vendor} device to pass to the container.",
                            "Check the amdgpu (or Hygon hydcu) driver is loaded (`ls /dev/kfd "
                            "/dev/dri`), or run `invoke bench --native` on the device's host.")
        indices = list(range(len(minors))) if devices is None else devices
        absent = [i for i in indices if i >= len(minors)]
        if absent:
            raise UserError(f"The host has {len(minors)} {vendor} GPU(s) (0-{len(minors) - 1}); "
                            f"--devices names {', '.join(map(str, absent))}.",
                            "Check --devices against `rocm-smi` (or `hy-smi`).")
        return indices, [f"/dev/dri/renderD{minors[i]}" for i in indices]
    pattern = run["per_device"][0]
    indices = devices
    if indices is None:
        indices = host_device_indices(pattern, run["device_glob"], host_root)
        if not indices:
            raise UserError(f"No {run['device_glob']} on this host, so no {vendor} device "
                            "to pass to the container.",
                            "Check the vendor driver is loaded (`ls /dev`), or run "
                            "`invoke bench --native` on the device's host.")
    nodes = []
    for index in indices:
        nodes += [p.format(index=index) for p in run["per_device"]]
        nodes += [p.format(index=index) for p in run.get("optional_per_device", [])
                  if _on_host(host_root, p.format(index=index)).exists()]
    return indices, nodes


def passthrough(spec: VendorSpec, devices: list[int] | None,
                host_root: Path = Path("/"), runtimes: frozenset[str] = frozenset()
                ) -> dict[str, Any]:
    """The device part of the run (gpus/runtime/devices/environment/mounts) from the spec.

    ``host_root`` is where the host's /dev and mounts are looked up (tests point it at a
    directory laid out like a vendor's host); ``runtimes`` are the engine's container
    runtimes (a spec's ``vendor_runtime`` is used when the engine has it)."""
    run, vendor = spec.run, spec.vendor
    out: dict[str, Any] = {"gpus": None, "runtime": run.get("runtime"), "devices": [],
                           "environment": dict(run.get("env", {})), "mounts": [],
                           "group_add": []}
    select = run["select_by"]
    if select == "none" and devices is not None:
        raise UserError(f"The {vendor} image has no devices to select (--devices "
                        f"{','.join(map(str, devices))}).", "Drop --devices.")
    if select == "single" and devices not in (None, [0]):
        raise UserError(f"A {vendor} board has one integrated GPU, index 0; --devices "
                        f"{','.join(map(str, devices or []))} names others.",
                        "Drop --devices (or give --devices 0).")
    if select == "gpus":
        out["gpus"] = ["all"] if devices is None else [str(d) for d in devices]
    vendor_runtime = run.get("vendor_runtime")
    if select in ("device_nodes", "kfd_render_nodes"):
        indices, per_device = _selected(spec, devices, host_root)
        nodes = list(run.get("devices", []))
        nodes += [n for n in run.get("optional_devices", []) if _on_host(host_root, n).exists()]
        nodes += per_device
        missing = [n for n in nodes if not _on_host(host_root, n).exists()]
        if missing:
            raise UserError(f"The host has no {', '.join(missing)} for the {vendor} run.",
                            "Check --devices against `ls /dev` and that the vendor driver "
                            "is loaded.")
        out["group_add"] = device_groups(nodes, host_root)  # used when the user is not root
        if run.get("visible_devices_env"):
            # The container holds only the selected nodes, so in-process indices start at 0.
            out["environment"][run["visible_devices_env"]] = ",".join(
                str(i) for i in range(len(indices)))
        if vendor_runtime and vendor_runtime["name"] in runtimes:
            # The vendor's runtime mounts the selected devices and its driver files itself.
            out["runtime"] = vendor_runtime["name"]
            out["environment"][vendor_runtime["visible_devices_env"]] = ",".join(
                map(str, indices))
            return out
        out["devices"] = nodes
    for mount in run.get("mounts", []):
        if _on_host(host_root, mount["source"]).exists():
            out["mounts"].append(Mount(mount["source"], mount["target"], mount["read_only"]))
        elif not mount["optional"]:
            raise UserError(f"The {vendor} run needs {mount['source']} on the host, and it is "
                            "not there.", f"Install the vendor's host tools, or fix "
                            f"images/{vendor}/vendor.yaml run.mounts.")
    return out


def tmpfs_options(run: dict[str, Any]) -> dict[str, str]:
    """Scratch space on a read-only root: ``run.tmpfs`` (path -> size), writable by any user,
    no devices or set-uid programs on it."""
    return {path: f"rw,nosuid,nodev,size={size},mode=1777"
            for path, size in run.get("tmpfs", DEFAULT_TMPFS).items()}


def container_user(spec: VendorSpec, host_uid: int, host_gid: int) -> str | None:
    """Who the container runs as: the host's uid:gid (so results are the user's own files),
    the image's non-root user when the host user is root, or root where the spec says why."""
    if spec.user["uid"] == 0:
        return None
    if host_uid != 0:
        return f"{host_uid}:{host_gid}"
    return f"{spec.user['uid']}:{spec.user['uid']}"


def suite_mount(suite: str) -> tuple[str, Mount | None]:
    """The ``--suite`` argument in the container: a name as it is, a suite file mounted
    read-only under /suites (and named by its path there)."""
    path = Path(suite)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise UserError(f"Suite file {suite} does not exist.",
                            "Give a suite name (`invoke list`) or an existing file.")
        mount = Mount(str(path.resolve()), f"{SUITE_MOUNT}/{path.name}", True)
        return mount.target, mount
    return suite, None


def run_options(spec: VendorSpec, image: str, digest: str, revision: str, command: list[str],
                out_dir: Path, devices: list[int] | None, extra_mounts: list[Mount],
                host_uid: int, host_gid: int, name: str | None = None,
                host_root: Path = Path("/"), memory: str | None = None,
                runtimes: frozenset[str] = frozenset()) -> RunOptions:
    """Everything ``docker run`` gets, derived from the spec (and ``memory``, a limit given
    on the command line in place of the spec's) and nothing else."""
    from bench.provenance import GIT_COMMIT_ENV, IMAGE_DIGEST_ENV, IMAGE_ENV

    run = spec.run
    dev = passthrough(spec, devices, host_root, runtimes)
    env = {**dev["environment"], IMAGE_ENV: image, IMAGE_DIGEST_ENV: digest,
           GIT_COMMIT_ENV: revision, "HOME": "/tmp"}
    user = container_user(spec, host_uid, host_gid)
    return RunOptions(
        image=image, command=command, name=name, user=user,
        group_add=sorted({*dev["group_add"],
                          *device_groups(spec.user.get("groups_of", []), host_root)}, key=int)
        if user else [],
        read_only=bool(run.get("read_only_root", True)), tmpfs=tmpfs_options(run),
        pids_limit=run.get("pids_limit", DEFAULT_PIDS_LIMIT),
        memory=memory or run.get("memory"),
        gpus=dev["gpus"], runtime=dev["runtime"], devices=dev["devices"], environment=env,
        mounts=[Mount(str(out_dir.resolve()), RESULTS_MOUNT, False), *extra_mounts,
                *dev["mounts"]],
        shm_size=run.get("shm_size"), ipc_mode=run.get("ipc"),
        network_mode=run.get("network"), cap_drop=list(run.get("cap_drop", [])),
        cap_add=list(run.get("cap_add", [])), security_opt=list(run.get("security_opt", [])),
        privileged=bool(run.get("privileged", False)))


def find_bench_image(client: Any, spec: VendorSpec, image: str | None = None,
                     root: Path = REPO_DIR) -> Any:
    """The image to run: the one named, or the newest built from the current sources.

    An image matches when the hash of today's build inputs, with the base it records in its
    labels, equals the hash it was tagged with: so the bench in the container is this
    checkout's bench, never a stale one."""
    build_cmd = f"invoke build --vendor {spec.vendor}"
    if image:
        found = find_image(client, image)
        if found is None:
            raise UserError(f"No image {image} in the local Docker engine.",
                            f"Build it (`{build_cmd}`) or load it (`docker load -i FILE`).")
        return found
    candidates = client.images.list(filters={"label": f"{LABEL_PREFIX}.vendor={spec.vendor}"})
    files = [(n, sha256_file(p)) for n, p in context_files(spec, root)]
    matching = []
    for candidate in candidates:
        labels = candidate.labels
        base = labels.get("org.opencontainers.image.base.name", "")
        expected = build_inputs_sha256(files, {BASE_ARG: base},
                                       labels.get("org.opencontainers.image.base.digest", ""))
        if labels.get(INPUTS_LABEL) == expected:
            matching.append(candidate)
    if not matching:
        stale = f" ({len(candidates)} older one(s) exist, built from other sources)" \
            if candidates else ""
        raise UserError(f"No {spec.vendor} image built from the current sources{stale}.",
                        f"Build it first: `{build_cmd}`.")
    return max(matching, key=lambda img: img.attrs.get("Created", ""))


@dataclass
class ContainerRun:
    exit_code: int | None
    interrupted: bool
    options: RunOptions


def stream_container(client: Any, options: RunOptions, log: Callable[[str], None]) -> ContainerRun:
    """Run the container, copy its output here line by line, stop it cleanly on Ctrl-C."""
    from docker.errors import APIError

    try:
        container = client.containers.create(**options.docker_kwargs())
    except APIError as exc:
        raise _cannot_start(exc) from exc
    interrupted = False
    try:
        try:
            container.start()
        except APIError as exc:
            raise _cannot_start(exc) from exc
        try:
            _follow_logs(container, log)
            status = container.wait()
        except KeyboardInterrupt:
            interrupted = True
            log(f"\ninterrupted: stopping {options.name or container.short_id} (SIGTERM; the "
                "bench keeps every finished result)\n")
            container.stop(timeout=STOP_GRACE_S)
            status = container.wait()
        return ContainerRun(status.get("StatusCode"), interrupted, options)
    finally:
        container.remove(force=True)


def _follow_logs(container: Any, log: Callable[[str], None]) -> None:
    """Copy the container's output here until it ends. The stream is read in a thread while
    this (main) thread waits in short steps: a Ctrl-C that the kernel hands to another thread
    of this process would not wake a main thread blocked in the socket read, and a container
    quiet for minutes (a long timed window) would then ignore it for minutes."""
    import threading

    done = threading.Event()
    failed: list[BaseException] = []

    def pump() -> None:
        try:
            for chunk in container.logs(stream=True, follow=True):
                log(chunk.decode("utf-8", "replace"))
        except Exception as exc:  # handed to the main thread below
            failed.append(exc)
        finally:
            done.set()

    threading.Thread(target=pump, name="container-logs", daemon=True).start()
    while not done.wait(0.2):
        pass
    if failed:
        raise failed[0]


def _cannot_start(exc: Exception) -> UserError:
    return UserError(f"The Docker engine could not start the container: "
                     f"{str(exc).splitlines()[0][:300]}.",
                     "Check the vendor's container runtime is installed on this host (the "
                     "NVIDIA container toolkit for --gpus and --runtime nvidia), and the "
                     "devices and mounts the spec names.")


def write_stream(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def shell_line(argv: list[str]) -> str:
    return " ".join(a if a.startswith('"device=') else shlex.quote(a) for a in argv)
