"""The built-in workloads: each module registers its classes with ``@register`` on import.

The interface and the registry are ``bench.workload`` (a low module); discovery is
``bench.plugins``. The names below are re-exported for the host side and for workload modules
outside this package (``BENCH_WORKLOAD_MODULES``) written against this package; code in
``bench/`` imports them from ``bench.workload``.
"""

from __future__ import annotations

from bench.workload import (
    Workload,
    WorkloadContext,
    all_workloads,
    count_parameters,
    get_workload,
    register,
)

__all__ = ["Workload", "WorkloadContext", "all_workloads", "count_parameters", "get_workload",
           "register"]
