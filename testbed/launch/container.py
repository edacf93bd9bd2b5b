"""The container launcher: ``python -m bench run`` in the vendor's image (``invoke bench
--vendor V``), through the local Docker engine, with the passthrough its spec derives.

The image must hold this checkout's bench (``find_bench_image`` checks the build inputs'
hash), so the request is checked here first: a bad suite, ``--only``, ``--set`` or label
never starts a container. Results are written to the run directory mounted at /results and
validated again on the host; a result that fails, or names another image, is set aside.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.errors import EXIT_USAGE, UserError
from bench.paths import REPO_DIR
from testbed.launch.base import Launcher, RunOutcome, RunRequest


class ContainerLauncher(Launcher):
    name = "container"

    def __init__(self, results_root: Path, root: Path = REPO_DIR) -> None:
        super().__init__(results_root)
        self.root = root

    def launch(self, request: RunRequest) -> RunOutcome:
        from bench.config import load_suite
        from bench.provenance import check_label
        from bench.runner import prepare_out_dir
        from testbed.images.containers import (
            RESULTS_MOUNT,
            find_bench_image,
            reject_invalid,
            run_options,
            shell_line,
            stream_container,
            suite_mount,
            write_stream,
        )
        from testbed.images.engine import connect, engine_runtimes, image_digest
        from testbed.images.spec import VENDORS, load_spec, unknown_vendor

        vendor = request.vendor
        if vendor == "auto":
            raise UserError("Container runs need --vendor (the image to use).",
                            f"Give one of {', '.join(VENDORS)}, or run natively with --native.")
        if vendor not in VENDORS:
            raise unknown_vendor(vendor)
        spec = load_spec(vendor, self.root)
        load_suite(request.suite, overrides=list(request.overrides),
                   only=list(request.only) or None, device=request.device)
        if request.label is not None:
            check_label(request.label)
        suite_arg, mount = suite_mount(request.suite)
        client = connect()
        img = find_bench_image(client, spec, request.image, self.root)
        tag = request.image or (img.tags[0] if img.tags else img.id)
        digest = image_digest(img)
        run_id, out_dir = self.run_dir(request, vendor)
        command = request.bench_args(spec.data["bench_device"], run_id, suite=suite_arg,
                                     extra=("--out", RESULTS_MOUNT))
        revision = img.labels.get("org.opencontainers.image.revision", "unknown")
        options = run_options(spec, tag, digest, revision, command, out_dir,
                              list(request.devices) if request.devices is not None else None,
                              [mount] if mount else [], os.getuid(), os.getgid(),
                              name=f"accel-testbed-{run_id}", runtimes=engine_runtimes(client))
        owner = options.user if options.user and os.getuid() == 0 else None
        prepare_out_dir(out_dir, owner=owner)
        if request.name:
            print(f"run ({request.name}) in {tag}", flush=True)
        print(f"image {tag} ({digest})")
        print("running: " + shell_line(options.docker_cli()), flush=True)
        outcome = stream_container(client, options, write_stream)
        rejected = reject_invalid(out_dir, tag, digest)
        if rejected:
            raise UserError(
                f"{len(rejected)} result(s) from the container failed validation on the host "
                "and were not accepted:\n  " + "\n  ".join(rejected) + "\n",
                "Nothing else was changed; rerun those workloads (the problems above say why).")
        print(f"validated: every result in {out_dir} matches schemas/result.schema.json and "
              f"names image {digest}")
        if outcome.interrupted:
            print(f"interrupted: the finished results are in {out_dir}")
            return RunOutcome(out_dir, 130, interrupted=True)
        code = outcome.exit_code or 0
        if code == EXIT_USAGE:
            raise UserError("The bench in the container refused the run (message above).",
                            "Fix the suite, --only or --set arguments named there.")
        return RunOutcome(out_dir, code, error=None if code == 0 else
                          f"the bench in the container exited with code {code}",
                          details={"image": tag, "digest": digest})
