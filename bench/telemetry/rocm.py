"""AMD Instinct and Hygon DCU: the ``amdsmi`` library, then ``rocm-smi --json``, then ``hy-smi``.

``amdsmi`` is AMD's Python binding of libamd_smi (ROCm 6+). Units from its header and the
ROCm 6.3 interface: activity in %, VRAM in MB (MiB), power in W (``socket_power`` on ROCm 7,
``current_socket_power`` on MI300, ``average_socket_power`` on MI200; unsupported ones are
"N/A"), temperature in degC (the hotspot/junction sensor: MI300 has no edge sensor), clock in
MHz, and an energy accumulator whose ``counter_resolution`` is in microjoules (``power`` was
its name before amdsmi 6.2.1). Values of 0xFFFF come back as the string "N/A".

``rocm-smi --json`` prints every value as a string under ``card<N>`` keys, sometimes after
warning lines; ``N/A``, ``N/A (Secondary die)`` and ``-1`` (a failed utilisation) are read as
missing. Hygon's DTK ships ``hy-smi`` whose table (``DCU Temp AvgPwr Perf PwrCap VRAM% DCU%
Mode``) gives no memory in bytes.

An MI250X is two GCDs in one package and only the primary die reports power and energy (the
secondary prints ``N/A (Secondary die)``, its energy counter stays 0): the package's power is
given to one GCD the run uses (:mod:`bench.telemetry.cards`). [unverified on hardware: no AMD
or Hygon device is lent to this project's CI.]
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.documents import Info, JsonObject
from bench.telemetry.base import (
    MIB,
    AdapterUnavailable,
    Sample,
    TelemetryAdapter,
    ToolError,
    physical_indices,
    run_tool,
)
from bench.telemetry.cards import MI250X, PowerAttribution, attribute_card_power

VISIBLE_ENV = "HIP_VISIBLE_DEVICES"
POWER_KEYS = ("socket_power", "current_socket_power", "average_socket_power")
NA_TEXT = re.compile(r"^\s*(|n/a.*|na|-+)\s*$", re.IGNORECASE)
_NUM = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:W|C|°C|%|Mhz|MHz)?\s*$")


def visible_indices(device_indices: list[int]) -> list[int]:
    """HIP_VISIBLE_DEVICES, or ROCR_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES as HIP reads them."""
    for var in (VISIBLE_ENV, "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        if os.environ.get(var):
            return physical_indices(device_indices, os.environ[var])
    return device_indices


DEV_DRI = Path("/dev/dri")
SYS_DRM = Path("/sys/class/drm")


def accessible_bdfs(dev_dri: Path | None = None, sys_drm: Path | None = None) -> set[str]:
    """PCI addresses of the GPUs whose render node this process has.

    amdsmi and rocm-smi read sysfs, which a container shares with the host: they list every
    GPU of the host, while the container was given only the render nodes of its own
    (``kfd_render_nodes``). Empty when no render node is visible (then nothing is filtered)."""
    dev_dri, sys_drm = dev_dri or DEV_DRI, sys_drm or SYS_DRM
    out = set()
    for node in sorted(dev_dri.glob("renderD*")):
        target = os.path.realpath(sys_drm / node.name / "device")
        if os.path.basename(target).count(":") == 2:
            out.add(os.path.basename(target).lower())
    return out


def own_gpus(bdfs: list[str | None], accessible: set[str]) -> tuple[list[int], str | None]:
    """Positions (in HIP order) of the GPUs this process can open, and a note when some of the
    listed GPUs are another container's. Nothing is dropped when that cannot be told."""
    known = [(b or "").lower() for b in bdfs]
    if not accessible or not all(known) or not accessible & set(known):
        return list(range(len(bdfs))), None
    keep = [i for i, b in enumerate(known) if b in accessible]
    if len(keep) == len(bdfs):
        return keep, None
    return keep, (f"the management API lists {len(bdfs)} GPUs; this process can open "
                  f"{len(keep)} ({', '.join(known[i] for i in keep)}), indexed from 0 as HIP does")


