"""Ascend backend against a stand-in ``torch_npu`` (the lowest level: the vendor's module).

Run by tests/test_devices.py in a fresh interpreter: importing the stand-in renames torch's
PrivateUse1 device to "npu" for the rest of the process, as the real extension does.
"""

from __future__ import annotations

import sys

import pytest
import torch

from bench import devices
from bench.devices import get_backend
from bench.devices.ascend import AscendBackend, cann_version, driver_version
from tests.conftest import FIXTURES


@pytest.fixture
def fake_torch_npu(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES / "fake_vendor"))
    monkeypatch.delitem(sys.modules, "torch_npu", raising=False)
    monkeypatch.delattr(torch, "npu", raising=False)
    yield
    sys.modules.pop("torch_npu", None)
    if hasattr(torch, "npu"):
        delattr(torch, "npu")


def test_ascend_absent_without_torch_npu():
    det = AscendBackend.detect()
    assert not det.available and "torch_npu is not installed" in det.reason


def test_ascend_backend_against_torch_npu(fake_torch_npu):
    assert AscendBackend.detect().available
    assert devices.detect() == "ascend"  # before plain CUDA and the CPU
    backend = get_backend("ascend")
    import torch_npu

    assert backend.device(3).type == "npu" and backend.device(3).index == 3
    assert backend.dist_backend == "hccl" and backend.telemetry == "dcmi"
    assert backend.visible_devices_env == "ASCEND_RT_VISIBLE_DEVICES"
    backend.synchronize()
    backend.reset_peak_memory()
    assert ("synchronize", None) in torch_npu.calls
    stats = backend.memory_stats()
    assert (stats.allocated_bytes, stats.peak_allocated_bytes, stats.total_bytes) == (
        2048, 6144, torch_npu.TOTAL)
    assert backend.amp_dtypes() == (torch.float16, torch.bfloat16)
    info = backend.info()
    assert info["name"] == "Ascend910B3" and info["count"] == 8
    assert info["sdk_version"].startswith("torch_npu 2.1.0.post10")


def test_fp32_switches_off_hf32_convolutions(fake_torch_npu):
    """CANN converts fp32 convolutions to HF32 by default: fp32 must mean fp32."""
    backend = get_backend("ascend")
    assert torch.npu.conv.allow_hf32 is True  # torch_npu's default
    state = backend.set_tf32(False)
    assert torch.npu.conv.allow_hf32 is False and torch.npu.matmul.allow_hf32 is False
    assert state["npu_conv_allow_hf32"] is False and state["npu_matmul_allow_hf32"] is False
    assert not backend.supports_precision("tf32")  # HF32 is not TF32
    torch.set_float32_matmul_precision("highest")


def test_fp16_only_where_bf16_is_unsupported(fake_torch_npu, monkeypatch):
    get_backend("ascend")
    monkeypatch.setattr(torch.npu, "is_bf16_supported", lambda: False)  # Ascend 910 (A)
    assert AscendBackend().amp_dtypes() == (torch.float16,)
    assert not AscendBackend().supports_precision("bf16")


def test_cann_and_driver_versions_from_their_info_files(tmp_path):
    toolkit = tmp_path / "ascend-toolkit" / "latest"
    (toolkit / "aarch64-linux").mkdir(parents=True)
    (toolkit / "aarch64-linux" / "ascend_toolkit_install.info").write_text(
        "package_name=Ascend-cann-toolkit\nversion=8.0.0\ninnerversion=V100R001C20SPC001\n")
    assert cann_version(str(toolkit)) == "8.0.0"
    assert cann_version(str(tmp_path / "none")) is None
    info = tmp_path / "version.info"
    info.write_text("Version=24.1.rc2\nascendhal_version=7.35.19\n")
    assert driver_version(str(info)) == "24.1.rc2"
    assert driver_version(str(tmp_path / "absent")) is None
