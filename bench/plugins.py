"""Which modules hold workloads, and importing them: the registry's discovery.

The built-in workloads are the modules of ``bench/workloads/``, listed by path (no import
until asked; ``_``-prefixed modules are shared pieces, not workloads). ``BENCH_WORKLOAD_MODULES``
(comma-separated module names) adds more: a vendor's extra workloads, the test suite's faulty
ones. The variable is inherited by child processes, so they find the same workloads; a
process that only needs what those modules register at import (the operator-function worker:
kernels a vendor's extension adds) imports them here without the workload registry.

A leaf: it names the workload modules as strings and imports them by name, so nothing below
the workloads imports them statically (docs/architecture.md, "The layers").
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path

from bench.errors import UserError

WORKLOADS_PACKAGE = "bench.workloads"
WORKLOADS_DIR = Path(__file__).resolve().parent / "workloads"
ENV = "BENCH_WORKLOAD_MODULES"


def builtin_workload_modules() -> list[str]:
    """The built-in workload modules, by name, A-Z."""
    return [f"{WORKLOADS_PACKAGE}.{m.name}" for m in pkgutil.iter_modules([str(WORKLOADS_DIR)])
            if not m.name.startswith("_")]


def extra_workload_modules() -> list[str]:
    """The modules ``BENCH_WORKLOAD_MODULES`` names, in its order."""
    return [m.strip() for m in os.environ.get(ENV, "").split(",") if m.strip()]


def import_workload_modules() -> None:
    """Import every workload module (each registers its classes with ``@register``)."""
    for module in (*builtin_workload_modules(), *extra_workload_modules()):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UserError(f"Workload module {module!r} cannot be imported: {exc}.",
                            f"Check {ENV} and the package installation.") from exc
