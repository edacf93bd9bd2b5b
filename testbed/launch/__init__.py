"""Starting runs: one ``RunRequest``, one launcher chosen for it (``launcher_for``), one
template and acceptance policy for all of them (``base.Launcher``).

``invoke bench`` (its flags parsed by ``cli``) and the audit's re-runs both choose their
launcher here, so a run is started the same way whoever asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from testbed.launch.base import Launcher, RunRequest
    from testbed.launch.slurm import SlurmOptions


@dataclass(frozen=True)
class LaunchOptions:
    """What a launcher needs beyond the request: the container's memory limit (docker's
    format, e.g. 32g), the scheduler's options of a Slurm run and how often it is polled."""

    memory: str | None = None
    slurm: SlurmOptions | None = None
    poll_s: float = 2.0


def launcher_for(request: RunRequest, options: LaunchOptions | None = None,
                 results_root: Path | None = None) -> Launcher:
    """The launcher of ``request.launcher`` (native, container or slurm) with its options;
    ``results_root``: where a run without ``out`` gets its directory (default results/).
    An option the chosen launcher cannot use is a ``UserError``."""
    from bench.errors import UserError
    from bench.paths import REPO_DIR

    options = options or LaunchOptions()
    root = results_root or REPO_DIR / "results"
    if options.memory is not None and request.launcher != "container":
        raise UserError("--memory limits a container's memory; this run starts none.",
                        "Drop --memory, or run in the vendor's image (without --native and "
                        "--slurm).")
    if request.launcher == "native":
        from testbed.launch.native import NativeLauncher

        return NativeLauncher(root)
    if request.launcher == "slurm":
        from testbed.launch.slurm import SlurmLauncher, SlurmOptions

        return SlurmLauncher(root, options.slurm or SlurmOptions(), options.poll_s)
    from testbed.launch.container import ContainerLauncher

    return ContainerLauncher(root, memory=options.memory)