def number(value: Any, what: str, source: str) -> tuple[float | None, str | None]:
    """A vendor value (int, float or text such as "45.0", "118.0W", "N/A") to a float."""
    if isinstance(value, bool):
        return None, f"{source} gave {value!r} for {what}"
    if isinstance(value, int | float):
        return float(value), None
    text = str(value)
    match = _NUM.match(text)
    if match:
        return float(match.group(1)), None
    if value is None or NA_TEXT.match(text):
        return None, f"{source} printed {text!r} for {what}"
    return None, f"{source} printed an unreadable {what} {text[:40]!r}"


def power_attribution(adapter: TelemetryAdapter, used: list[int], names: dict[int, str | None],
                      samples: list[Sample], partners: dict[int, float | None]
                      ) -> PowerAttribution | None:
    """Apply MI250X package attribution to ``samples`` (in ``used`` order), if any is one."""
    if not any(MI250X.matches(names.get(i)) for i in used):
        return None
    raw = {i: s.power_w for i, s in zip(used, samples, strict=True)}
    raw.update(partners)
    attribution = attribute_card_power(used, names, raw, MI250X)
    for i, sample in zip(used, samples, strict=True):
        sample.power_w = attribution.power_w[i]
        if i in attribution.reasons:
            adapter.missing("power_w", attribution.reasons[i])
        if MI250X.matches(names.get(i)) and sample.energy_j is not None and (
                sample.power_w is None):
            sample.energy_j = None
            adapter.missing("energy_j", "the MI250X package's energy counter is read on its "
                                        "primary GCD, counted once")
    adapter.scope["power_w"] = attribution.scope[used[0]]
    adapter.share_power(used, attribution.elsewhere)
    return attribution


