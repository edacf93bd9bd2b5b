"""Device backends. cpu runs for real; mlu, corex and jetson are tested against their vendor
APIs faked at the lowest level (a stand-in ``torch_mlu`` package, CoreX's version string, a
real ``nv_tegra_release`` file), so the backend code itself is the real code."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from bench import devices
from bench.devices import BACKENDS, get_backend
from bench.devices.corex import CorexBackend, corex_version
from bench.devices.cuda import CudaBackend
from bench.devices.jetson import JetsonBackend, l4t_release
from bench.errors import UserError
from tests.conftest import ROOT

ISOLATED = ROOT / "tests" / "isolated"


def test_cpu_backend_is_real():
    backend = get_backend("cpu")
    assert backend.device() == torch.device("cpu")
    assert backend.dist_backend == "gloo"
    stats = backend.memory_stats()
    assert stats.total_bytes > stats.free_bytes > 0
    assert stats.peak_allocated_bytes >= stats.allocated_bytes * 0.5
    info = backend.info()
    assert info["vendor"] == "cpu" and info["count"] == 1 and info["name"]
    assert backend.supports_precision("bf16") and not backend.supports_precision("tf32")


def test_auto_detection_falls_back_to_cpu_here():
    assert devices.detect() == "cpu"


def test_unknown_vendor_is_a_user_error():
    with pytest.raises(UserError, match="Unknown vendor 'npu'"):
        get_backend("npu")


def test_mlu_backend_in_a_fresh_interpreter():
    """The stand-in torch_mlu renames torch's PrivateUse1 device to "mlu" for good (as the real
    extension does), so its tests run in their own interpreter and cannot leak into others."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(ISOLATED / "test_mlu_backend.py")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "BENCH_ISOLATED": "1"})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


@pytest.fixture
def corex_torch(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.1.1+corex.4.1.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Iluvatar BI-V150")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)


def test_corex_version_parsing():
    assert corex_version("2.1.1+corex.4.1.0") == "4.1.0"
    assert corex_version("1.13.1+corex.3.2.1") == "3.2.1"
    assert corex_version("2.1.1+cu121") is None


def test_corex_detected_and_cuda_refuses(corex_torch):
    assert CorexBackend.detect().available
    det = CudaBackend.detect()
    assert not det.available and "use vendor corex" in det.reason
    backend = get_backend("corex")
    assert backend.device().type == "cuda"  # CoreX exposes the torch.cuda API
    assert backend.sdk_version() == "CoreX 4.1.0"
    assert backend.telemetry == "ixml"
    assert devices.detect() == "corex"


def test_corex_absent_on_stock_torch():
    assert not CorexBackend.detect().available


TEGRA = "# R35 (release), REVISION: 2.1, GCID: 32413640, BOARD: t186ref, EABI: aarch64, " \
        "DATE: Tue Jan 24 23:38:33 UTC 2023\n"


def test_l4t_release():
    assert l4t_release(TEGRA) == "35.2.1"
    assert l4t_release("garbage") is None


def test_jetson_detected_by_tegra_release(monkeypatch, tmp_path):
    release = tmp_path / "nv_tegra_release"
    release.write_text(TEGRA)
    monkeypatch.setattr("bench.devices.jetson.TEGRA_RELEASE_FILE", release)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Xavier")
    assert JetsonBackend.detect().available
    assert not CudaBackend.detect().available  # a Jetson is not a data-centre GPU
    backend = JetsonBackend()
    assert backend.sdk_version().startswith("L4T 35.2.1")
    assert backend.amp_dtypes() == (torch.float16,)
    assert backend.dist_backend == "gloo"  # no NCCL on Jetson
    assert devices.detect() == "jetson"


def test_every_backend_declares_its_interface():
    for name, cls in BACKENDS.items():
        assert cls.vendor == name
        assert cls.device_type in ("cpu", "cuda", "mlu")
        assert cls.dist_backend in ("gloo", "nccl", "cncl")
        assert cls.telemetry in ("host", "nvml", "cndev", "ixml", "jtop")


def test_fp32_means_fp32_on_cuda_type_devices():
    """cuDNN convolutions default to TF32 on Ampere and later: every run sets the switch."""
    backend = CorexBackend()  # device type cuda; the flags are settable without a GPU
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        state = backend.set_tf32(False)
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert state["cudnn_allow_tf32"] is False
        assert state["float32_matmul_precision"] == "highest"
        state = backend.set_tf32(True)
        assert torch.backends.cudnn.allow_tf32 and state["cuda_matmul_allow_tf32"] is True
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
        torch.set_float32_matmul_precision("highest")
