"""The two task bodies, ``invoke build`` and ``invoke bench`` in a container, as thin shells
over spec/build/containers (the tasks in tasks.py only translate errors to exit codes)."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.config import DeviceSettings
from bench.errors import EXIT_USAGE, UserError
from testbed.images.build import base_reference, build_image
from testbed.images.containers import (
    bench_command,
    find_bench_image,
    parse_devices,
    reject_invalid,
    run_options,
    shell_line,
    stream_container,
    write_stream,
)
from testbed.images.engine import connect, image_digest
from testbed.images.spec import REPO_DIR, VENDORS, load_spec, unknown_vendor


def build_vendor(vendor: str, base: str | None = None, root: Path = REPO_DIR) -> None:
    spec = load_spec(vendor, root)
    base_reference(spec, base)  # a missing or unpinned base is refused before anything else
    client = connect()
    result = build_image(client, spec, base, root)
    state = "cached (inputs unchanged)" if result.cached else "built"
    print(f"image:  {result.tag}  ({state} in {result.seconds:.1f} s, "
          f"{result.size_bytes / 1e6:.0f} MB)")
    print(f"digest: {result.digest}")


def bench_in_container(vendor: str, suite: str, out: str | None, only: str | None,
                       overrides: list[str], devices: str | None, image: str | None,
                       results_root: Path, root: Path = REPO_DIR,
                       label: str | None = None,
                       memory: str | None = None, device: DeviceSettings | None = None
                       ) -> tuple[Path, int]:
    """Run the suite in the vendor's image; returns (run directory, exit code). ``memory``
    limits the container's memory (docker's format, e.g. 32g) in place of the spec's."""
    from bench.config import load_suite
    from bench.runner import new_run_id

    if vendor == "auto":
        raise UserError("Container runs need --vendor (the image to use).",
                        f"Give one of {', '.join(VENDORS)}, or run natively with --native.")
    if vendor not in VENDORS:
        raise unknown_vendor(vendor)
    spec = load_spec(vendor, root)
    selected = parse_devices(devices)
    if memory is not None and not re.fullmatch(r"[0-9]+[kmg]", memory):
        raise UserError(f"--memory {memory!r} is not a size.",
                        "Give a number with k, m or g, e.g. --memory 32g.")
    # The image holds this checkout's bench (find_bench_image checks it), so the suite,
    # --only and --set are checked here first: bad input never starts a container.
    load_suite(suite, overrides=overrides, only=[t.strip() for t in only.split(",")
                                                 if t.strip()] if only else None,
               device=device)
    client = connect()
    img = find_bench_image(client, spec, image, root)
    tag = image or (img.tags[0] if img.tags else img.id)
    digest = image_digest(img)
    run_id = new_run_id(vendor, Path(suite).stem)
    out_dir = Path(out) if out else results_root / run_id
    if label is not None:
        from bench.ids import check_label

        check_label(label)
    command, suite_mount = bench_command(spec, suite, run_id, only, overrides, label, device)
    revision = img.labels.get("org.opencontainers.image.revision", "unknown")
    options = run_options(spec, tag, digest, revision, command, out_dir, selected,
                          [suite_mount] if suite_mount else [], os.getuid(), os.getgid(),
                          name=f"accel-testbed-{run_id}", memory=memory,
                          runtimes=engine_runtimes(client))
    _prepare_results_dir(out_dir, options.user, [int(g) for g in options.group_add])
    print(f"image {tag} ({digest})")
    print("running: " + shell_line(options.docker_cli()), flush=True)
    outcome = stream_container(client, options, write_stream)
    rejected = reject_invalid(out_dir, tag, digest)
    if rejected:
        raise UserError(
            f"{len(rejected)} result(s) from the container failed validation on the host and "
            "were not accepted:\n  " + "\n  ".join(rejected) + "\n",
            "Nothing else was changed; rerun those workloads (the problems above say why).")
    print(f"validated: every result in {out_dir} matches schemas/result.schema.json and names "
          f"image {digest}")
    if outcome.interrupted:
        print(f"interrupted: the finished results are in {out_dir}")
        return out_dir, 130
    code = outcome.exit_code or 0
    if code == EXIT_USAGE:
        raise UserError("The bench in the container refused the run (message above).",
                        "Fix the suite, --only or --set arguments named there.")
    return out_dir, code


def engine_runtimes(client: Any) -> frozenset[str]:
    """The engine's container runtimes (``runc``, ``nvidia``, ``ascend``...)."""
    from docker.errors import DockerException

    try:
        return frozenset(client.info().get("Runtimes") or {})
    except DockerException:  # no answer: only the default runtime is assumed
        return frozenset()


def _prepare_results_dir(out_dir: Path, user: str | None, groups: Iterable[int] = ()) -> None:
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
