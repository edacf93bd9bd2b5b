"""One way to start a run, whoever runs it: this machine's Python, the vendor's image, a Slurm job.

Every caller that starts a run (``invoke bench``, the audit's re-runs) builds one
``RunRequest`` and hands it to a ``Launcher``; the launcher decides where ``python -m bench
run`` executes and returns a ``RunOutcome``. The command line of the bench itself is built in
one place (``RunRequest.bench_args``), so a run means the same thing on every launcher.

A new engine (Kubernetes: an indexed Job per entry, docs/cluster.md) is one more subclass:
it receives the same request and must leave the same run directory behind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bench.config import DeviceSettings


@dataclass(frozen=True)
class RunRequest:
    """What to run: the same for every launcher (the launcher's own settings are its own)."""

    suite: str
    vendor: str = "auto"
    out: Path | None = None
    only: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    label: str | None = None
    devices: tuple[int, ...] | None = None
    image: str | None = None
    run_id: str | None = None
    # host threads and CPU pinning of the run's processes (--threads, --cpus)
    device: DeviceSettings = field(default_factory=DeviceSettings)
    # a name for progress lines (the audit's re-runs: "as-submitted", "distinct-inputs")
    name: str = ""
    # a disturbed entry is an error, not a warning (--require-quiet)
    require_quiet: bool = False

    def suite_stem(self) -> str:
        return Path(self.suite).stem

    def bench_args(self, device: str, run_id: str, suite: str | None = None,
                   extra: tuple[str, ...] = ()) -> list[str]:
        """``python -m bench`` arguments of this run, but for where it writes (``--out``,
        which each launcher adds: a path here, ``/results`` in a container, the node's
        directory on a cluster). ``suite`` where the launcher moves the suite file."""
        args = ["run", "--suite", suite or self.suite, "--device", device, "--run-id", run_id]
        if self.only:
            args += ["--only", ",".join(self.only)]
        for item in self.overrides:
            args += ["--set", item]
        if self.label is not None:
            args += ["--label", self.label]
        if self.require_quiet:
            args.append("--require-quiet")
        return [*args, *self.device.cli_args(), *extra]

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "vendor": self.vendor,
                "out": str(self.out) if self.out else None, "only": list(self.only),
                "overrides": list(self.overrides), "label": self.label,
                "devices": list(self.devices) if self.devices is not None else None,
                "image": self.image, "run_id": self.run_id, "name": self.name,
                "device": self.device.as_dict(), "require_quiet": self.require_quiet}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRequest:
        return cls(suite=data["suite"], vendor=data.get("vendor", "auto"),
                   out=Path(data["out"]) if data.get("out") else None,
                   only=tuple(data.get("only") or ()),
                   overrides=tuple(data.get("overrides") or ()), label=data.get("label"),
                   devices=tuple(data["devices"]) if data.get("devices") is not None else None,
                   image=data.get("image"), run_id=data.get("run_id"),
                   name=data.get("name", ""),
                   device=DeviceSettings.from_dict(data.get("device")),
                   require_quiet=bool(data.get("require_quiet", False)))


@dataclass
class RunOutcome:
    """How a run ended: its directory, the exit code (0 ok, 1 a workload failed, 2 bad input,
    130 interrupted) and why, where the launcher knows more than the code says."""

    out_dir: Path
    exit_code: int
    interrupted: bool = False
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Launcher(ABC):
    """Starts one run; subclasses in this package: native, container, slurm."""

    name: ClassVar[str]

    def __init__(self, results_root: Path) -> None:
        self.results_root = results_root

    def run_dir(self, request: RunRequest, vendor: str) -> tuple[str, Path]:
        """The run id and directory: the request's, or results/<time>-<vendor>-<suite>-<hex>."""
        from bench.runner import new_run_id

        run_id = request.run_id or new_run_id(vendor, request.suite_stem())
        return run_id, request.out or self.results_root / run_id

    @abstractmethod
    def launch(self, request: RunRequest) -> RunOutcome:
        """Run the request to its end (bad input: ``UserError`` before anything starts)."""
