"""The few NVML C functions telemetry needs, through ctypes, for NVML-compatible libraries.

Iluvatar's ``libixml.so`` exports NVML's function names with NVML's signatures and units
(docs/telemetry.md; gpustack's pyixml binds it the same way). pynvml hard-codes the NVIDIA library
name, so this module binds any such library by path and exposes the same call style as
pynvml (``nvmlDeviceGetPowerUsage(handle)`` returning mW, ``NVMLError`` on failure), which
lets :class:`bench.telemetry.nvml.NvmlAdapter` run unchanged on top of it.

Signatures follow NVML's public ``nvml.h``: ``nvmlReturn_t`` is an int, ``nvmlDevice_t`` an
opaque pointer, ``nvmlMemory_t`` three ``unsigned long long`` (total, free, used),
``nvmlUtilization_t`` two ``unsigned int`` (gpu, memory), ``nvmlProcessInfo_t`` (v2 and v3
calls) a pid, its used memory in bytes and two instance ids (v1: the first two).
"""

from __future__ import annotations

import ctypes
from typing import Any

from bench.telemetry.base import c_function, error_string_function

NVML_SUCCESS = 0
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_VALUE_NOT_AVAILABLE = 2**64 - 1  # an unsigned long long nobody could measure
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_DEVICE_NAME_BUFFER_SIZE = 96

_ERROR_NAMES = {
    1: "Uninitialized", 2: "Invalid Argument", 3: "Not Supported", 4: "Insufficient Permissions",
    5: "Already Initialized", 6: "Not Found", 7: "Insufficient Size", 8: "Insufficient Power",
    9: "Driver Not Loaded", 10: "Timeout", 11: "Interrupt Request Issue", 12: "Library Not Found",
    13: "Function Not Found", 14: "Corrupted infoROM", 15: "GPU is lost", 999: "Unknown Error",
}


class NvmlMemory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong),
                ("used", ctypes.c_ulonglong)]


class NvmlUtilization(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


class NvmlProcessInfoV1(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong)]


class NvmlProcessInfo(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong),
                ("gpuInstanceId", ctypes.c_uint), ("computeInstanceId", ctypes.c_uint)]


class ProcessInfo:
    """One process on a device, as pynvml returns it (``pid``, ``usedGpuMemory`` in bytes
    or None where the driver cannot say)."""

    def __init__(self, pid: int, used: int) -> None:
        self.pid = pid
        self.usedGpuMemory = None if used == NVML_VALUE_NOT_AVAILABLE else used


class NVMLError(Exception):
    """A non-zero ``nvmlReturn_t``; ``str()`` is the library's own message where it has one."""

    def __init__(self, value: int, message: str | None = None) -> None:
        self.value = value
        super().__init__(message or _ERROR_NAMES.get(value, f"NVML error {value}"))


