"""Telemetry: one sampler, one small adapter per vendor management API.

A device backend names its telemetry (``cndev``, ``ixml``, ``jtop``, ``nvml``, ``dcmi``,
``amdsmi``, ``host``).
Each name has a fallback chain: the vendor's library first, then its command-line tool, then
the host (psutil/RAPL). Every step tried is recorded with the reason it failed, and the result
document carries that chain, so a run that ended on a fallback says so.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

from bench.documents import TelemetrySelection
from bench.errors import UserError
from bench.telemetry.base import (
    SAMPLE_FIELDS,
    AdapterUnavailable,
    Sample,
    TelemetryAdapter,
)
from bench.telemetry.sampler import Sampler


@dataclass(frozen=True)
class AdapterRef:
    """Where an adapter class lives, imported only when the adapter is opened: a chain never
    loads the library or module of a step it does not reach."""

    module: str  # bench.telemetry.<module>
    cls: str
    takes_interval: bool = False  # the tool streams at its own period (jtop, tegrastats)

    def open(self, device_indices: list[int], interval_s: float) -> TelemetryAdapter:
        adapter = getattr(importlib.import_module(f"{__name__}.{self.module}"), self.cls)
        if self.takes_interval:
            return adapter(device_indices, interval_s)
        return adapter(device_indices)


ADAPTERS: dict[str, AdapterRef] = {
    "host": AdapterRef("host", "HostAdapter"),
    "nvml": AdapterRef("nvml", "NvmlAdapter"),
    "cndev": AdapterRef("cndev", "CndevAdapter"),
    "cnmon": AdapterRef("cndev", "CnmonAdapter"),
    "ixml": AdapterRef("ixml", "IxmlAdapter"),
    "ixsmi": AdapterRef("ixml", "IxsmiAdapter"),
    "jtop": AdapterRef("jetson", "JtopAdapter", takes_interval=True),
    "tegrastats": AdapterRef("jetson", "TegrastatsAdapter", takes_interval=True),
    "dcmi": AdapterRef("ascend", "DcmiAdapter"),
    "npu-smi": AdapterRef("ascend", "NpuSmiAdapter"),
    "amdsmi": AdapterRef("rocm", "AmdsmiAdapter"),
    "rocm-smi": AdapterRef("rocm", "RocmSmiAdapter"),
    "hy-smi": AdapterRef("rocm", "HySmiAdapter"),
}

# Each management API's chain: its library first, then its command-line tool(s). The only
# list written by hand; FALLBACKS follows from it.
CHAINS: tuple[tuple[str, ...], ...] = (
    ("nvml",),
    ("cndev", "cnmon"),
    ("ixml", "ixsmi"),
    ("jtop", "tegrastats"),
    ("dcmi", "npu-smi"),
    ("amdsmi", "rocm-smi", "hy-smi"),
)


def _fallbacks(chains: tuple[tuple[str, ...], ...]) -> dict[str, tuple[str, ...]]:
    """What each name falls back to, in order, host always last: a chain's head the rest of
    its chain, any other member (asked for by itself, e.g. ``BENCH_TELEMETRY=cnmon``) only
    the host."""
    out: dict[str, tuple[str, ...]] = {"host": ("host",)}
    for head, *rest in chains:
        out[head] = (head, *rest, "host")
        out.update({member: (member, "host") for member in rest})
    return out


FALLBACKS: dict[str, tuple[str, ...]] = _fallbacks(CHAINS)

OVERRIDE_ENV = "BENCH_TELEMETRY"

__all__ = ["ADAPTERS", "CHAINS", "FALLBACKS", "SAMPLE_FIELDS", "AdapterRef", "AdapterUnavailable",
           "Sample", "Sampler", "TelemetryAdapter", "open_adapter"]


def open_adapter(name: str, device_indices: list[int],
                 interval_s: float = 0.1) -> tuple[TelemetryAdapter, TelemetrySelection]:
    """Open the first adapter of ``name``'s fallback chain that works here.

    ``BENCH_TELEMETRY`` overrides the backend's own name (e.g. to force ``cnmon``). Returns the
    adapter and the selection record for the result: what was requested, what was used and
    every step tried with its outcome.
    """
    override = os.environ.get(OVERRIDE_ENV)
    requested = override or name
    if requested not in FALLBACKS:
        where = f"{OVERRIDE_ENV}={override}" if override else f"telemetry backend {name!r}"
        raise UserError(f"Unknown {where}.", f"Choose one of: {', '.join(FALLBACKS)}.")
    attempts: list[dict[str, str]] = []
    for step in FALLBACKS[requested]:
        try:
            adapter = ADAPTERS[step].open(device_indices, interval_s)
        except Exception as exc:
            if step == "host":
                raise
            kind = "unavailable" if isinstance(exc, AdapterUnavailable) else type(exc).__name__
            attempts.append({"backend": step, "status": "failed",
                             "reason": f"{kind}: {exc}"})
            continue
        attempts.append({"backend": step, "status": "used"})
        note = None
        if step != requested:
            failed = "; ".join(f"{a['backend']}: {a['reason']}" for a in attempts
                               if a["status"] == "failed")
            note = f"telemetry {requested!r} fell back to {step!r} ({failed})"
        return adapter, {"requested": requested, "used": step,
                         "overridden_by_env": override is not None,
                         "chain": list(FALLBACKS[requested]), "attempts": attempts,
                         "note": note}
    raise AssertionError("unreachable: host is the last step of every chain")
