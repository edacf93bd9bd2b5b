"""NVIDIA GPUs through NVML (``import pynvml`` from the nvidia-ml-py package).

Units converted to SI here: power mW -> W, energy mJ -> J, clocks MHz -> Hz. The energy
counter (``nvmlDeviceGetTotalEnergyConsumption``, Volta and newer) is cumulative since the
driver loaded. A field the device does not support is null with NVML's own error as reason.

Clock-throttle reasons are read with every sample (a mask, as names); the processes on each
device (compute and graphics, with their memory) when the run asks (``device_processes``:
``bench.contention`` counts those that are not the benchmark's). The adapter only needs an
object with pynvml's call style, so NVML-compatible libraries
(Iluvatar's libixml through :mod:`bench.telemetry.nvml_abi`) reuse it unchanged.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, ClassVar

from bench.documents import Info
from bench.telemetry.base import Sample, TelemetryAdapter, physical_indices

__all__ = ["THROTTLE_BITS", "NvmlAdapter", "physical_indices", "throttle_names"]


class NvmlAdapter(TelemetryAdapter):
    name = "nvml"
    source: ClassVar[str] = "NVML (nvidia-ml-py)"
    visible_devices_env: ClassVar[str] = "CUDA_VISIBLE_DEVICES"

    def __init__(self, device_indices: list[int], pynvml: Any = None) -> None:
        super().__init__(device_indices)
        if pynvml is None:
            import pynvml
        self.nvml = pynvml
        self.nvml.nvmlInit()
        self.physical = physical_indices(device_indices,
                                         os.environ.get(self.visible_devices_env))
        self.handles = [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in self.physical]
        # Instant board power where the driver has it (Hopper and newer): there
        # nvmlDeviceGetPowerUsage is a one-second moving average, which lags every change of
        # load, so power integrated over a window of a few seconds misses the ramp (measured
        # on an H100: 23 % less than the energy counter over 1.5 s windows). Elsewhere the
        # averaged reading, which is what the driver has.
        self.instant = hasattr(self.nvml, "nvmlDeviceGetFieldValues") and \
            all(self._instant_mw(h) is not None for h in self.handles)
        self.scope = {"power_w": "GPU board power, instant (NVML field POWER_INSTANT)"
                      if self.instant else "GPU board power (nvmlDeviceGetPowerUsage)",
                      "energy_j": "GPU board energy since driver load "
                                  "(nvmlDeviceGetTotalEnergyConsumption)",
                      "util_pct": "percent of time a kernel was running (NVML 'gpu' rate)",
                      "clock_hz": "SM clock"}
        self.processes_unavailable = self._probe_processes()

    def _field(self, name: str, fn: Any) -> Any:
        try:
            return fn()
        except self.nvml.NVMLError as exc:
            return self.missing(name, f"{self.name}: {exc}")

    def _instant_mw(self, h: Any) -> float | None:
        """The instant board power in mW (NVML_FI_DEV_POWER_INSTANT), None where the driver
        or library does not have it."""
        field = getattr(self.nvml, "NVML_FI_DEV_POWER_INSTANT", INSTANT_POWER_FIELD)
        try:
            value = self.nvml.nvmlDeviceGetFieldValues(h, [field])[0]
        except (self.nvml.NVMLError, AttributeError, IndexError, TypeError):
            return None
        if getattr(value, "nvmlReturn", 1) != 0:
            return None
        member = FIELD_VALUE_MEMBERS.get(getattr(value, "valueType", None))
        reading = getattr(value.value, member, None) if member else None
        return float(reading) if isinstance(reading, int | float) and reading > 0 else None

    def _power_mw(self, h: Any) -> float | None:
        if self.instant:
            mw = self._instant_mw(h)
            if mw is not None:
                return mw
        return self._field("power_w", lambda: self.nvml.nvmlDeviceGetPowerUsage(h))

    def _read_one(self, h: Any) -> Sample:
        nv = self.nvml
        util = self._field("util_pct", lambda: nv.nvmlDeviceGetUtilizationRates(h).gpu)
        mem = self._field("mem_used_bytes", lambda: nv.nvmlDeviceGetMemoryInfo(h))
        power_mw = self._power_mw(h)
        temp = self._field("temp_c",
                           lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))
        clock = self._field("clock_hz", lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM))
        energy_mj = self._field("energy_j", lambda: nv.nvmlDeviceGetTotalEnergyConsumption(h))
        reasons = self._field("throttle", lambda: self._throttle(h))
        return Sample(
            util_pct=float(util) if util is not None else None,
            mem_used_bytes=float(mem.used) if mem is not None else None,
            mem_total_bytes=float(mem.total) if mem is not None else None,
            power_w=power_mw / 1000.0 if power_mw is not None else None,
            temp_c=float(temp) if temp is not None else None,
            clock_hz=clock * 1e6 if clock is not None else None,
            energy_j=energy_mj / 1000.0 if energy_mj is not None else None,
            throttle=throttle_names(reasons) if reasons is not None else None,
        )

    def _throttle(self, h: Any) -> int:
        """The clock-event reasons (driver 535 and newer), else the older call of the same
        mask (a library without the new name answers Function Not Found)."""
        nv = self.nvml
        if hasattr(nv, "nvmlDeviceGetCurrentClocksEventReasons"):
            try:
                return nv.nvmlDeviceGetCurrentClocksEventReasons(h)
            except nv.NVMLError as exc:
                if getattr(exc, "value", None) != FUNCTION_NOT_FOUND:
                    raise
        return nv.nvmlDeviceGetCurrentClocksThrottleReasons(h)

    def read(self) -> list[Sample]:
        return [self._read_one(h) for h in self.handles]

    def _running(self, kind: str, h: Any) -> list[Any]:
        fn = getattr(self.nvml, f"nvmlDeviceGet{kind}RunningProcesses", None)
        if fn is None:
            raise self.nvml.NVMLError(FUNCTION_NOT_FOUND)
        try:
            return list(fn(h))
        except Exception as exc:  # pynvml: NVMLLibraryMismatchError for a driver without _v3
            if isinstance(exc, self.nvml.NVMLError):
                raise
            legacy = getattr(self.nvml, f"nvmlDeviceGet{kind}RunningProcesses_v2", None)
            if legacy is None:
                raise
            return list(legacy(h))

    def device_processes(self) -> list[Info]:
        """The compute and graphics processes on each device (NVML's running-process lists;
        a process in both is listed once, with the larger memory)."""
        out = []
        for logical, h in zip(self.device_indices, self.handles, strict=True):
            found: dict[int, float | None] = {}
            for kind in ("Compute", "Graphics"):
                try:
                    procs = self._running(kind, h)
                except self.nvml.NVMLError:
                    if kind == "Compute":
                        raise
                    continue  # graphics lists are optional (a compute-only board)
                for p in procs:
                    mem = getattr(p, "usedGpuMemory", None)
                    mem = float(mem) if isinstance(mem, int | float) else None
                    pid = int(p.pid)
                    if pid not in found or (mem is not None and (found[pid] is None
                                                                 or mem > found[pid])):
                        found[pid] = mem
            out += [{"device": logical, "pid": pid, "used_memory_bytes": mem}
                    for pid, mem in sorted(found.items())]
        return out

    def _probe_processes(self) -> str | None:
        """Why the devices' processes cannot be listed here (None: they can)."""
        try:
            self.device_processes()
        except Exception as exc:
            return f"{self.name}: the running processes are not readable ({exc})"
        return None

    def device_names(self) -> list[str | None]:
        names: list[str | None] = []
        for h in self.handles:
            try:
                name = self.nvml.nvmlDeviceGetName(h)
            except self.nvml.NVMLError:
                name = None
            names.append(name.decode() if isinstance(name, bytes) else name)
        return names

    def describe(self) -> Info:
        return {"backend": self.name, "source": self.source, "devices": self.device_names(),
                "physical_indices": self.physical, "field_scope": self.scope}

    def close(self) -> None:
        with contextlib.suppress(self.nvml.NVMLError):
            self.nvml.nvmlShutdown()


# nvml.h: NVML_FI_DEV_POWER_INSTANT (older nvidia-ml-py releases lack the constant) and the
# member of a field value's union per NVML_VALUE_TYPE_*.
INSTANT_POWER_FIELD = 186
FUNCTION_NOT_FOUND = 13  # NVML_ERROR_FUNCTION_NOT_FOUND
FIELD_VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal"}

THROTTLE_BITS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}


def throttle_names(mask: int) -> str:
    """NVML's clock-event bitmask as names joined by '+', 'none' when clear."""
    names = [name for bit, name in THROTTLE_BITS.items() if mask & bit]
    return "+".join(names) if names else "none"
