"""Device backends. cpu runs for real; the others are tested against their vendor APIs faked at
the lowest level (stand-in ``torch_mlu`` / ``torch_npu`` packages, CoreX's version string, a
ROCm build's ``torch.version.hip``, a real ``nv_tegra_release`` file), so the backend code
itself is the real code."""

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
from bench.devices.rocm import RocmBackend, dtk_version
from bench.errors import UserError
from bench.vendors import VENDORS
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


@pytest.mark.parametrize("module", ["test_mlu_backend.py", "test_ascend_backend.py"])
def test_privateuse1_backends_in_a_fresh_interpreter(module):
    """The stand-in torch_mlu / torch_npu rename torch's PrivateUse1 device for good (as the
    real extensions do), so their tests run in their own interpreter and cannot leak."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(ISOLATED / module)], cwd=ROOT,
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
    from bench.telemetry import FALLBACKS

    assert set(BACKENDS) == set(VENDORS) and len(VENDORS) == 7
    for name, cls in BACKENDS.items():
        assert cls.vendor == name
        assert cls.device_type in ("cpu", "cuda", "mlu", "npu")
        assert cls.dist_backend in ("gloo", "nccl", "cncl", "hccl")
        assert cls.telemetry in FALLBACKS, f"{name}: no telemetry chain {cls.telemetry!r}"
    assert devices.DETECTION_ORDER[-1] == "cpu"
    assert devices.DETECTION_ORDER.index("rocm") < devices.DETECTION_ORDER.index("cuda")


def test_a_vendor_module_without_its_backend_is_refused(tmp_path, monkeypatch):
    (tmp_path / "bench_fake_vendor_pkg").mkdir()
    module = tmp_path / "bench_fake_vendor_pkg" / "__init__.py"
    module.write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    monkeypatch.setattr(importlib, "import_module", lambda name: __import__(
        "bench_fake_vendor_pkg"))
    with pytest.raises(TypeError, match="exactly one DeviceBackend subclass"):
        devices.backend_class("tpu")


# -- ROCm (HIP builds of torch), told apart from CUDA, CoreX and Jetson ---------------------
HIP = "6.2.41133-dd7f95766"


def fake_gpu(monkeypatch, *, version="2.13.0", hip=None, name="NVIDIA H100 80GB HBM3",
             integrated=False, count=2, bf16=True):
    monkeypatch.setattr(torch, "__version__", version)
    monkeypatch.setattr(torch.version, "hip", hip)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: name)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda index=0: type("Props", (), {"is_integrated": integrated})())
    total = 196592 * 2**20
    for fn, value in (("memory_allocated", 1024), ("max_memory_allocated", 4096),
                      ("memory_reserved", 8192), ("mem_get_info", (total - 8192, total))):
        monkeypatch.setattr(torch.cuda, fn, lambda index=0, v=value: v)


ENVIRONMENTS = {
    "cuda": {},
    "rocm": {"version": "2.4.0+rocm6.2", "hip": HIP, "name": "AMD Instinct MI300X"},
    "rocm-mi250x": {"version": "2.3.0a0+gitd2f9472", "hip": HIP, "name": "AMD Instinct MI250X"},
    "rocm-hygon": {"version": "2.1.0+das.opt1.dtk24041", "hip": "5.7.24164", "name": "K100_AI"},
    "rocm-apu": {"version": "2.5.0+rocm6.2", "hip": HIP, "name": "AMD Radeon Graphics",
                 "integrated": True},
    "corex": {"version": "2.1.1+corex.4.1.0", "name": "Iluvatar BI-V150"},
    "corex-name-only": {"name": "Iluvatar MR-V100"},
}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_detection_picks_exactly_one_vendor(env, monkeypatch, tmp_path):
    """In each faked environment exactly one accelerator backend answers, so `auto` can never
    confuse ROCm with CUDA or CoreX, whatever the detection order."""
    monkeypatch.setattr("bench.devices.jetson.TEGRA_RELEASE_FILE", tmp_path / "absent")
    fake_gpu(monkeypatch, **ENVIRONMENTS[env])
    expected = env.split("-")[0]
    available = [v for v, cls in BACKENDS.items() if v != "cpu" and cls.detect().available]
    assert available == [expected]
    assert devices.detect() == expected


def test_cuda_and_corex_refuse_a_rocm_build_by_name(monkeypatch):
    fake_gpu(monkeypatch, **ENVIRONMENTS["rocm"])
    det = CudaBackend.detect()
    assert not det.available and "use vendor rocm" in det.reason and HIP in det.reason
    assert "ROCm (HIP) build" in CorexBackend.detect().reason
    assert "ROCm (HIP) build" in JetsonBackend.detect().reason


def test_rocm_backend_on_a_hip_build(monkeypatch):
    fake_gpu(monkeypatch, **ENVIRONMENTS["rocm"])
    backend = get_backend("rocm")
    assert backend.device().type == "cuda"  # HIP answers the torch.cuda API
    assert backend.dist_backend == "nccl"  # RCCL under the nccl name
    assert backend.telemetry == "amdsmi"
    assert backend.visible_devices_env == "HIP_VISIBLE_DEVICES"
    assert backend.sdk_version() == f"HIP {HIP}"
    assert backend.amp_dtypes() == (torch.float16, torch.bfloat16)
    assert not backend.supports_precision("tf32")
    info = backend.info()
    assert info["name"] == "AMD Instinct MI300X" and info["count"] == 2
    assert info["memory_total_bytes"] == 196592 * 2**20
    assert backend.is_oom(torch.cuda.OutOfMemoryError("HIP out of memory"))


def test_rocm_absent_on_stock_and_on_a_gpu_less_hip_build(monkeypatch):
    assert "not a ROCm (HIP) build" in RocmBackend.detect().reason
    monkeypatch.setattr(torch.version, "hip", HIP)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "sees no GPU" in RocmBackend.detect().reason


def test_hygon_dtk_version():
    assert dtk_version("2.1.0+das.opt1.dtk24041") == "24.04.1"
    assert dtk_version("2.1.0+git2dc3b1d.abi0.dtk2404") == "24.04"
    assert dtk_version("2.4.0+rocm6.2") is None


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
