from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def bench_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "BENCH_WORKLOAD_MODULES": "tests.faulty_workloads"}
    env.update(extra)
    return env


def run_bench(*args: str, cwd: Path = ROOT, timeout: float = 300, check_metrics: bool = True,
              **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m bench ARGS``. After a ``run`` with ``--out``, every result it wrote must
    declare its metrics in the catalogue (bench/metrics.yaml): the runs the tests make check
    it for every workload they run (tests/test_metric_catalogue.py checks the fixtures and
    the small suites)."""
    proc = subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd,
                          env=bench_env(**env), capture_output=True, text=True,
                          timeout=timeout)
    if check_metrics and args[:1] == ("run",) and "--out" in args:
        out = Path(cwd) / args[args.index("--out") + 1]
        for path in sorted(out.glob("*.json")) if out.is_dir() else []:
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            missing = undeclared_metrics(doc)
            assert not missing, (f"{path} holds metrics bench/metrics.yaml does not declare: "
                                 f"{missing} (declare each: unit, direction, aggregation)")
    return proc


def metric_names(doc: Any) -> list[str]:
    """Every metric name of a result document, its grid points' too."""
    if not isinstance(doc, dict) or doc.get("kind") != "bench.result":
        return []
    names = list(doc.get("metrics") or {})
    for point in doc.get("points") or []:
        names += list((point or {}).get("metrics") or {})
    return list(dict.fromkeys(names))


def undeclared_metrics(doc: Any) -> list[str]:
    """The metrics of a product workload's result that the catalogue does not declare (a
    tests-only workload, ``test-*``, may report figures of its own)."""
    from bench.metrics import spec_for

    name = ((doc.get("workload") or {}).get("name") or "") if isinstance(doc, dict) else ""
    if name.startswith("test-"):
        return []
    return [m for m in metric_names(doc) if spec_for(m) is None]


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session", autouse=True)
def _own_results_store(tmp_path_factory):
    """`invoke bench` and `invoke audit` add to the results store: in the tests, to a
    throwaway one, never to the checkout's store.duckdb."""
    os.environ["TESTBED_STORE"] = str(tmp_path_factory.mktemp("store") / "session.duckdb")


# tests/isolated/ holds tests that change process-global state (e.g. torch's device names);
# tests/test_devices.py runs them in a fresh interpreter with BENCH_ISOLATED=1.
collect_ignore = [] if os.environ.get("BENCH_ISOLATED") else ["isolated"]


def skip_or_fail(reason: str, module_level: bool = False) -> None:
    """Skip a test whose system tool is missing, except where the tools are required (CI sets
    BENCH_REQUIRE_SYSTEM_TESTS=1): there a missing Docker engine or browser is a failure, so a
    green run always includes the container and browser tests. ``module_level``: called at
    a test module's import (every test of the module skips, or the module fails to load)."""
    if os.environ.get("BENCH_REQUIRE_SYSTEM_TESTS") == "1":
        pytest.fail(f"required system test cannot run: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)


def require_module(name: str, hint: str, module_level: bool = False) -> Any:
    """``name`` imported, or the skip-or-fail rule above (never ``pytest.importorskip``,
    which skips even where the system tests are required)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        skip_or_fail(f"{name} cannot be imported ({exc}); {hint}", module_level)


def require_root(what: str) -> None:
    """Tests of what only root can do (mount a tmpfs, chown): skip-or-fail for anyone else."""
    if os.geteuid() != 0:
        skip_or_fail(f"{what} needs root (CI runs as root)")


@pytest.fixture(scope="session")
def client():
    """The Docker engine (the container tests need a real one; CI starts it)."""
    from testbed.images.engine import connect, engine_available

    ok, why = engine_available()
    if not ok:
        skip_or_fail(f"no Docker engine reachable ({why}); CI starts one (scripts/system-deps.sh)")
    client = connect()
    yield client
    client.close()


@pytest.fixture(scope="session")
def built(client):
    """The cpu image for the current sources: on a fresh machine this is the from-scratch
    build (base with debootstrap, wheelhouse, both stages)."""
    import time

    from testbed.images.build import build_image
    from testbed.images.spec import load_spec

    start = time.monotonic()
    result = build_image(client, load_spec("cpu"), log=lambda line: None)
    print(f"\ncpu image {result.tag}: {'cached' if result.cached else 'built'} in "
          f"{time.monotonic() - start:.1f} s, {result.size_bytes / 1e6:.0f} MB")
    return result
