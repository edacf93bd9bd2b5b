"""The container launcher: ``python -m bench run`` in the vendor's image (``invoke bench
--vendor V``), through the local Docker engine, with the passthrough its spec derives.

The image must hold this checkout's bench (``find_bench_image`` checks the build inputs'
hash), so the request is checked here first: a bad suite, ``--only``, ``--set`` or label
never starts a container. Results are written to the run directory mounted at /results and
accepted on the host by the launchers' one policy (``base.accept_results``), which also
sets aside a result that names another image.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import EXIT_USAGE, UserError
from bench.paths import REPO_DIR
from testbed.launch.base import Launcher, Plan, Ran, RunRequest


@dataclass
class ContainerPlan:
    """The image a container run uses and how it is started."""

    client: Any  # docker.DockerClient
    tag: str
    digest: str
    options: Any  # testbed.images.containers.RunOptions


class ContainerLauncher(Launcher):
    name = "container"
    needs_vendor = ("Container runs need --vendor (the image to use).",
                    "Give one of {}, or run natively with --native.")

    def __init__(self, results_root: Path, root: Path = REPO_DIR,
                 memory: str | None = None) -> None:
        """``memory`` limits the container's memory (docker's format, e.g. 32g)."""
        super().__init__(results_root)
        self.root = root
        self.memory = memory

    def check_own(self, request: RunRequest, vendor: str) -> None:
        from testbed.images.spec import load_spec

        load_spec(vendor, self.root)
        if self.memory is not None and not re.fullmatch(r"[0-9]+[kmg]", self.memory):
            raise UserError(f"--memory {self.memory!r} is not a size.",
                            "Give a number with k, m or g, e.g. --memory 32g.")

    def prepare(self, plan: Plan) -> ContainerPlan:
        from testbed.images.containers import (
            RESULTS_MOUNT,
            find_bench_image,
            run_options,
            suite_mount,
        )
        from testbed.images.engine import connect, engine_runtimes, image_digest
        from testbed.images.spec import load_spec

        request = plan.request
        spec = load_spec(plan.vendor, self.root)
        suite_arg, mount = suite_mount(request.suite)
        client = connect()
        img = find_bench_image(client, spec, request.image, self.root)
        tag = request.image or (img.tags[0] if img.tags else img.id)
        digest = image_digest(img)
        command = request.bench_args(spec.data["bench_device"], plan.run_id, suite=suite_arg,
                                     extra=("--out", RESULTS_MOUNT))
        revision = img.labels.get("org.opencontainers.image.revision", "unknown")
        options = run_options(spec, tag, digest, revision, command, plan.out_dir,
                              list(request.devices) if request.devices is not None else None,
                              [mount] if mount else [], os.getuid(), os.getgid(),
                              name=f"accel-testbed-{plan.run_id}", memory=self.memory,
                              runtimes=engine_runtimes(client))
        return ContainerPlan(client, tag, digest, options)

    def execute(self, plan: Plan) -> Ran:
        from testbed.images.containers import shell_line, stream_container, write_stream

        own: ContainerPlan = plan.own
        options = own.options
        prepare_results_dir(plan.out_dir, options.user, [int(g) for g in options.group_add])
        if plan.request.name:
            print(f"run ({plan.request.name}) in {own.tag}", flush=True)
        print(f"image {own.tag} ({own.digest})")
        print("running: " + shell_line(options.docker_cli()), flush=True)
        outcome = stream_container(own.client, options, write_stream)
        details = {"image": own.tag, "digest": own.digest}
        if outcome.interrupted:
            print(f"interrupted: the finished results are in {plan.out_dir}")
            return Ran(130, interrupted=True, details=details)
        code = outcome.exit_code or 0
        if code == EXIT_USAGE:
            return Ran(code, error="the bench in the container refused the run (message "
                                   "above): fix the suite, --only or --set arguments named "
                                   "there", details=details)
        return Ran(code, error=None if code == 0 else
                   f"the bench in the container exited with code {code}", details=details)

    def expected_image(self, plan: Plan) -> tuple[str, str]:
        return plan.own.tag, plan.own.digest


def prepare_results_dir(out_dir: Path, user: str | None, groups: Iterable[int] = ()) -> None:
    """The results directory is new (or empty), exists and the container's user can write it.

    As root, a directory made here is given to the container's user; one that already existed
    (a home directory, say) is never chowned: if the container's user cannot write it, the
    run is refused before it starts."""
    from bench.rundir import refuse_used_out_dir

    refuse_used_out_dir(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            out_dir.mkdir()
            created = True
        except FileExistsError:
            created = False
        if user and os.getuid() == 0:
            uid, gid = (int(x) for x in user.split(":"))
            if created:
                os.chown(out_dir, uid, gid)
            elif not writable_by(out_dir, uid, {gid, *groups}):
                raise UserError(
                    f"The results directory {out_dir} exists and the container's user "
                    f"{uid}:{gid} cannot write it (it is not changed: only a directory this "
                    "command creates is given to that user).",
                    "Leave out --out, or name a directory that does not exist yet.")
    except OSError as exc:
        raise UserError(f"Cannot prepare the results directory {out_dir}: "
                        f"{exc.strerror or exc}.", "Choose another with --out DIR.") from exc


def writable_by(path: Path, uid: int, gids: set[int]) -> bool:
    """Whether ``uid`` (in groups ``gids``) may create files in the directory ``path``, by its
    owner, group and mode bits."""
    info = path.stat()
    if uid == 0:
        return True
    if info.st_uid == uid:
        bits = stat.S_IWUSR | stat.S_IXUSR
    elif info.st_gid in gids:
        bits = stat.S_IWGRP | stat.S_IXGRP
    else:
        bits = stat.S_IWOTH | stat.S_IXOTH
    return info.st_mode & bits == bits
