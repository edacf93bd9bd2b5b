from __future__ import annotations

import importlib
import inspect
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


def sigint_as_a_terminal_sends_it() -> None:
    """``preexec_fn`` of a child a test interrupts with SIGINT (Ctrl-C): its default action
    restored. A shell ignores SIGINT in what it starts in the background (`cmd &`, nohup),
    children inherit that, and Python then installs no KeyboardInterrupt handler, so the
    test would only show how the tests were started."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


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


# -- running in parallel (pytest-xdist, `invoke test`: -n 2 --dist loadgroup) ----------------
# Each worker is its own process with its own fixtures, so a module- or session-scoped fixture
# (a submission several audit tests read, the Slurm cluster, the cpu image) would be made once
# per worker that runs one of its tests. Tests that share such a fixture are therefore one
# xdist group, sent whole to one worker: each expensive set-up is made once, as in a serial
# run. The groups are the connected components of "test uses fixture" over the shared
# fixtures defined here (not pytest's own, nor autouse ones that every test has). The Docker
# tests share the engine, the cpu image's build and its wheelhouse under the checkout: they
# all use the session fixture `client`, so they are one group ("docker") and run one at a time.
_SHARED_SCOPES = ("session", "package", "module", "class")


def _shared_fixtures(item: pytest.Item) -> list[Any]:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    manager = item.session._fixturemanager
    autouse = set(manager._getautousenames(item))
    shared = []
    for name in item.fixturenames:
        defs = info.name2fixturedefs.get(name)
        if not defs or name in autouse:
            continue
        fixturedef = defs[-1]  # the definition that applies to this test
        if fixturedef.scope in _SHARED_SCOPES and _ours(fixturedef):
            shared.append(fixturedef)
    return shared


def _ours(fixturedef: Any) -> bool:
    """Defined in a test module or a conftest.py (not by pytest or a plugin)."""
    if fixturedef.baseid:  # a test module's, or a conftest's below the root directory
        return True
    try:
        return Path(inspect.getfile(inspect.unwrap(fixturedef.func))).name == "conftest.py"
    except TypeError:
        return False


def xdist_groups(items: list[pytest.Item]) -> dict[str, str]:
    """{test id: group name} for the tests that share an expensive fixture."""
    parent: dict[Any, Any] = {}

    def find(key: Any) -> Any:
        while parent.setdefault(key, key) is not key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    shared = {item.nodeid: _shared_fixtures(item) for item in items}
    for fixturedefs in shared.values():
        for other in fixturedefs[1:]:
            parent[find(other)] = find(fixturedefs[0])
    members: dict[Any, list[Any]] = {}
    for fixturedefs in shared.values():
        for fixturedef in fixturedefs:
            members.setdefault(find(fixturedef), []).append(fixturedef)
    names = {}
    for root, fixturedefs in members.items():
        argnames = sorted({f.argname for f in fixturedefs})
        module = Path(fixturedefs[0].baseid.split("::")[0]).stem or "conftest"
        names[root] = "docker" if "client" in argnames else f"{module}.{argnames[0]}"
    return {nodeid: names[find(fixturedefs[0])]
            for nodeid, fixturedefs in shared.items() if fixturedefs}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks (--dist loadgroup)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    groups = xdist_groups(items)
    for item in items:
        if item.nodeid in groups:
            item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
    if hasattr(config, "workerinput") and config.getvalue("loadgroup"):
        for item in items:
            _suffix_group(item, groups.get(item.nodeid))


def _suffix_group(item: pytest.Item, group: str | None) -> None:
    """xdist's loadgroup scheduler reads an item's group from its id, ``ID@GROUP``. xdist
    3.8 writes it to ``item._nodeid``, which pytest 9.2 no longer reads (the id is a
    structured NodeId): written here, where xdist's own suffix did not take."""
    if group is None or item.nodeid.endswith("@" + group):
        return
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # pytest before 9.2: xdist's own hook suffixes _nodeid
        return
    item._id = NodeId.parse(f"{item.nodeid}@{group}")
