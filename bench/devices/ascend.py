"""Huawei Ascend NPUs (Ascend 910, 910B; Atlas cards) through ``torch_npu``.

``import torch_npu`` registers the ``npu`` device type and ``torch.npu``, whose API mirrors
``torch.cuda`` (synchronize, memory statistics, mem_get_info, events); collectives use HCCL.
CANN's environment (``set_env.sh``) must be sourced before Python starts: the image's entry
point does it. Ascend has no TF32; its reduced float32 format is HF32, which CANN enables by
default for convolutions (``torch.npu.conv.allow_hf32``), so ``fp32`` switches it off.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

import torch

from bench.devices.base import Detection, DeviceBackend
from bench.documents import Info

ASCEND_HOME = "/usr/local/Ascend"


class AscendBackend(DeviceBackend):
    vendor = "ascend"
    device_type = "npu"
    dist_backend = "hccl"
    telemetry = "dcmi"
    visible_devices_env = "ASCEND_RT_VISIBLE_DEVICES"
    detect_rank = 10

    @classmethod
    def detect(cls) -> Detection:
        if importlib.util.find_spec("torch_npu") is None:
            return Detection(False, "torch_npu is not installed (Huawei's PyTorch extension "
                                    "for Ascend)")
        try:
            importlib.import_module("torch_npu")
        except Exception as exc:  # a CANN library missing, set_env.sh not sourced, ...
            return Detection(False, f"import torch_npu failed: {exc} (is CANN's "
                                    "set_env.sh sourced?)")
        npu = getattr(torch, "npu", None)
        if npu is None or not npu.is_available():
            return Detection(False, "torch_npu is installed but sees no NPU")
        return Detection(True, f"{npu.device_count()} Ascend NPU(s)")

    def prepare(self) -> None:
        importlib.import_module("torch_npu")

    def amp_dtypes(self) -> tuple[torch.dtype, ...]:
        """fp16 everywhere; bf16 on 910B and later (torch_npu answers is_bf16_supported)."""
        npu = self.module
        bf16 = npu.is_bf16_supported() if hasattr(npu, "is_bf16_supported") else False
        return (torch.float16, torch.bfloat16) if bf16 else (torch.float16,)

    def supports_tf32(self) -> bool:
        return False  # HF32 is another format: a "tf32" result would not be comparable

    def set_tf32(self, enabled: bool) -> Info:
        state = super().set_tf32(enabled)
        npu = self.module
        for part in ("matmul", "conv"):
            switch = getattr(npu, part, None)
            if switch is not None and hasattr(switch, "allow_hf32"):
                switch.allow_hf32 = enabled
                state[f"npu_{part}_allow_hf32"] = enabled
        return state

    def sdk_version(self) -> str | None:
        torch_npu = importlib.import_module("torch_npu")
        version = getattr(torch_npu, "__version__", None)
        cann = cann_version(os.environ.get("ASCEND_TOOLKIT_HOME")
                            or f"{ASCEND_HOME}/ascend-toolkit/latest")
        parts = [f"torch_npu {version}" if version else None, f"CANN {cann}" if cann else None]
        return ", ".join(p for p in parts if p) or None

    def driver_version(self) -> str | None:
        return driver_version(f"{ASCEND_HOME}/driver/version.info")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def key_value(text: str | None, key: str) -> str | None:
    """``key=value`` (or ``key: value``) from an Ascend info file; None when absent."""
    for line in (text or "").splitlines():
        for sep in ("=", ":"):
            name, found, value = line.partition(sep)
            if found and name.strip() == key and value.strip():
                return value.strip()
    return None


def cann_version(toolkit_home: str) -> str | None:
    """The toolkit's version from ``<toolkit>/<arch>-linux/ascend_toolkit_install.info``
    (``version=8.0.0``) or ``<toolkit>/version.cfg`` [unverified layout across CANN releases]."""
    for name in ("aarch64-linux/ascend_toolkit_install.info",
                 "x86_64-linux/ascend_toolkit_install.info", "version.cfg"):
        found = key_value(_read(os.path.join(toolkit_home, name)), "version")
        if found:
            return found
    return None


def driver_version(path: str) -> str | None:
    """``Version=24.1.rc2`` from the driver's ``version.info`` (mounted into the image)."""
    return key_value(_read(path), "Version")
