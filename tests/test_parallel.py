"""The suite runs in pytest-xdist workers (`invoke test`: -n 2 --dist loadgroup): a fixture that
several tests share (module or session scope) is made once, on one worker, and the Docker tests
run one at a time (tests/conftest.py, pytest_collection_modifyitems).

Checked on a small suite in a fresh pytest with two workers: each fixture records the worker
that made it, each test the worker that ran it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

CONFTEST = '''
import json, os
from pathlib import Path

import pytest

from tests.conftest import pytest_collection_modifyitems  # noqa: F401  (the hook under test)

LOG = Path(os.environ["PARALLEL_LOG"])


def record(**fields):
    fields["worker"] = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with LOG.open("a") as f:
        f.write(json.dumps(fields) + "\\n")


@pytest.fixture(scope="session")
def client():
    record(made="client")
    return "engine"


@pytest.fixture(scope="session")
def built(client):
    record(made="built")
    return "image"


@pytest.fixture(autouse=True, scope="session")
def everywhere():
    return None


@pytest.fixture
def ran(request):
    yield
    record(test=request.node.name)
'''

SHARED = '''
import pytest

from conftest import record


@pytest.fixture(scope="module")
def submission():
    record(made="submission")
    return "run"


@pytest.fixture
def run_copy(submission):
    return submission + "-copy"


@pytest.fixture(scope="module")
def other():
    record(made="other")
    return "other"


def test_a(run_copy, ran): pass
def test_b(run_copy, ran): pass
def test_c(submission, ran): pass
def test_d(run_copy, ran): pass
def test_e(other, ran): pass
def test_f(other, ran): pass
'''

DOCKER_A = '''
def test_build(built, ran): pass
def test_engine(client, ran): pass
'''

DOCKER_B = '''
def test_run(built, ran): pass
def test_pull(client, ran): pass
'''

FREE = "".join(f"def test_free_{i}(ran): pass\n" for i in range(8))


def test_tests_that_share_a_fixture_run_on_one_worker_and_make_it_once(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    for name, text in (("test_shared", SHARED), ("test_docker_a", DOCKER_A),
                       ("test_docker_b", DOCKER_B), ("test_free", FREE)):
        (tmp_path / f"{name}.py").write_text(text)
    log = tmp_path / "log.jsonl"
    env = {**os.environ, "PARALLEL_LOG": str(log), "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-v", "-n", "2", "--dist",
                           "loadgroup", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "18 passed" in proc.stdout, proc.stdout[-3000:]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    made = sorted(r["made"] for r in records if "made" in r)
    # Each shared fixture once (spread over two workers, test_a..d would make it twice).
    assert made == ["built", "client", "other", "submission"], records
    worker = {r["test"]: r["worker"] for r in records if "test" in r}
    assert len(worker) == 18 and set(worker.values()) <= {"gw0", "gw1"}
    assert len({worker[t] for t in ("test_a", "test_b", "test_c", "test_d")}) == 1
    assert len({worker[t] for t in ("test_e", "test_f")}) == 1
    # Every test of the Docker engine, in whichever module, on one worker.
    assert len({worker[t] for t in ("test_build", "test_engine", "test_run",
                                    "test_pull")}) == 1
    # The rest is spread: both workers ran tests.
    assert set(worker.values()) == {"gw0", "gw1"}
    # The groups are named by what they share (xdist shows the name after '@').
    assert "test_shared.py::test_a@test_shared.submission" in proc.stdout, proc.stdout
    assert "test_docker_b.py::test_run@docker" in proc.stdout, proc.stdout
    assert "test_free.py::test_free_0" in proc.stdout and "test_free_0@" not in proc.stdout


def test_ci_runs_the_readme_command_and_it_runs_the_tests_in_parallel():
    """.ci/run runs the Quick start's second command, word for word; `invoke test` runs the
    suite in two workers, grouped (the test above), and lists the slowest tests."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("```", 2)[1]
    commands = [ln for ln in quick.splitlines()[1:] if ln and not ln.startswith("#")]
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
          if ln.startswith("bash scripts/setup.sh")]
    assert ci == [commands[-1]] == ["bash scripts/setup.sh --dev && .venv/bin/invoke lint test"]
    proc = subprocess.run([sys.executable, "-m", "invoke", "test", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--workers" in proc.stdout, proc.stdout + proc.stderr
    import tasks

    class Recorder:
        def run(self, command, **_):
            self.command = command

    recorder = Recorder()
    tasks.test.body(recorder)
    assert "-m pytest -q --durations=40 -n 2" in recorder.command
    tasks.test.body(recorder, workers=0)
    assert "-n 0" in recorder.command
    assert "loadgroup" in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
