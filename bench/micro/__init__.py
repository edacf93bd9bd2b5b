"""Helpers of the micro-benchmarks (SPEC sections 6 and 7): formulas, peaks, sweep timing.

The workloads themselves live in ``bench/workloads/`` (``gemm``, ``micro_*``); this package
holds what they share and the torchrun worker of the collectives benchmark.
"""
