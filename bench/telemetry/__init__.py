"""Telemetry: one sampler, one small adapter per vendor management API.

A device backend names its telemetry (``cndev``, ``ixml``, ``jtop``, ``nvml``, ``dcmi``,
``amdsmi``, ``host``).
Each name has a fallback chain: the vendor's library first, then its command-line tool, then
the host (psutil/RAPL). Every step tried is recorded with the reason it failed, and the result
document carries that chain, so a run that ended on a fallback says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from bench.errors import UserError
from bench.telemetry.base import (
    SAMPLE_FIELDS,
    AdapterUnavailable,
    Sample,
    TelemetryAdapter,
)
from bench.telemetry.sampler import Sampler

Factory = Callable[[list[int], float], TelemetryAdapter]


def _host(indices: list[int], interval_s: float) -> TelemetryAdapter:
    from bench.telemetry.host import HostAdapter

    return HostAdapter(indices)


def _nvml(indices: list[int], interval_s: float) -> TelemetryAdapter:
    from bench.telemetry.nvml import NvmlAdapter

    return NvmlAdapter(indices)


def _cndev(indices: list[int], interval_s: float) -> TelemetryAdapter:
    from bench.telemetry.cndev import CndevAdapter

    return CndevAdapter(indices)


def _cnmon(indices: list[int], interval_s: float) -> TelemetryAdapter:
    from bench.telemetry.cndev import CnmonAdapter

    return CnmonAdapter(indices)


def _ixml(indices: list[int], interval_s: float) -> TelemetryAdapter:
    from bench.telemetry.ixml import IxmlAdapter

    return IxmlAdapter(indices)


def _ixsmi(indices: list[int], interval_s: float) -> TelemetryAdapter:
    from bench.telemetry.ixml import IxsmiAdapter

    return IxsmiAdapter(indices)


def _jtop(indices: list[int], interval_s: float) -> TelemetryAdapter:
    from bench.telemetry.jetson import JtopAdapter

    return JtopAdapter(indices, interval_s)


def _tegrastats(indices: list[int], interval_s: float) -> TelemetryAdapter:
    from bench.telemetry.jetson import TegrastatsAdapter

    return TegrastatsAdapter(indices, interval_s)


def _dcmi(indices: list[int], interval_s: float) -> TelemetryAdapter:
    from bench.telemetry.ascend import DcmiAdapter

    return DcmiAdapter(indices)


def _npu_smi(indices: list[int], interval_s: float) -> TelemetryAdapter:
    from bench.telemetry.ascend import NpuSmiAdapter

    return NpuSmiAdapter(indices)


def _amdsmi(indices: list[int], interval_s: float) -> TelemetryAdapter:
    from bench.telemetry.rocm import AmdsmiAdapter

    return AmdsmiAdapter(indices)


def _rocm_smi(indices: list[int], interval_s: float) -> TelemetryAdapter:
    from bench.telemetry.rocm import RocmSmiAdapter

    return RocmSmiAdapter(indices)


def _hy_smi(indices: list[int], interval_s: float) -> TelemetryAdapter:
    from bench.telemetry.rocm import HySmiAdapter

    return HySmiAdapter(indices)


ADAPTERS: dict[str, Factory] = {
    "host": _host,
    "nvml": _nvml,
    "cndev": _cndev,
    "cnmon": _cnmon,
    "ixml": _ixml,
    "ixsmi": _ixsmi,
    "jtop": _jtop,
    "tegrastats": _tegrastats,
    "dcmi": _dcmi,
    "npu-smi": _npu_smi,
    "amdsmi": _amdsmi,
    "rocm-smi": _rocm_smi,
    "hy-smi": _hy_smi,
}

# What each backend falls back to, in order (host always last).
FALLBACKS: dict[str, tuple[str, ...]] = {
    "host": ("host",),
    "nvml": ("nvml", "host"),
    "cndev": ("cndev", "cnmon", "host"),
    "cnmon": ("cnmon", "host"),
    "ixml": ("ixml", "ixsmi", "host"),
    "ixsmi": ("ixsmi", "host"),
    "jtop": ("jtop", "tegrastats", "host"),
    "tegrastats": ("tegrastats", "host"),
    "dcmi": ("dcmi", "npu-smi", "host"),
    "npu-smi": ("npu-smi", "host"),
    "amdsmi": ("amdsmi", "rocm-smi", "hy-smi", "host"),
    "rocm-smi": ("rocm-smi", "host"),
    "hy-smi": ("hy-smi", "host"),
}

OVERRIDE_ENV = "BENCH_TELEMETRY"

__all__ = ["ADAPTERS", "FALLBACKS", "SAMPLE_FIELDS", "AdapterUnavailable", "Sample", "Sampler",
           "TelemetryAdapter", "open_adapter"]


def open_adapter(name: str, device_indices: list[int],
                 interval_s: float = 0.1) -> tuple[TelemetryAdapter, dict[str, Any]]:
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
            adapter = ADAPTERS[step](device_indices, interval_s)
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
