"""The arithmetic of the micro-benchmarks: FLOP and byte counts, bandwidth conventions.

Every function here is pure (numbers in, numbers out) and tested against hand-worked numbers
in tests/test_micro_formulas.py, so a reported TFLOP/s or GB/s can be re-derived by hand from
the parameters in the result.

Conventions (stated once, used everywhere):

- A multiply-add is 2 FLOP (int8: 2 OP), as in every vendor's peak figure.
- Convolution and fully connected layers are counted without bias (the workloads build them
  with ``bias=False``), so the count is the exact multiply-add work of the operator.
- Recurrent layers count the gate matrix products only; the gate nonlinearities and the
  element-wise state updates (well under 1 % of the work for hidden sizes >= 64) are not FLOP
  of the matrix units and are not counted.
- Backward = gradient with respect to the input plus gradient with respect to the weights:
  twice the forward FLOP.
- Bytes are the *compulsory* traffic: every operand read once and every result written once
  (element size x element count). Real kernels move at least this much, so the arithmetic
  intensity FLOP / byte derived from it is an upper bound, the usual roofline convention.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# -- GEMM --------------------------------------------------------------------------------


def gemm_flop(m: int, n: int, k: int) -> int:
    """FLOP of one (m x k) @ (k x n) product: a multiply and an add per term."""
    return 2 * m * n * k


def gemm_bytes(m: int, n: int, k: int, in_bytes: int, out_bytes: int | None = None) -> int:
    """Compulsory traffic of C = A @ B: read A and B, write C (int8 GEMMs write int32)."""
    out = in_bytes if out_bytes is None else out_bytes
    return (m * k + k * n) * in_bytes + m * n * out


# -- fully connected ---------------------------------------------------------------------


def linear_flop(batch: int, in_features: int, out_features: int, backward: bool = False) -> int:
    """y = x W^T with x (batch, in), W (out, in); backward computes dx and dW (2 x forward)."""
    forward = gemm_flop(batch, out_features, in_features)
    return 2 * forward if backward else forward


def linear_bytes(batch: int, in_features: int, out_features: int, elem_bytes: int,
                 backward: bool = False) -> int:
    """Forward reads x, W and writes y; backward reads dy, x, W and writes dx, dW."""
    x, w, y = batch * in_features, in_features * out_features, batch * out_features
    elements = (y + x + w + x + w) if backward else (x + w + y)
    return elements * elem_bytes


# -- convolution -------------------------------------------------------------------------


def conv_out_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                  dilation: int = 1) -> int:
    """Output length of one spatial dimension (PyTorch's formula)."""
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(f"kernel {kernel} does not fit an input of size {size} "
                         f"(padding {padding}, stride {stride})")
    return out


def conv2d_flop(batch: int, in_channels: int, out_channels: int, height: int, width: int,
                kernel: int, stride: int = 1, padding: int = 0, backward: bool = False) -> int:
    """Every output element is a dot product of in_channels * kernel^2 terms."""
    ho = conv_out_size(height, kernel, stride, padding)
    wo = conv_out_size(width, kernel, stride, padding)
    forward = 2 * batch * out_channels * ho * wo * in_channels * kernel * kernel
    return 2 * forward if backward else forward


def conv2d_bytes(batch: int, in_channels: int, out_channels: int, height: int, width: int,
                 kernel: int, elem_bytes: int, stride: int = 1, padding: int = 0,
                 backward: bool = False) -> int:
    """Forward reads x, W and writes y; backward reads dy, x, W and writes dx, dW."""
    ho = conv_out_size(height, kernel, stride, padding)
    wo = conv_out_size(width, kernel, stride, padding)
    x = batch * in_channels * height * width
    w = out_channels * in_channels * kernel * kernel
    y = batch * out_channels * ho * wo
    elements = (y + x + w + x + w) if backward else (x + w + y)
    return elements * elem_bytes


# -- recurrent ---------------------------------------------------------------------------

RNN_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def rnn_gates(cell: str) -> int:
    try:
        return RNN_GATES[cell]
    except KeyError:
        raise ValueError(f"unknown recurrent cell {cell!r}; one of {', '.join(RNN_GATES)}")\
            from None


def rnn_weight_elements(cell: str, input_size: int, hidden_size: int, layers: int) -> int:
    """Gate weights of all layers (no bias): G*H*(I + H) for the first, G*H*2H after."""
    g = rnn_gates(cell)
    total = 0
    for layer in range(layers):
        inp = input_size if layer == 0 else hidden_size
        total += g * hidden_size * (inp + hidden_size)
    return total


def rnn_flop(cell: str, batch: int, seq_len: int, input_size: int, hidden_size: int,
             layers: int = 1, backward: bool = False) -> int:
    """Per step and layer the gates are x W_ih^T + h W_hh^T: 2 * B * G*H * (I + H) FLOP."""
    forward = 2 * batch * seq_len * rnn_weight_elements(cell, input_size, hidden_size, layers)
    return 2 * forward if backward else forward


def rnn_bytes(cell: str, batch: int, seq_len: int, input_size: int, hidden_size: int,
              elem_bytes: int, layers: int = 1, backward: bool = False) -> int:
    """Forward reads the input sequence and the weights and writes the output sequence."""
    x = seq_len * batch * input_size
    w = rnn_weight_elements(cell, input_size, hidden_size, layers)
    y = seq_len * batch * hidden_size
    elements = (y + x + w + x + w) if backward else (x + w + y)
    return elements * elem_bytes


# -- roofline and peaks ------------------------------------------------------------------


def arithmetic_intensity(flop: float, nbytes: float) -> float:
    """FLOP per byte of compulsory traffic: the x coordinate of a roofline point."""
    if nbytes <= 0:
        raise ValueError("byte count must be positive")
    return flop / nbytes


def roofline_flop_per_s(intensity: float, peak_flop_per_s: float,
                        bandwidth_bytes_per_s: float) -> float:
    """The attainable FLOP/s at an arithmetic intensity: min(peak, intensity * bandwidth)."""
    return min(peak_flop_per_s, intensity * bandwidth_bytes_per_s)


def pct_of(value: float, peak: float) -> float:
    """value as a percentage of peak."""
    if peak <= 0:
        raise ValueError("peak must be positive")
    return value / peak * 100.0


def plateau_index(values: Sequence[float], tolerance: float = 0.05) -> int:
    """Index of the first value within ``tolerance`` of the maximum: where a sweep plateaus.

    A GEMM sweep over growing sizes rises until the device is saturated; the first size that
    reaches (1 - tolerance) of the best is the smallest problem that runs at full speed.
    """
    if not values:
        raise ValueError("plateau of an empty sweep")
    if not 0 <= tolerance < 1:
        raise ValueError("tolerance must be in [0, 1)")
    best = max(values)
    return next(i for i, v in enumerate(values) if v >= (1 - tolerance) * best)


# -- memory copies -----------------------------------------------------------------------


def copy_bytes_per_s(nbytes: int, seconds: float) -> float:
    """Bytes copied per second: each byte counted once (the 'memcpy' convention)."""
    return nbytes / seconds


def copy_rw_bytes_per_s(nbytes: int, seconds: float) -> float:
    """Bytes moved through memory per second: each copied byte is read once and written once.

    This is the convention of the memory bandwidth in a datasheet (bus traffic in both
    directions), so it is the figure compared with the spec sheet's peak.
    """
    return 2 * nbytes / seconds


# -- collectives -------------------------------------------------------------------------

COLLECTIVES = ("all_reduce", "all_gather", "all_to_all", "broadcast", "p2p")


def bus_factor(op: str, ranks: int) -> float:
    """Bus bandwidth / algorithm bandwidth, as defined by nccl-tests.

    all_reduce moves 2(n-1)/n of the buffer over each rank's link (reduce-scatter then
    all-gather); all_gather and all_to_all move (n-1)/n of it; broadcast and point-to-point
    move all of it once.
    """
    if ranks < 1:
        raise ValueError("a collective needs at least one rank")
    if op == "all_reduce":
        return 2 * (ranks - 1) / ranks
    if op in ("all_gather", "all_to_all"):
        return (ranks - 1) / ranks
    if op in ("broadcast", "p2p"):
        return 1.0
    raise ValueError(f"unknown collective {op!r}; one of {', '.join(COLLECTIVES)}")


def algbw_bytes_per_s(nbytes: int, seconds: float) -> float:
    """Algorithm bandwidth: the collective's buffer size over its duration."""
    return nbytes / seconds


def busbw_bytes_per_s(op: str, nbytes: int, seconds: float, ranks: int) -> float:
    """Bus bandwidth: algorithm bandwidth times the op's bus factor (comparable to link speed)."""
    return algbw_bytes_per_s(nbytes, seconds) * bus_factor(op, ranks)


def deepspeed_message_bytes(op: str, nbytes: int, ranks: int) -> int:
    """DeepSpeed's message size of a point measured with the nccl-tests size ``nbytes``:
    all_gather's is each rank's input (the output / ranks), every other op's the buffer."""
    return nbytes // ranks if op == "all_gather" else nbytes


def deepspeed_bits_per_s(op: str, message_bytes: int, seconds: float, ranks: int) -> float:
    """Throughput as DeepSpeed's communication benchmark defines it (its ``get_bw``
    algorithm bandwidth), in bit/s: all_reduce 2 x size / time, all_gather world x size /
    time, the others size / time. The evaluation template's A100 table uses it, so a
    measured point compares like for like (4259924984 x 4 B all_reduce in 126.905 ms:
    2148.3 Gbit/s)."""
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    if op == "all_reduce":
        size = 2 * message_bytes
    elif op == "all_gather":
        size = ranks * message_bytes
    elif op in ("all_to_all", "broadcast", "p2p"):
        size = message_bytes
    else:
        raise ValueError(f"unknown collective {op!r}; one of {', '.join(COLLECTIVES)}")
    return size * 8 / seconds


def collective_elements(op: str, nbytes: int, elem_bytes: int, ranks: int) -> int:
    """Elements of the op's buffer, rounded down so that every rank gets a whole share.

    ``nbytes`` is the nccl-tests size: the all_reduce / broadcast / p2p buffer, the all_gather
    *output* (each rank contributes nbytes / n), the all_to_all buffer of each rank (nbytes / n
    to every peer).
    """
    elements = nbytes // elem_bytes
    if op in ("all_gather", "all_to_all"):
        elements -= elements % ranks
    if elements < (ranks if op in ("all_gather", "all_to_all") else 1):
        raise ValueError(f"{nbytes} B is too small for {op} over {ranks} ranks")
    return elements


def size_label(nbytes: int) -> str:
    """4096 -> '4 KiB' (binary prefixes, as the sweeps are powers of two)."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            value = nbytes / scale
            return f"{value:g} {unit}" if value == math.floor(value) else f"{value:.3g} {unit}"
    return f"{nbytes} B"


# -- transformer block -------------------------------------------------------------------


def transformer_block_flop(batch: int, seq_len: int, hidden: int, heads: int, kv_heads: int,
                           head_dim: int, intermediate: int, causal: bool = True,
                           backward: bool = False) -> int:
    """One pre-norm decoder block: q/k/v/o projections, attention, gated MLP (3 matrices).

    Projections: 2·T·hidden·(2·heads + 2·kv_heads)·head_dim with T = batch·seq_len tokens;
    MLP: 2·T·3·hidden·intermediate; attention: QKᵀ and PV, 2·2·batch·heads·seq²·head_dim,
    halved when causal (the work a causal kernel needs: the upper triangle is never computed,
    FlashAttention's convention). Norms, activations, rotary embeddings and softmax are
    element-wise and not counted. Backward = 2 x forward.
    """
    tokens = batch * seq_len
    projections = 2 * tokens * hidden * (2 * heads + 2 * kv_heads) * head_dim
    mlp = 2 * tokens * 3 * hidden * intermediate
    attention = 4 * batch * heads * seq_len * seq_len * head_dim
    if causal:
        attention //= 2
    forward = projections + mlp + attention
    return 2 * forward if backward else forward


def transformer_block_bytes(batch: int, seq_len: int, hidden: int, heads: int, kv_heads: int,
                            head_dim: int, intermediate: int, elem_bytes: int,
                            backward: bool = False) -> int:
    """Compulsory traffic: the block's weights and the activations entering and leaving it
    (forward: weights, x, y; backward: dy, x, weights read, dx and weight gradients written)."""
    weights = (hidden * (2 * heads + 2 * kv_heads) * head_dim + 3 * hidden * intermediate
               + 2 * hidden)
    act = batch * seq_len * hidden
    elements = (act + act + weights + act + weights) if backward else (weights + 2 * act)
    return elements * elem_bytes
