"""FLOPs per item (bench.flops): counts against figures worked out by hand, and the metrics a
throughput makes of them."""

from __future__ import annotations

import pytest

from bench.flops import WorkCount, count_work, mfu_pct, work_metrics
from bench.micro.peaks import DevicePeaks
from bench.specs import find_spec
from bench.workloads import get_workload


def count(name: str, mode: str, params: dict, precision: str = "fp32") -> WorkCount:
    cls = get_workload(name)
    result = count_work(lambda: cls.work_probe(mode, params, precision, {}))
    assert result is not None and result.reason is None, result
    return result


def conv_macs(side: int, out_ch: int, k: int, in_ch: int) -> int:
    return side * side * out_ch * k * k * in_ch


def test_resnet34_inference_is_3_66_g_mac_per_224_image():
    # Worked by hand, layer by layer (convolutions and the 100-class head; batch norm,
    # ReLU, pooling and the residual additions are not matrix work):
    macs = (conv_macs(112, 64, 7, 3)                                       # conv1
            + 6 * conv_macs(56, 64, 3, 64)                                 # layer1
            + conv_macs(28, 128, 3, 64) + 7 * conv_macs(28, 128, 3, 128)   # layer2
            + conv_macs(28, 128, 1, 64)                                    #   downsample
            + conv_macs(14, 256, 3, 128) + 11 * conv_macs(14, 256, 3, 256)  # layer3
            + conv_macs(14, 256, 1, 128)
            + conv_macs(7, 512, 3, 256) + 5 * conv_macs(7, 512, 3, 512)    # layer4
            + conv_macs(7, 512, 1, 256)
            + 512 * 100)                                                   # fc
    assert macs == 3_663_300_608  # the "3.6 G multiply-accumulates" usually quoted
    params = {**get_workload("resnet").configs["full"], "batch_size": 4}
    assert count("resnet", "infer", params).flop_per_item == 2 * macs  # 7.33 GFLOP


def test_training_counts_forward_and_backward():
    # Backward = input gradient + weight gradient, each the forward's work, except that the
    # first convolution needs no gradient for the input images.
    params = {**get_workload("resnet").configs["full"], "batch_size": 2}
    forward = count("resnet", "infer", params).flop_per_item
    conv1 = 2 * conv_macs(112, 64, 7, 3)
    assert count("resnet", "train", params).flop_per_item == 3 * forward - conv1


def test_bert_base_inference_per_384_token_sequence():
    hidden, inner, layers, seq = 768, 3072, 12, 384
    per_layer = (2 * seq * hidden * 3 * hidden      # Q, K, V projections
                 + 2 * seq * seq * hidden * 2       # scores Q K^T and scores x V
                 + 2 * seq * hidden * hidden        # attention output projection
                 + 2 * seq * hidden * inner * 2)    # feed-forward up and down
    qa_head = 2 * seq * hidden * 2                  # start and end logits
    expected = layers * per_layer + qa_head
    assert expected == 70_666_813_440               # 70.7 GFLOP, ~2 x 110 M params x 384
    params = {**get_workload("bert").configs["full"], "batch_size": 2}
    assert count("bert", "infer", params).flop_per_item == expected


def test_lstm_counts_every_time_step_on_the_meta_device():
    # On the CPU (and with cuDNN) the fused LSTM kernel hides its FLOPs from the counter;
    # on the meta device it decomposes into its gate products, so every step counts.
    p = get_workload("lstm").configs["small"]
    b, t = p["batch_size"], p["seq_len"]
    gates = 4 * 256 * (128 + 256) * 2 + 2 * (4 * 256 * (256 + 256) * 2)  # 3 layers, per step
    head = 2 * 256 * 4845
    forward = b * t * (gates + head)
    result = count("lstm", "train", p)
    assert result.flop_per_item > 2.5 * forward / (b * t)  # forward + backward
    prompt, gen = p["prompt_len"], p["gen_len"]
    steps = prompt + gen - 1  # the prompt in one pass, then one character at a time
    assert count("lstm", "infer", p).flop_per_item == b * steps * (gates + head) / (b * gen)


def test_llm_records_the_weight_traffic_of_a_decode_step():
    cls = get_workload("qwen2-0.5b")
    params = cls.configs["small"]
    result = count("qwen2-0.5b", "infer", params, "bf16")
    assert result.flop_per_item > 0
    # bf16: 2 bytes per weight, read once per step for the whole batch (reference batch 1)
    assert result.bytes_per_item is not None and result.bytes_per_item % 2 == 0


def test_workloads_without_a_probe_get_no_flop_metrics():
    assert count_work(lambda: None) is None
    peaks = DevicePeaks.from_spec(None, "cpu", "cpu")
    assert work_metrics({}, None, [1.0], "images", peaks, "fp32") == {}


def test_work_metrics_against_the_spec_sheet():
    spec = find_spec("NVIDIA A100-SXM4-80GB", "cuda")
    peaks = DevicePeaks.from_spec(spec, "NVIDIA A100-SXM4-80GB", "cuda")
    counted = WorkCount(7.326601216e9, method="counted")
    out = work_metrics({}, counted, [1000.0, 1200.0], "images", peaks, "fp32")
    assert out["flop_per_item"]["value"] == 7.326601216e9
    assert out["flop_per_item"]["unit"] == "FLOP/images"
    assert out["flop_per_s"]["per_repeat"] == pytest.approx([7.326601216e12, 8.7919214592e12])
    # 7.33 TFLOP/s of the A100's 19.5 TFLOP/s fp32 peak is 37.6 %
    assert out["mfu_pct"]["per_repeat"][0] == pytest.approx(37.5723, rel=1e-5)
    assert mfu_pct(19.5e12, 19.5e12) == 100.0


def test_a_workloads_own_figure_wins():
    peaks = DevicePeaks.from_spec(find_spec("NVIDIA A100-SXM4-80GB", "cuda"), "A100", "cuda")
    own = {"flop_per_item": {"value": 6e9, "unit": "FLOP/tokens"},
           "mfu_pct": {"value": 41.0, "unit": "%"}}
    out = work_metrics(own, None, [100.0], "tokens", peaks, "bf16")
    assert "flop_per_item" not in out and "mfu_pct" not in out  # kept as reported
    assert out["flop_per_s"]["value"] == 6e11


def test_no_peak_gives_a_null_mfu_with_the_reason():
    peaks = DevicePeaks.from_spec(None, "AMD EPYC", "cpu")
    out = work_metrics({}, WorkCount(1e9, method="m"), [2.0], "images", peaks, "fp32")
    assert out["flop_per_s"]["value"] == 2e9
    assert out["mfu_pct"]["value"] is None and "no spec sheet" in out["mfu_pct"]["reason"]


def test_a_model_that_cannot_run_on_meta_gets_a_reason_not_an_error():
    def probe():
        raise RuntimeError("Tensor.item() cannot be called on meta tensors")

    result = count_work(probe)
    assert result is not None and result.flop_per_item is None
    assert "meta device" in result.reason and "item()" in result.reason
