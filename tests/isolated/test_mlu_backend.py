"""MLU backend against a stand-in ``torch_mlu`` (the lowest level: the vendor's module).

Run by tests/test_devices.py in a fresh interpreter: importing the stand-in renames torch's
PrivateUse1 device to "mlu" for the rest of the process, as the real extension does.
"""

from __future__ import annotations

import sys

import pytest
import torch

from bench import devices
from bench.devices import get_backend
from bench.devices.mlu import MluBackend
from tests.conftest import FIXTURES


@pytest.fixture
def fake_torch_mlu(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES / "fake_vendor"))
    monkeypatch.delitem(sys.modules, "torch_mlu", raising=False)
    monkeypatch.delattr(torch, "mlu", raising=False)
    yield
    sys.modules.pop("torch_mlu", None)
    if hasattr(torch, "mlu"):
        delattr(torch, "mlu")


def test_mlu_absent_without_torch_mlu():
    det = MluBackend.detect()
    assert not det.available and "torch_mlu is not installed" in det.reason


def test_mlu_backend_against_torch_mlu(fake_torch_mlu):
    assert MluBackend.detect().available
    backend = get_backend("mlu")
    import torch_mlu

    assert backend.device(1).type == "mlu" and backend.device(1).index == 1
    assert backend.dist_backend == "cncl"
    assert backend.visible_devices_env == "MLU_VISIBLE_DEVICES"
    backend.synchronize()
    backend.reset_peak_memory()
    assert ("synchronize", None) in torch_mlu.calls
    stats = backend.memory_stats()
    assert (stats.allocated_bytes, stats.peak_allocated_bytes, stats.total_bytes) == (
        1024, 4096, torch_mlu.TOTAL)
    # MLU370: fp16 only (bf16 arrived with MLU5xx)
    assert backend.amp_dtypes() == (torch.float16,)
    assert not backend.supports_precision("bf16")
    info = backend.info()
    assert info["name"] == "MLU370-X8" and info["count"] == 2
    assert info["sdk_version"].startswith("torch_mlu 1.20.0")
    # detection order puts the vendor stack before plain CUDA and the CPU
    assert devices.detect() == "mlu"


def test_mlu5_has_bf16(fake_torch_mlu, monkeypatch):
    get_backend("mlu")
    monkeypatch.setattr(torch.mlu, "get_device_name", lambda index=0: "MLU590-M9")
    assert torch.bfloat16 in MluBackend().amp_dtypes()