# -- amdsmi ---------------------------------------------------------------------------------
def import_amdsmi() -> Any:
    """``import amdsmi``; it prints to stdout and raises OSError, KeyError or AttributeError
    when libamd_smi.so is missing or of another version, all of which mean 'unavailable'."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import amdsmi
    except ImportError as exc:
        raise AdapterUnavailable("the amdsmi Python package is not installed") from exc
    except (OSError, KeyError, AttributeError) as exc:
        raise AdapterUnavailable(f"import amdsmi failed ({type(exc).__name__}: {exc}); "
                                 "its version must match ROCm's libamd_smi.so") from exc
    return amdsmi


class AmdsmiAdapter(TelemetryAdapter):
    name = "amdsmi"

    def __init__(self, device_indices: list[int], module: Any = None) -> None:
        super().__init__(device_indices)
        self.smi = module or import_amdsmi()
        self.error = getattr(self.smi, "AmdSmiException", Exception)
        try:
            self.smi.amdsmi_init()
            handles = list(self.smi.amdsmi_get_processor_handles())
        except self.error as exc:
            raise AdapterUnavailable(f"amdsmi: {exc}") from exc
        handles = self._hip_order(handles)
        own, self.restricted = own_gpus([self._bdf(h) for h in handles], accessible_bdfs())
        self.hip_indices = visible_indices(device_indices)
        absent = [i for i in self.hip_indices if i >= len(own)]
        if absent:
            raise AdapterUnavailable(f"amdsmi lists {len(own)} GPU(s) this process can open; "
                                     f"no GPU {absent}")
        # positions in the host's list: an MI250X package pairs GCDs 2k and 2k+1 there, even
        # when the partner GCD belongs to another container
        self.physical = [own[i] for i in self.hip_indices]
        self.handles = [handles[j] for j in self.physical]
        self.names: dict[int, str | None] = {j: self._name(handles[j]) for j in self.physical}
        partners = [p for j in self.physical if MI250X.matches(self.names[j])
                    for p in (j - j % 2, j - j % 2 + 1) if p not in self.physical]
        self.partners = {p: handles[p] for p in partners if p < len(handles)}
        self.names.update({p: self._name(h) for p, h in self.partners.items()})
        self.power_key: str | None = None
        self.attribution: PowerAttribution | None = None
        self.scope = {"util_pct": "graphics engine activity (amdsmi gfx_activity)",
                      "temp_c": "hotspot (junction) temperature, edge where there is none",
                      "clock_hz": "GFX clock",
                      "energy_j": "socket energy accumulator (amdsmi_get_energy_count)"}

    def _hip_order(self, handles: list[Any]) -> list[Any]:
        """Handles in HIP's device order where amdsmi says it (``hip_id``, newer releases);
        otherwise amdsmi's own order, assumed to be HIP's [unverified]."""
        info = getattr(self.smi, "amdsmi_get_gpu_enumeration_info", None)
        if info is None:
            return handles
        try:
            ids = [int(info(h)["hip_id"]) for h in handles]
        except (self.error, KeyError, TypeError, ValueError):
            return handles
        if len(set(ids)) != len(ids):
            return handles
        return [h for _, h in sorted(zip(ids, handles, strict=True), key=lambda p: p[0])]

    def _bdf(self, handle: Any) -> str | None:
        try:
            return str(self.smi.amdsmi_get_gpu_device_bdf(handle))
        except (self.error, AttributeError):
            return None

    def _name(self, handle: Any) -> str | None:
        try:
            name = self.smi.amdsmi_get_gpu_asic_info(handle).get("market_name")
        except self.error:
            return None
        return None if name in (None, "", "N/A") else str(name)

    def _call(self, field_name: str, fn: Any) -> Any:
        try:
            return fn()
        except self.error as exc:
            return self.missing(field_name, f"amdsmi: {exc}")

    def _value(self, field_name: str, value: Any, what: str) -> float | None:
        out, why = number(value, what, "amdsmi")
        if why:
            self.missing(field_name, why)
        return out

    def _power(self, handle: Any, record: bool = True) -> float | None:
        """Socket power in W; ``record=False`` for an MI250X die, whose missing reading the
        package attribution explains instead."""
        try:
            info = self.smi.amdsmi_get_power_info(handle)
        except self.error as exc:
            return self.missing("power_w", f"amdsmi: {exc}") if record else None
        texts = []
        for key in POWER_KEYS:
            if key in info:
                value, _ = number(info[key], key, "amdsmi")
                if value is not None:
                    self.power_key = key
                    return value
                texts.append(f"{key}={info[key]!r}")
        if not record:
            return None
        return self.missing("power_w", "amdsmi gave no power (" + ", ".join(texts) + ")")

    def _temperature(self, handle: Any) -> float | None:
        kinds = self.smi.AmdSmiTemperatureType
        metric = self.smi.AmdSmiTemperatureMetric.CURRENT
        failures = []
        for kind in (kinds.HOTSPOT, kinds.EDGE):
            try:
                value = self.smi.amdsmi_get_temp_metric(handle, kind, metric)
            except self.error as exc:
                failures.append(str(exc))
                continue
            out, why = number(value, "temperature", "amdsmi")
            if out is not None:
                return out
            failures.append(why or "")
        return self.missing("temp_c", "amdsmi: " + "; ".join(failures))

    def _energy_j(self, handle: Any) -> float | None:
        info = self._call("energy_j", lambda: self.smi.amdsmi_get_energy_count(handle))
        if info is None:
            return None
        ticks = info.get("energy_accumulator", info.get("power"))
        resolution = info.get("counter_resolution")
        if not isinstance(ticks, int | float) or not isinstance(resolution, int | float) or \
                resolution <= 0:
            return self.missing("energy_j", f"amdsmi gave an unusable energy counter {info}")
        if ticks == 0:
            return self.missing("energy_j", "the energy counter reads 0 (an MI250X secondary "
                                            "die, or no counter)")
        return ticks * resolution / 1e6

    def _read_one(self, h: Any, name: str | None) -> Sample:
        smi = self.smi
        activity = self._call("util_pct", lambda: smi.amdsmi_get_gpu_activity(h))
        util = self._value("util_pct", activity.get("gfx_activity"), "gfx_activity") \
            if activity is not None else None
        if util is not None and not 0 <= util <= 100:
            util = self.missing("util_pct", f"amdsmi gave gfx_activity {util:g} %")
        vram = self._call("mem_used_bytes", lambda: smi.amdsmi_get_gpu_vram_usage(h))
        used = total = None
        if vram is not None:
            used = self._value("mem_used_bytes", vram.get("vram_used"), "vram_used")
            total = self._value("mem_total_bytes", vram.get("vram_total"), "vram_total")
            if total is not None and (total <= 0 or (used is not None and used > total)):
                why = f"amdsmi gave VRAM {used} of {total} MB"
                used = total = None
                self.missing("mem_used_bytes", why)
                self.missing("mem_total_bytes", why)
        clock = self._call("clock_hz", lambda: smi.amdsmi_get_clock_info(h, smi.AmdSmiClkType.GFX))
        mhz = self._value("clock_hz", clock.get("clk"), "GFX clock") if clock is not None else None
        package = MI250X.matches(name)
        power = self._power(h, record=not package)
        if package and power is not None and power <= 0:
            power = None  # the secondary die reads 0; the package attribution says why
        return Sample(
            util_pct=util,
            mem_used_bytes=used * MIB if used is not None else None,
            mem_total_bytes=total * MIB if total is not None else None,
            power_w=power,
            temp_c=self._temperature(h),
            clock_hz=mhz * 1e6 if mhz else None,
            energy_j=self._energy_j(h),
        )

    def read(self) -> list[Sample]:
        samples = [self._read_one(h, self.names[i])
                   for i, h in zip(self.physical, self.handles, strict=True)]
        partners = {}
        for j, h in self.partners.items():
            value = self._power(h, record=False)
            partners[j] = value if value else None
        self.attribution = power_attribution(self, self.physical, self.names, samples, partners)
        if self.attribution is None and self.power_key:
            self.scope["power_w"] = f"socket power (amdsmi {self.power_key})"
        self.missing("throttle", "amdsmi's throttle status is not read")
        return samples

    def describe(self) -> Info:
        out = {"backend": self.name, "source": "amdsmi (libamd_smi) Python binding",
               "devices": [self.names.get(i) for i in self.physical],
               "physical_indices": self.physical, "hip_indices": self.hip_indices,
               "power_key": self.power_key, "restricted_to_own_gpus": self.restricted,
               "field_scope": self.scope}
        if self.attribution is not None:
            out["power_attribution"] = {str(i): s for i, s in self.attribution.scope.items()}
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.smi.amdsmi_shut_down()


# -- rocm-smi --json ------------------------------------------------------------------------
ROCM_SMI_ARGV = ["rocm-smi", "--showuse", "--showmeminfo", "vram", "--showpower", "--showtemp",
                 "--showenergycounter", "--showproductname", "--showbus", "--json"]
ROCM_POWER_KEYS = ("Current Socket Graphics Package Power (W)",
                   "Average Graphics Package Power (W)")
ROCM_TEMP_KEYS = ("Temperature (Sensor junction) (C)", "Temperature (Sensor edge) (C)")
ROCM_NAME_KEYS = ("Card Series", "Card series", "Card Model", "Card model")


@dataclass
class SmiCard:
    """One device of an SMI tool's output: SI values (None where unreadable) and reasons."""

    index: int
    name: str | None
    values: dict[str, float | None] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    bus: str | None = None

    def put(self, key: str, value: float | None, why: str | None) -> None:
        self.values[key] = value
        if why:
            self.reasons[key] = why


