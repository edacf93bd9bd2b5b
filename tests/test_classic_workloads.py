"""The classic workloads run in-process on the CPU: real training steps, inference, items,
the built model's parameter count, both data modes and mixed precision."""

from __future__ import annotations

import math

import pytest

from bench.devices import get_backend
from bench.rules import RunRules
from bench.workloads import WorkloadContext, get_workload
from tests.conftest import FIXTURES
from tests.test_classic_models import SPEC_PARAMETERS

DATA = FIXTURES / "data"
RULES = RunRules(warmup_iters=1, min_iters=2, min_duration_s=0.0, repeats=1)

# Smaller than the small configs where that keeps the test fast; same code paths.
TINY = {
    "resnet": {"batch_size": 2, "image_size": 32},
    "unet": {"batch_size": 1, "image_height": 32, "image_width": 48},
    "bert": {"batch_size": 1, "seq_len": 32},
    "bert-tiny": {"batch_size": 2, "seq_len": 32},
    "lstm": {"batch_size": 2, "seq_len": 16, "gen_len": 5},
}


def build(name: str, mode: str, precision: str = "fp32", **params):
    cls = get_workload(name)
    merged = {**cls.configs["small"], **TINY[name], **params}
    wl = cls(WorkloadContext(get_backend("cpu"), mode, merged, precision, 0, RULES))
    wl.setup()
    return wl


@pytest.mark.parametrize("name", sorted(SPEC_PARAMETERS))
def test_training_takes_real_steps_and_records_the_loss(name):
    wl = build(name, "train")
    assert wl.info()["parameters"] == SPEC_PARAMETERS[name]
    before = [p.detach().clone() for p in wl.model.parameters()][:4]
    items = [wl.step() for _ in range(2)]
    p = wl.params
    per_step = p["batch_size"] * p["seq_len"] if name == "lstm" else p["batch_size"]
    assert items == [per_step] * 2
    losses = wl.series["loss"]
    assert len(losses) == 2 and all(math.isfinite(x) and x > 0 for x in losses)
    after = list(wl.model.parameters())[:4]
    assert any(not b.equal(a.detach()) for b, a in zip(before, after, strict=True))


@pytest.mark.parametrize("name,params", [("bert-tiny", {"lr": 1e-3}), ("lstm", {"lr": 1e-2})])
def test_training_on_a_fixed_batch_lowers_the_loss(name, params):
    wl = build(name, "train", **params)
    for _ in range(5):
        wl.step()
    losses = wl.series["loss"]
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", sorted(SPEC_PARAMETERS))
def test_inference_is_a_batched_forward_without_gradients(name):
    wl = build(name, "infer")
    assert not wl.model.training
    items = wl.step()
    p = wl.params
    assert items == (p["batch_size"] * p["gen_len"] if name == "lstm" else p["batch_size"])
    assert "loss" not in wl.series
    assert all(q.grad is None for q in wl.model.parameters())


def test_lstm_inference_generates_text_and_says_what_an_item_is():
    wl = build("lstm", "infer", data_path=str(DATA / "poems"), prompt_len=2, batch_size=2,
               gen_len=6)
    wl.step()
    info = wl.info()
    assert "generated characters" in info["items"]
    assert len(info["sample_ids"]) == 6
    assert isinstance(info["sample_text"], str)
    assert info["data"]["source"] == "poem-tang-json" and info["data"]["poems"] == 3


def test_measure_reports_items_per_second_and_model_specific_metrics():
    wl = build("bert-tiny", "infer")
    loop = wl.measure()
    assert loop["iterations"] >= 2 and loop["throughput_items_per_s"] > 0
    tokens = loop["metrics"]["tokens_per_s"]
    assert tokens["unit"] == "tokens/s"
    assert tokens["value"] == pytest.approx(loop["throughput_items_per_s"] * 32)


@pytest.mark.parametrize("name,params,source", [
    ("resnet", {"data_path": str(DATA / "imagefolder")}, "imagefolder"),
    ("unet", {"data_path": str(DATA / "carvana")}, "carvana"),
    ("bert-tiny", {"data_path": str(DATA / "squad" / "squad_v2_tiny.json"),
                   "tokenizer_path": str(DATA / "tokenizer")}, "squad-json"),
    ("lstm", {"data_path": str(DATA / "poems")}, "poem-tang-json"),
    ("resnet", {"data": "loader"}, "synthetic (host DataLoader)"),
])
def test_loader_mode_feeds_steps_from_a_dataloader(name, params, source):
    wl = build(name, "train", num_workers=0, **params)
    for _ in range(2):
        wl.step()
    data = wl.info()["data"]
    assert data["mode"] == "loader" and data["source"] == source
    assert len(wl.batches.wait_s) == 2
    loop = {"iterations": 2, "window": {"duration_s": 1.0}}
    metrics = wl.metrics({**loop, "throughput_items_per_s": 1.0})
    assert 0 <= metrics["input_wait_pct"]["value"] <= 100 * sum(wl.batches.wait_s)


def test_synthetic_mode_records_the_shapes_it_used():
    wl = build("unet", "infer")
    assert wl.info()["data"] == {
        "mode": "synthetic", "source": "synthetic (on device)", "path": None, "samples": None,
        "num_workers": None, "shapes": {"images": [1, 3, 32, 48], "masks": [1, 32, 48]},
        "note": "random tensors created on the device once; no input pipeline in the timed "
                "window"}


@pytest.mark.parametrize("name,precision", [("bert-tiny", "fp16"), ("lstm", "bf16")])
def test_mixed_precision_training_uses_autocast_and_loss_scaling(name, precision):
    wl = build(name, "train", precision=precision)
    assert wl.trainer.scaler.is_enabled() == (precision == "fp16")
    wl.step()
    wl.step()
    assert all(math.isfinite(x) for x in wl.series["loss"])
    assert wl.trainer.scaler.is_enabled() is False or wl.trainer.scaler.get_scale() > 0


def test_lstm_without_reduced_precision_kernels_is_unsupported_not_an_error():
    """oneDNN (most CPUs) has no fp16 LSTM: the run must say unsupported at setup."""
    import torch

    from bench.errors import Unsupported

    try:
        with torch.autocast("cpu", dtype=torch.float16):
            torch.nn.LSTM(4, 4)(torch.zeros(1, 1, 4))
    except RuntimeError:
        with pytest.raises(Unsupported, match="refuse an LSTM under fp16 autocast"):
            build("lstm", "train", precision="fp16")
    else:
        pytest.skip("this CPU has fp16 LSTM kernels")


def test_unknown_data_mode_is_a_clear_error():
    from bench.errors import UserError

    with pytest.raises(UserError, match="data='disk' is not one of synthetic, loader"):
        build("lstm", "train", data="disk")


def test_missing_data_path_is_a_clear_error(tmp_path):
    from bench.errors import UserError

    with pytest.raises(UserError, match=r"does not exist.*nothing is downloaded"):
        build("unet", "train", data_path=str(tmp_path / "carvana"))
