"""The two task bodies, ``invoke build`` and ``invoke bench`` in a container, as thin shells
over spec/build/containers (the tasks in tasks.py only translate errors to exit codes)."""

from __future__ import annotations

import os
from pathlib import Path

from bench.distributed import parse_devices
from bench.errors import EXIT_USAGE, UserError
from testbed.images.build import base_reference, build_image
from testbed.images.containers import (
    bench_command,
    find_bench_image,
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
                       label: str | None = None) -> tuple[Path, int]:
    """Run the suite in the vendor's image; returns (run directory, exit code)."""
    from bench.config import load_suite
    from bench.runner import new_run_id

    if vendor == "auto":
        raise UserError("Container runs need --vendor (the image to use).",
                        f"Give one of {', '.join(VENDORS)}, or run natively with --native.")
    if vendor not in VENDORS:
        raise unknown_vendor(vendor)
    spec = load_spec(vendor, root)
    selected = parse_devices(devices)
    # The image holds this checkout's bench (find_bench_image checks it), so the suite,
    # --only and --set are checked here first: bad input never starts a container.
    load_suite(suite, overrides=overrides, only=[t.strip() for t in only.split(",")
                                                 if t.strip()] if only else None)
    client = connect()
    img = find_bench_image(client, spec, image, root)
    tag = image or (img.tags[0] if img.tags else img.id)
    digest = image_digest(img)
    run_id = new_run_id(vendor, Path(suite).stem)
    out_dir = Path(out) if out else results_root / run_id
    if label is not None:
        from bench.provenance import check_label

        check_label(label)
    command, suite_mount = bench_command(spec, suite, run_id, only, overrides, label)
    revision = img.labels.get("org.opencontainers.image.revision", "unknown")
    options = run_options(spec, tag, digest, revision, command, out_dir, selected,
                          [suite_mount] if suite_mount else [], os.getuid(), os.getgid(),
                          name=f"accel-testbed-{run_id}")
    _prepare_results_dir(out_dir, options.user)
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


def _prepare_results_dir(out_dir: Path, user: str | None) -> None:
    """The results directory is new (or empty), exists and the container's user can write it."""
    from bench.runner import refuse_used_out_dir

    refuse_used_out_dir(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if user and os.getuid() == 0:
            uid, gid = (int(x) for x in user.split(":"))
            os.chown(out_dir, uid, gid)
    except OSError as exc:
        raise UserError(f"Cannot prepare the results directory {out_dir}: "
                        f"{exc.strerror or exc}.", "Choose another with --out DIR.") from exc
