"""Cambricon MLU (MLU370 and later) through ``torch_mlu``.

``import torch_mlu`` registers the ``mlu`` device type and the ``torch.mlu`` module, whose API
mirrors ``torch.cuda`` (synchronize, memory statistics, mem_get_info). MLU370 has fp16 but no
bf16 (bf16 arrived with MLU5xx); the collective backend is CNCL. See docs/vendors.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

import torch

from bench.devices.base import Detection, DeviceBackend


class MluBackend(DeviceBackend):
    vendor = "mlu"
    device_type = "mlu"
    dist_backend = "cncl"
    telemetry = "cndev"
    visible_devices_env = "MLU_VISIBLE_DEVICES"
    detect_rank = 10

    @classmethod
    def detect(cls) -> Detection:
        if importlib.util.find_spec("torch_mlu") is None:
            return Detection(False, "torch_mlu is not installed (Cambricon's PyTorch extension)")
        try:
            importlib.import_module("torch_mlu")
        except Exception as exc:
            return Detection(False, f"import torch_mlu failed: {exc}")
        mlu = getattr(torch, "mlu", None)
        if mlu is None or not mlu.is_available():
            return Detection(False, "torch_mlu is installed but sees no MLU device")
        return Detection(True, f"{mlu.device_count()} MLU device(s)")

    def prepare(self) -> None:
        importlib.import_module("torch_mlu")

    def amp_dtypes(self) -> tuple[torch.dtype, ...]:
        mlu = self.module
        bf16 = mlu.is_bf16_supported() if hasattr(mlu, "is_bf16_supported") else (
            self.device_name(0).upper().startswith("MLU5"))
        return (torch.float16, torch.bfloat16) if bf16 else (torch.float16,)

    def sdk_version(self) -> str | None:
        torch_mlu = importlib.import_module("torch_mlu")
        version = getattr(torch_mlu, "__version__", None)
        neuware = os.environ.get("NEUWARE_HOME")
        parts = [f"torch_mlu {version}" if version else None,
                 f"NEUWARE_HOME={neuware}" if neuware else None]
        return ", ".join(p for p in parts if p) or None

    def driver_version(self) -> str | None:
        getter = getattr(self.module, "driver_version", None)
        try:
            return str(getter()) if callable(getter) else None
        except Exception:
            return None
