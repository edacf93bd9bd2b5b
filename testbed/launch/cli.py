"""``invoke bench``'s flags as a run: the ``RunRequest`` and the ``LaunchOptions`` that
``testbed.launch.launcher_for`` turns into a launcher. The task in tasks.py keeps the flags
(they are the command line, with their defaults and help); what they mean is read here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from testbed.launch import LaunchOptions
from testbed.launch.base import RunRequest


@dataclass(frozen=True)
class BenchFlags:
    """The flags of ``invoke bench`` that say what to run and where, as invoke parsed them
    (text, booleans or None); the rest (report, store, sign) are the task's own."""

    suite: str
    vendor: str
    native: bool
    slurm: bool
    out: str | None
    only: str | None
    set_: list[str] | None
    label: str | None
    devices: str | None
    threads: str | None
    interop_threads: str | None
    cpus: str | None
    image: str | None
    require_quiet: bool
    memory: str | None
    # --slurm only
    nodes: str | None
    devices_per_node: str | None
    partition: str | None
    account: str | None
    time: str | None
    container: str
    gres: str | None
    rdzv_port: str | None

    @classmethod
    def pick(cls, given: Mapping[str, Any]) -> BenchFlags:
        """These flags out of the task's arguments (``locals()`` of the task)."""
        return cls(**{f.name: given[f.name] for f in fields(cls)})

    def request(self) -> RunRequest:
        from bench.config import DeviceSettings
        from bench.distributed import parse_devices

        devices = parse_devices(self.devices)
        only = [t.strip() for t in self.only.split(",") if t.strip()] if self.only else []
        return RunRequest(
            suite=self.suite, vendor=self.vendor, out=Path(self.out) if self.out else None,
            only=tuple(only), overrides=tuple(self.set_ or ()), label=self.label,
            devices=tuple(devices) if devices is not None else None, image=self.image,
            device=DeviceSettings.from_cli(self.threads, self.interop_threads, self.cpus),
            require_quiet=bool(self.require_quiet),
            launcher="slurm" if self.slurm else "native" if self.native else "container")

    def options(self) -> LaunchOptions:
        slurm = None
        if self.slurm:
            from testbed.launch.slurm import SlurmOptions

            slurm = SlurmOptions(
                nodes=count(self.nodes or 1, "--nodes", 1, 65536),
                devices_per_node=count(self.devices_per_node, "--devices-per-node", 1, 1024)
                if self.devices_per_node else None,
                partition=self.partition, account=self.account, time=self.time,
                container=self.container, gres=self.gres,
                rdzv_port=count(self.rdzv_port, "--rdzv-port", 1, 65535)
                if self.rdzv_port else None)
        return LaunchOptions(memory=self.memory, slurm=slurm)


def count(text: object, option: str, low: int, high: int) -> int:
    """A whole number in [low, high] from the command line (a clear error otherwise)."""
    from bench.errors import UserError

    if not str(text).isdigit() or not low <= int(str(text)) <= high:
        raise UserError(f"{option} {text!r} is not a whole number from {low} to {high}.",
                        f"Give {option} between {low} and {high}.")
    return int(str(text))
