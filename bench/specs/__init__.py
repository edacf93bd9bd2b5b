"""Device spec sheets as data (one JSON file per device model, as ByteMLPerf's vendor_zoo).

Peaks and limits live only here, never in scripts: measured figures are reported next to
them (% of peak) and the report's plausibility checks use the limits.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from bench.documents import DeviceInfo, DeviceSpec
from bench.errors import UserError
from bench.schema import validation_errors

SPECS_DIR = Path(__file__).resolve().parent / "devices"


@functools.cache
def load_specs(directory: Path = SPECS_DIR) -> tuple[DeviceSpec, ...]:
    specs = []
    for path in sorted(directory.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        problems = validation_errors(doc, "device-spec")
        if problems:
            raise UserError(f"Device spec {path} breaks schemas/device-spec.schema.json at "
                            f"{problems[0]}.", "Fix that field.")
        if doc["id"] != path.stem:
            raise UserError(f"Device spec {path} has id {doc['id']!r}.",
                            f"Make the id the file name: {path.stem!r}.")
        specs.append(doc)
    return tuple(specs)


def find_spec(device_name: str | None, vendor: str | None = None) -> DeviceSpec | None:
    """The spec sheet whose ``match`` patterns match ``device_name`` (first match wins)."""
    if not device_name:
        return None
    for spec in load_specs():
        if vendor and spec["vendor"] != vendor:
            continue
        if any(re.search(p, device_name, re.IGNORECASE) for p in spec["match"]):
            return spec
    return None


def recorded_spec(vendor: str, device: DeviceInfo | None) -> DeviceSpec | None:
    """The spec sheet of a device as a result's provenance describes it: a published sheet
    matched by its name, else the estimate its backend recorded (the cpu reference's,
    ``bench.specs.host_cpu``), if that estimate is a valid sheet."""
    device = device or {}
    spec = find_spec(str(device.get("name") or vendor), vendor)
    estimate = device.get("spec_estimate")
    if spec is None and isinstance(estimate, dict) and estimate.get("estimate") \
            and not validation_errors(estimate, "device-spec"):
        return estimate
    return spec


SHARED_PER_DEVICE = ("memory_bytes", "memory_bandwidth_bytes_per_s")


def per_device(spec: DeviceSpec | None) -> DeviceSpec | None:
    """The sheet as one framework device sees it.

    A card that the framework shows as several devices (``devices_per_card``: BI-V150,
    MLU370-X8) shares its compute peaks, memory and memory bandwidth among them; its power
    limit stays the card's (telemetry reports card power).
    """
    if spec is None:
        return None
    share = int(spec.get("devices_per_card", 1))
    if share == 1:
        return spec
    out = dict(spec)
    out["peak_flops"] = {p: None if v is None else v / share
                         for p, v in spec["peak_flops"].items()}
    for name in SHARED_PER_DEVICE:
        out[name] = None if spec.get(name) is None else spec[name] / share
    return out


def peak_for(spec: DeviceSpec | None, precision: str | None
             ) -> tuple[float | None, str]:
    """The per-device peak at ``precision``, else the sheet's highest peak (a throughput
    beyond every peak of the device is impossible at any precision); with what it is."""
    spec = per_device(spec)
    peaks = {k: v for k, v in ((spec or {}).get("peak_flops") or {}).items() if v}
    if not peaks:
        return None, "no peak on a spec sheet"
    if precision in peaks:
        return peaks[precision], f"{spec['name']} {precision} peak"  # type: ignore[index]
    top = max(peaks, key=peaks.__getitem__)
    return peaks[top], (f"{spec['name']} highest peak ({top}; the sheet has no "  # type: ignore
                        f"{precision} figure)")
