"""The micro-benchmark arithmetic against numbers worked out by hand (and, for the operator
FLOP counts, against PyTorch's own FLOP counter)."""

from __future__ import annotations

import pytest
import torch

from bench.micro import formulas as f


def test_gemm_flop_and_bytes():
    # 2 x 3 output, 4 terms each: 6 * 4 multiply-adds = 48 FLOP
    assert f.gemm_flop(2, 3, 4) == 48
    # fp16: A 2x4 (8) + B 4x3 (12) read, C 2x3 (6) written = 26 elements * 2 B
    assert f.gemm_bytes(2, 3, 4, 2) == 52
    # int8 in, int32 out: 20 * 1 B + 6 * 4 B
    assert f.gemm_bytes(2, 3, 4, 1, 4) == 44
    # square 8192 bf16: 2 * 8192^3 = 1.0995e12 FLOP; intensity n/3 FLOP/B for 2-byte types
    n = 8192
    assert f.gemm_flop(n, n, n) == 1_099_511_627_776
    assert f.arithmetic_intensity(f.gemm_flop(n, n, n), f.gemm_bytes(n, n, n, 2)) == \
        pytest.approx(n / 3)


def test_linear_counts():
    # x (2, 3) @ W^T (3 -> 4): 8 outputs * 3 terms * 2 = 48 FLOP; backward dx and dW: 96
    assert f.linear_flop(2, 3, 4) == 48
    assert f.linear_flop(2, 3, 4, backward=True) == 96
    # fp32 forward: x 6 + W 12 + y 8 = 26 elements = 104 B
    assert f.linear_bytes(2, 3, 4, 4) == 104
    # backward: dy 8 + x 6 + W 12 read, dx 6 + dW 12 written = 44 elements = 176 B
    assert f.linear_bytes(2, 3, 4, 4, backward=True) == 176


def test_conv_output_size():
    assert f.conv_out_size(56, 5, stride=1, padding=2) == 56  # "same"
    assert f.conv_out_size(4, 3) == 2
    assert f.conv_out_size(7, 3, stride=2, padding=1) == 4
    with pytest.raises(ValueError, match="does not fit"):
        f.conv_out_size(2, 5)


def test_conv_counts():
    # N=1, Cin=2, Cout=3, 4x4, k=3, padding 1 -> 4x4 output: 48 outputs * 18 terms * 2
    assert f.conv2d_flop(1, 2, 3, 4, 4, 3, padding=1) == 1728
    # no padding -> 2x2 output: 12 outputs * 18 * 2
    assert f.conv2d_flop(1, 2, 3, 4, 4, 3) == 432
    assert f.conv2d_flop(1, 2, 3, 4, 4, 3, padding=1, backward=True) == 3456
    # fp32: x 32 + W 54 + y 48 = 134 elements
    assert f.conv2d_bytes(1, 2, 3, 4, 4, 3, 4, padding=1) == 536
    # backward: dy 48 + x 32 + W 54 + dx 32 + dW 54 = 220 elements
    assert f.conv2d_bytes(1, 2, 3, 4, 4, 3, 4, padding=1, backward=True) == 880


def test_rnn_counts():
    # LSTM I=4, H=5: 4 gates * 5 * (4 + 5) = 180 weights; B=2, T=3: 2 * 6 * 180 FLOP
    assert f.rnn_weight_elements("lstm", 4, 5, 1) == 180
    assert f.rnn_flop("lstm", 2, 3, 4, 5) == 2160
    # second layer: input is H: 4 * 5 * 10 = 200 more weights
    assert f.rnn_flop("lstm", 2, 3, 4, 5, layers=2) == 2 * 6 * 380
    assert f.rnn_flop("gru", 2, 3, 4, 5) == 2 * 6 * 135
    assert f.rnn_flop("lstm", 2, 3, 4, 5, backward=True) == 4320
    # fp32: x 24 + W 180 + y 30 = 234 elements
    assert f.rnn_bytes("lstm", 2, 3, 4, 5, 4) == 936
    # backward reads dy 30, x 24, W 180 and writes dx 24, dW 180 = 438 elements
    assert f.rnn_bytes("lstm", 2, 3, 4, 5, 4, backward=True) == 1752
    # two layers, bf16: W = 180 + 200 = 380; 30 + 24 + 380 + 24 + 380 = 838 elements
    assert f.rnn_bytes("lstm", 2, 3, 4, 5, 2, layers=2, backward=True) == 1676
    with pytest.raises(ValueError, match="unknown recurrent cell"):
        f.rnn_gates("transformer")