class NvmlLibrary:
    """pynvml-style calls on one NVML-compatible shared library."""

    NVMLError = NVMLError
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1

    def __init__(self, path: str) -> None:
        self.path = path
        self.lib = ctypes.CDLL(path)
        self._error_string = error_string_function(self.lib, "nvmlErrorString")

    def _symbol(self, name: str) -> Any:
        return c_function(self.lib, name)

    def _first(self, *names: str) -> Any:
        for name in names:
            fn = self._symbol(name)
            if fn is not None:
                return fn
        raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND,
                        f"{self.path} exports none of {', '.join(names)}")

    def _check(self, ret: int) -> None:
        if ret != NVML_SUCCESS:
            message = None
            if self._error_string is not None:
                raw = self._error_string(ret)
                message = raw.decode(errors="replace") if raw else None
            raise NVMLError(ret, message)

    # -- the calls the adapter makes ---------------------------------------------------
    def nvmlInit(self) -> None:
        init = self._symbol("nvmlInit_v2") or self._symbol("nvmlInit")
        if init is not None:
            self._check(init())
            return
        self._check(self._first("nvmlInitWithFlags")(ctypes.c_uint(0)))

    def nvmlShutdown(self) -> None:
        self._check(self._first("nvmlShutdown")())

    def nvmlDeviceGetCount(self) -> int:
        count = ctypes.c_uint(0)
        self._check(self._first("nvmlDeviceGetCount_v2", "nvmlDeviceGetCount")(
            ctypes.byref(count)))
        return count.value

    def nvmlDeviceGetHandleByIndex(self, index: int) -> ctypes.c_void_p:
        handle = ctypes.c_void_p()
        self._check(self._first("nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex")(
            ctypes.c_uint(index), ctypes.byref(handle)))
        return handle

    def nvmlDeviceGetName(self, handle: ctypes.c_void_p) -> str:
        buf = ctypes.create_string_buffer(NVML_DEVICE_NAME_BUFFER_SIZE)
        self._check(self._first("nvmlDeviceGetName")(handle, buf,
                                                      ctypes.c_uint(len(buf))))
        return buf.value.decode(errors="replace")

    def nvmlDeviceGetUtilizationRates(self, handle: ctypes.c_void_p) -> NvmlUtilization:
        util = NvmlUtilization()
        self._check(self._first("nvmlDeviceGetUtilizationRates")(handle, ctypes.byref(util)))
        return util

    def nvmlDeviceGetMemoryInfo(self, handle: ctypes.c_void_p) -> NvmlMemory:
        mem = NvmlMemory()
        self._check(self._first("nvmlDeviceGetMemoryInfo")(handle, ctypes.byref(mem)))
        return mem

    def _uint(self, name: str, handle: ctypes.c_void_p, *args: int) -> int:
        value = ctypes.c_uint(0)
        self._check(self._first(name)(handle, *[ctypes.c_uint(a) for a in args],
                                      ctypes.byref(value)))
        return value.value

    def _ulonglong(self, name: str, handle: ctypes.c_void_p) -> int:
        value = ctypes.c_ulonglong(0)
        self._check(self._first(name)(handle, ctypes.byref(value)))
        return value.value

    def nvmlDeviceGetPowerUsage(self, handle: ctypes.c_void_p) -> int:
        """Milliwatts."""
        return self._uint("nvmlDeviceGetPowerUsage", handle)

    def nvmlDeviceGetTemperature(self, handle: ctypes.c_void_p, sensor: int) -> int:
        return self._uint("nvmlDeviceGetTemperature", handle, sensor)

    def nvmlDeviceGetClockInfo(self, handle: ctypes.c_void_p, clock: int) -> int:
        """MHz."""
        return self._uint("nvmlDeviceGetClockInfo", handle, clock)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: ctypes.c_void_p) -> int:
        """Millijoules since the driver loaded."""
        return self._ulonglong("nvmlDeviceGetTotalEnergyConsumption", handle)

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: ctypes.c_void_p) -> int:
        return self._ulonglong("nvmlDeviceGetCurrentClocksThrottleReasons", handle)

    def _processes(self, kind: str, handle: ctypes.c_void_p) -> list[ProcessInfo]:
        """NVML's two calls: the count (``Insufficient Size`` when there are processes), then
        the array, sized with room for processes that started in between."""
        base = f"nvmlDeviceGet{kind}RunningProcesses"
        found = next(((fn, struct) for name, struct in (
            (f"{base}_v3", NvmlProcessInfo), (f"{base}_v2", NvmlProcessInfo),
            (base, NvmlProcessInfoV1)) if (fn := self._symbol(name)) is not None), None)
        if found is None:
            raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND, f"{self.path} exports no {base}")
        fn, struct = found
        count = ctypes.c_uint(0)
        ret = fn(handle, ctypes.byref(count), None)
        if ret == NVML_SUCCESS:
            return []
        if ret != NVML_ERROR_INSUFFICIENT_SIZE:
            self._check(ret)
        count.value = count.value * 2 + 5
        infos = (struct * count.value)()
        self._check(fn(handle, ctypes.byref(count), infos))
        return [ProcessInfo(int(infos[i].pid), int(infos[i].usedGpuMemory))
                for i in range(min(count.value, len(infos)))]

    def nvmlDeviceGetComputeRunningProcesses(self, handle: ctypes.c_void_p) -> list[ProcessInfo]:
        return self._processes("Compute", handle)

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: ctypes.c_void_p
                                              ) -> list[ProcessInfo]:
        return self._processes("Graphics", handle)
