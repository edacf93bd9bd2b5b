"""Workloads by name.

Built-in workloads are the modules of this package (each registers its classes with
``@register`` on import; ``base`` is the interface). ``BENCH_WORKLOAD_MODULES``
(comma-separated module names) adds more, e.g. a vendor's extra workloads or the test suite's
faulty ones; the variable is inherited by the child processes, so they find the same workloads.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

from bench.errors import UserError
from bench.workloads.base import Workload, WorkloadContext, count_parameters


def builtin_modules() -> list[str]:
    return [f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__)
            if m.name != "base" and not m.name.startswith("_")]

_REGISTRY: dict[str, type[Workload]] = {}

__all__ = ["Workload", "WorkloadContext", "all_workloads", "count_parameters", "get_workload",
           "register"]


def register(cls: type[Workload]) -> type[Workload]:
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two workloads are named {cls.name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> None:
    extra = [m.strip() for m in os.environ.get("BENCH_WORKLOAD_MODULES", "").split(",")
             if m.strip()]
    for module in (*builtin_modules(), *extra):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UserError(f"Workload module {module!r} cannot be imported: {exc}.",
                            "Check BENCH_WORKLOAD_MODULES and the package installation.") from exc


def all_workloads() -> dict[str, type[Workload]]:
    _load()
    return dict(sorted(_REGISTRY.items()))


def get_workload(name: str) -> type[Workload]:
    workloads = all_workloads()
    if name not in workloads:
        raise UserError(f"Unknown workload {name!r}.",
                        f"Choose one of: {', '.join(workloads)} (see `python -m bench list`).")
    return workloads[name]