def _json_object(text: str) -> JsonObject | None:
    """The JSON object in ``text``, skipping the warning lines rocm-smi may print first."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        doc = json.loads(text[start:end + 1])
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _first(card: JsonObject, keys: tuple[str, ...], what: str
           ) -> tuple[float | None, str | None]:
    why = None
    for key in keys:
        if key in card:
            value, why = number(card[key], key, "rocm-smi")
            if value is not None:
                return value, None
    return None, why or f"rocm-smi printed no {what}"


def parse_rocm_smi_json(text: str) -> dict[int, SmiCard]:
    """Cards of ``rocm-smi ... --json`` by index. Never raises on any input."""
    doc = _json_object(text)
    cards: dict[int, SmiCard] = {}
    for key, card in (doc or {}).items():
        match = re.fullmatch(r"card(\d+)", str(key))
        if not match or not isinstance(card, dict):
            continue
        name = next((str(card[k]).strip() for k in ROCM_NAME_KEYS if card.get(k)), None)
        bus = card.get("PCI Bus")
        out = SmiCard(int(match.group(1)), name, bus=str(bus).lower() if bus else None)
        util, why = _first(card, ("GPU use (%)",), "GPU use")
        if util is not None and not 0 <= util <= 100:
            util, why = None, f"rocm-smi printed GPU use {card.get('GPU use (%)')!r}"
        out.put("util_pct", util, why)
        used, why_u = _first(card, ("VRAM Total Used Memory (B)",), "VRAM used")
        total, why_t = _first(card, ("VRAM Total Memory (B)",), "VRAM total")
        if total is not None and (total <= 0 or (used is not None and used > total)):
            why_t = f"rocm-smi printed VRAM {used} of {total} B"
            total = used = None
            why_u = why_t
        out.put("mem_used_bytes", used, why_u)
        out.put("mem_total_bytes", total, why_t)
        power, why = _first(card, ROCM_POWER_KEYS, "power")
        out.put("power_w", power, why)
        temp, why = _first(card, ROCM_TEMP_KEYS, "temperature")
        out.put("temp_c", temp, why)
        energy, why = _first(card, ("Accumulated Energy (uJ)",), "energy counter")
        if energy == 0:
            energy, why = None, "rocm-smi's energy counter reads 0 (an MI250X secondary die)"
        out.put("energy_j", energy / 1e6 if energy is not None else None, why)
        cards[out.index] = out
    return cards


class RocmSmiAdapter(TelemetryAdapter):
    name = "rocm-smi"

    def __init__(self, device_indices: list[int], timeout_s: float = 10.0) -> None:
        super().__init__(device_indices)
        self.timeout_s = timeout_s
        self.hip_indices = visible_indices(device_indices)
        try:
            cards = parse_rocm_smi_json(run_tool(ROCM_SMI_ARGV, timeout_s))
        except ToolError as exc:
            raise AdapterUnavailable(str(exc)) from exc
        if not cards:
            raise AdapterUnavailable("rocm-smi printed no card<N> JSON object")
        order = sorted(cards)
        own, self.restricted = own_gpus([cards[i].bus for i in order], accessible_bdfs())
        absent = [i for i in self.hip_indices if i >= len(own)]
        if absent:
            raise AdapterUnavailable(f"rocm-smi lists cards {order}, {len(own)} of them this "
                                     f"process's; no GPU {absent}")
        self.physical = [order[own[i]] for i in self.hip_indices]  # rocm-smi card numbers
        self.names = {i: c.name for i, c in cards.items()}
        self.attribution: PowerAttribution | None = None
        self.scope = {"util_pct": "rocm-smi GPU use (%)",
                      "power_w": "socket / package power (rocm-smi)",
                      "temp_c": "junction temperature, edge where there is none",
                      "energy_j": "rocm-smi Accumulated Energy (uJ)"}

    def read(self) -> list[Sample]:
        cards = parse_rocm_smi_json(run_tool(ROCM_SMI_ARGV, self.timeout_s))
        if not cards:
            raise ToolError("rocm-smi printed no card<N> JSON object")
        samples = []
        for i in self.physical:
            card = cards.get(i)
            if card is None:
                for key in ("util_pct", "mem_used_bytes", "mem_total_bytes", "power_w",
                            "temp_c", "energy_j"):
                    self.missing(key, f"rocm-smi printed no card{i}")
                samples.append(Sample())
                continue
            for key, reason in card.reasons.items():
                if not (key in ("power_w", "energy_j") and MI250X.matches(self.names.get(i))):
                    self.missing(key, reason)
            samples.append(Sample(**card.values))
        partners = {j: c.values.get("power_w") for j, c in cards.items()
                    if j not in self.physical}
        self.attribution = power_attribution(self, self.physical, self.names, samples,
                                             partners)
        self.missing("clock_hz", "the rocm-smi query used reports no clock")
        self.missing("throttle", "the rocm-smi query used reports no throttle state")
        return samples

    def describe(self) -> Info:
        out = {"backend": self.name, "source": "rocm-smi --json (" + " ".join(ROCM_SMI_ARGV[1:-1])
               + ")", "devices": [self.names.get(i) for i in self.physical],
               "physical_indices": self.physical, "hip_indices": self.hip_indices,
               "restricted_to_own_gpus": self.restricted, "field_scope": self.scope}
        if self.attribution is not None:
            out["power_attribution"] = {str(i): s for i, s in self.attribution.scope.items()}
        return out


# -- hy-smi (Hygon DCU) ---------------------------------------------------------------------
HY_COLUMNS = {"temp": "temp_c", "avgpwr": "power_w", "dcu%": "util_pct"}
HYHAL_HY_SMI = "/opt/hyhal/bin/hy-smi"  # where Hygon's HAL installs it (mounted read-only)


def hy_smi_path() -> str:
    """``hy-smi`` on PATH, else Hygon's HAL location, else the bare name (fails clearly)."""
    return shutil.which("hy-smi") or (HYHAL_HY_SMI if os.path.exists(HYHAL_HY_SMI)
                                      else "hy-smi")


