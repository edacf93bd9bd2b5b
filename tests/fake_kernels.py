"""Test-only: a faulty device at the lowest level, by replacing ATen CPU kernels.

Imported through ``BENCH_WORKLOAD_MODULES`` (the processes a run starts import it, as a
vendor's plugin would be), it registers, with ``torch.library``, CPU kernels for a few
operators that misbehave on the device side only: every dtype but float64, the dtype the
CPU reference computes in (there they compute the right result through other operators).
``BENCH_FAKE_KERNELS`` chooses the faults, e.g. ``wrong=gelu,raise=silu,crash=hardswish,
fallback=mish``:

- ``wrong``: the right result times 1.1 (a planted wrong operator);
- ``raise``: NotImplementedError, as a build without the kernel for that dtype;
- ``crash``: the process dies of SIGSEGV;
- ``fallback``: the right result, with the warning a vendor build gives when it runs an
  operator on the host.
"""

from __future__ import annotations

import math
import os
import signal
import warnings

import torch

REFERENCE_DTYPE = torch.float64

# The right result of each operator through other operators (so the kernel can be replaced).
EXACT = {
    "gelu": lambda x, approximate="none": x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0))),
    "silu": lambda x: x * torch.sigmoid(x),
    "hardswish": lambda x: x * torch.clamp(x + 3.0, 0.0, 6.0) / 6.0,
    "mish": lambda x: x * torch.tanh(torch.nn.functional.softplus(x)),
}


def _kernel(op: str, fault: str):
    exact = EXACT[op]

    def kernel(x, *args, **kwargs):
        result = exact(x, *args, **kwargs)
        if x.dtype == REFERENCE_DTYPE:
            return result
        if fault == "wrong":
            return result * 1.1
        if fault == "raise":
            raise NotImplementedError(f'"{op}" not implemented for {x.dtype} on this device')
        if fault == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if fault == "fallback":
            warnings.warn(f"The operator 'aten::{op}' is not currently supported on the "
                          "device and will fall back to run on the CPU.", stacklevel=2)
            return result
        raise ValueError(f"unknown fault {fault!r}")
    return kernel


def install(spec: str) -> torch.library.Library | None:
    if not spec:
        return None
    lib = torch.library.Library("aten", "IMPL")
    for item in spec.split(","):
        fault, _, op = item.partition("=")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "overriding a previously registered kernel"
            lib.impl(op, _kernel(op, fault), "CPU")
    return lib


_LIBRARY = install(os.environ.get("BENCH_FAKE_KERNELS", ""))