def test_weight_count_matches_pytorch_layers():
    for cell, module in (("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU),
                         ("rnn_tanh", torch.nn.RNN)):
        layer = module(4, 5, num_layers=2, bias=False)
        assert sum(p.numel() for p in layer.parameters()) == \
            f.rnn_weight_elements(cell, 4, 5, 2)


def _counted_flop(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_operator_flop_matches_pytorch_flop_counter():
    conv = torch.nn.Conv2d(3, 8, 5, padding=2, bias=False)
    x = torch.randn(2, 3, 10, 10, requires_grad=True)
    assert _counted_flop(lambda: conv(x)) == f.conv2d_flop(2, 3, 8, 10, 10, 5, padding=2)
    y = conv(x)
    assert _counted_flop(lambda: y.backward(torch.ones_like(y))) == \
        f.conv2d_flop(2, 3, 8, 10, 10, 5, padding=2, backward=True)

    lin = torch.nn.Linear(6, 7, bias=False)
    x = torch.randn(5, 6, requires_grad=True)
    assert _counted_flop(lambda: lin(x)) == f.linear_flop(5, 6, 7)
    y = lin(x)
    assert _counted_flop(lambda: y.backward(torch.ones_like(y))) == \
        f.linear_flop(5, 6, 7, backward=True)


def test_roofline_and_percentages():
    assert f.arithmetic_intensity(1728, 536) == pytest.approx(3.2239, rel=1e-4)
    assert f.roofline_flop_per_s(2.0, 100.0, 30.0) == 60.0  # memory-bound
    assert f.roofline_flop_per_s(5.0, 100.0, 30.0) == 100.0  # compute-bound
    # the H100 figure: 790 TFLOP/s bf16 of a 989.4 TFLOP/s dense peak
    assert f.pct_of(790e12, 989.4e12) == pytest.approx(79.85, abs=0.01)
    with pytest.raises(ValueError):
        f.pct_of(1.0, 0.0)
    with pytest.raises(ValueError):
        f.arithmetic_intensity(1.0, 0)


def test_plateau_is_the_first_size_near_the_best():
    assert f.plateau_index([1.0, 5.0, 9.6, 10.0, 9.8], 0.05) == 2
    assert f.plateau_index([1.0, 5.0, 9.6, 10.0, 9.8], 0.0) == 3
    assert f.plateau_index([3.0], 0.05) == 0
    with pytest.raises(ValueError):
        f.plateau_index([], 0.05)


def test_copy_bandwidth_conventions():
    # 1 GiB copied in 0.5 s: 2 GiB/s of copy, 4 GiB/s of memory traffic (read + write)
    assert f.copy_bytes_per_s(2**30, 0.5) == 2**31
    assert f.copy_rw_bytes_per_s(2**30, 0.5) == 2**32
    # the H100 figure: ~3.0 TB/s read+write is 89.6 % of 3.35 TB/s
    assert f.pct_of(f.copy_rw_bytes_per_s(1.5e9, 1e-3), 3.35e12) == pytest.approx(89.55, 0.01)


def test_bus_factors_are_the_nccl_tests_ones():
    assert f.bus_factor("all_reduce", 4) == 1.5  # 2 * 3 / 4
    assert f.bus_factor("all_reduce", 8) == 1.75
    assert f.bus_factor("all_reduce", 1) == 0.0
    assert f.bus_factor("all_gather", 4) == 0.75
    assert f.bus_factor("all_to_all", 2) == 0.5
    assert f.bus_factor("broadcast", 8) == 1.0
    assert f.bus_factor("p2p", 2) == 1.0
    with pytest.raises(ValueError, match="unknown collective"):
        f.bus_factor("reduce", 2)
    # 1 GB all_reduce in 10 ms over 8 ranks: algbw 100 GB/s, busbw 175 GB/s
    assert f.algbw_bytes_per_s(10**9, 0.01) == pytest.approx(100e9)
    assert f.busbw_bytes_per_s("all_reduce", 10**9, 0.01, 8) == pytest.approx(175e9)


def test_collective_buffers_split_evenly():
    assert f.collective_elements("all_reduce", 4100, 4, 3) == 1025
    assert f.collective_elements("all_gather", 4100, 4, 3) == 1023  # 1025 rounded to 3
    assert f.collective_elements("all_to_all", 64, 4, 4) == 16
    with pytest.raises(ValueError, match="too small"):
        f.collective_elements("all_to_all", 8, 4, 4)


def test_size_labels():
    assert f.size_label(4096) == "4 KiB"
    assert f.size_label(3 * 2**19) == "1.5 MiB"
    assert f.size_label(2**30) == "1 GiB"
    assert f.size_label(1000) == "1000 B"
