from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def bench_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "BENCH_WORKLOAD_MODULES": "tests.faulty_workloads"}
    env.update(extra)
    return env


def run_bench(*args: str, cwd: Path = ROOT, timeout: float = 300,
              **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, env=bench_env(**env),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


# tests/isolated/ holds tests that change process-global state (e.g. torch's device names);
# tests/test_devices.py runs them in a fresh interpreter with BENCH_ISOLATED=1.
collect_ignore = [] if os.environ.get("BENCH_ISOLATED") else ["isolated"]


def skip_or_fail(reason: str) -> None:
    """Skip a test whose system tool is missing, except where the tools are required (CI sets
    BENCH_REQUIRE_SYSTEM_TESTS=1): there a missing Docker engine or browser is a failure, so a
    green run always includes the container and browser tests."""
    if os.environ.get("BENCH_REQUIRE_SYSTEM_TESTS") == "1":
        pytest.fail(f"required system test cannot run: {reason}")
    pytest.skip(reason)