def parse_hy_smi(text: str) -> dict[int, SmiCard]:
    """Rows of ``hy-smi``'s table (header ``DCU Temp AvgPwr Perf PwrCap VRAM% DCU% Mode``),
    by DCU index. Columns are found by the header's names. Never raises on any input."""
    header: list[str] | None = None
    cards: dict[int, SmiCard] = {}
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["DCU"] and len(words) > 1:
            header = [w.lower() for w in words]
            continue
        if header is None or not words or not words[0].isdigit():
            continue
        index = int(words[0])
        out = SmiCard(index, None)
        row = dict(zip(header, words, strict=False))
        for column, key in HY_COLUMNS.items():
            if column not in header:
                out.put(key, None, f"hy-smi's table has no {column} column")
                continue
            value, why = number(row.get(column), column, "hy-smi")
            out.put(key, value, why)
        if len(words) != len(header):
            for key in HY_COLUMNS.values():
                out.put(key, None, f"hy-smi printed {len(words)} cells for DCU {index}, "
                                   f"the header has {len(header)}")
        util = out.values.get("util_pct")
        if util is not None and not 0 <= util <= 100:
            out.put("util_pct", None, f"hy-smi printed DCU% {util:g}")
        cards[index] = out
    return cards


class HySmiAdapter(TelemetryAdapter):
    name = "hy-smi"

    def __init__(self, device_indices: list[int], timeout_s: float = 10.0) -> None:
        super().__init__(device_indices)
        self.timeout_s = timeout_s
        self.physical = visible_indices(device_indices)
        self.tool = hy_smi_path()
        try:
            cards = parse_hy_smi(run_tool([self.tool], timeout_s))
        except ToolError as exc:
            raise AdapterUnavailable(str(exc)) from exc
        own = accessible_bdfs()
        if own and len(own) < len(cards):
            raise AdapterUnavailable(
                f"hy-smi lists {len(cards)} DCUs but this process can open {len(own)}, and its "
                "table has no PCI address to tell which are this container's")
        absent = [i for i in self.physical if i not in cards]
        if absent:
            raise AdapterUnavailable(f"hy-smi's table lists DCUs {sorted(cards)}; no DCU "
                                     f"{absent}")
        self.scope = {"util_pct": "hy-smi DCU%", "power_w": "hy-smi AvgPwr (card power)"}

    def read(self) -> list[Sample]:
        cards = parse_hy_smi(run_tool([self.tool], self.timeout_s))
        if not cards:
            raise ToolError("hy-smi printed no DCU table")
        samples = []
        for i in self.physical:
            card = cards.get(i)
            if card is None:
                for key in HY_COLUMNS.values():
                    self.missing(key, f"hy-smi printed no row for DCU {i}")
                samples.append(Sample())
                continue
            for key, reason in card.reasons.items():
                self.missing(key, reason)
            samples.append(Sample(**card.values))
        for key in ("mem_used_bytes", "mem_total_bytes"):
            self.missing(key, "hy-smi's table gives VRAM% only, not bytes")
        self.missing("clock_hz", "hy-smi's table has no clock")
        self.missing("energy_j", "hy-smi reports no energy counter: energy is integrated "
                                 "power")
        self.missing("throttle", "hy-smi's table has no throttle state")
        return samples

    def describe(self) -> Info:
        return {"backend": self.name, "source": f"{self.tool} (table)",
                "physical_indices": self.physical, "field_scope": self.scope}
