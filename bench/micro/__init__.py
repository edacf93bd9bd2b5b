"""Helpers of the micro-benchmarks (docs/micro.md): formulas, peaks, sweep timing.

The workloads themselves live in ``bench/workloads/`` (``gemm``, ``micro_*``); this package
holds what they share and the torchrun worker of the collectives benchmark.
"""
