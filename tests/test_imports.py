"""No import circles in bench/ (the package every image and node runs), lazy imports included,
and the layers of docs/architecture.md hold.

A circle that only works because one side imports inside a function (the suite loader and the
workloads once did) breaks the day someone moves that import to the top. So every import
counts here: at module level, inside functions, under ``TYPE_CHECKING``, and
``importlib.import_module`` with a literal name. The graph is checked between modules and
between bench's units (a top-level module or a subpackage: ``bench/llm/`` is ``llm``), against
the layers that pyproject.toml gives ``lint-imports`` and docs/architecture.md draws.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the layers are read by the 3.11 runs
    tomllib = None  # type: ignore[assignment]


def module_names(root: Path, package: str) -> dict[str, Path]:
    out = {}
    for path in (root / package).rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imported_names(path: Path, package: list[str]) -> list[tuple[str, int]]:
    """Every module name ``path`` imports, anywhere in the file, with its line: both
    ``from a import b`` readings (a, a.b), relative imports resolved against ``package``, and
    ``importlib.import_module("literal")``."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            found += [(base, node.lineno), *((f"{base}.{a.name}", node.lineno)
                                             for a in node.names)]
        elif isinstance(node, ast.Call) and node.args and \
                isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "import_module":
                found.append((node.args[0].value, node.lineno))
    return found


def import_sites(name: str, path: Path, known: dict[str, Path]) -> dict[str, list[int]]:
    """The project modules ``name`` imports, with the lines that do (a package it lives in is
    already imported when it runs, so that is no edge)."""
    targets: dict[str, list[int]] = defaultdict(list)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for target, line in imported_names(path, package):
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name and not name.startswith(target + ".") and \
                line not in targets[target]:
            targets[target].append(line)
    return dict(targets)


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    return set(import_sites(name, path, known))


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def unit_of(module: str) -> str:
    """bench.llm.grid -> llm, bench.config -> config, bench -> bench."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def unit_graph(package: str) -> dict[str, dict[str, list[str]]]:
    """unit -> unit it imports -> the import sites (``path:line``), every import counted."""
    known = module_names(ROOT, package)
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, path in sorted(known.items()):
        for target, lines in sorted(import_sites(name, path, known).items()):
            a, b = unit_of(name), unit_of(target)
            if a != b:
                where = path.relative_to(ROOT).as_posix()
                sites = graph[a][b]
                sites += [site for line in lines
                          if (site := f"{where}:{line}") not in sites]
    # every unit is a node, importing or not
    return {unit: dict(graph.get(unit, {})) for unit in sorted({unit_of(n) for n in known})}


def explain(found: list[list[str]], graph: dict[str, dict[str, list[str]]]) -> str:
    lines = []
    for circle in found:
        lines.append(f"circle: {' '.join(circle)}")
        lines += [f"  {a} -> {b}: {', '.join(graph[a][b])}" for a in circle
                  for b in sorted(graph[a]) if b in circle]
    return "\n".join(lines)


def test_the_checker_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_graph_counts_imports_inside_functions_and_literal_import_module(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    for name in ("__init__.py", "sub/__init__.py", "sub/b.py", "c.py"):
        (pkg / name).write_text("", encoding="utf-8")
    (pkg / "a.py").write_text("import importlib\n\ndef f():\n    from pkg.sub import b\n"
                              "    return importlib.import_module('pkg.c')\n", encoding="utf-8")
    known = module_names(tmp_path, "pkg")
    assert import_sites("pkg.a", pkg / "a.py", known) == {"pkg.sub": [4], "pkg.sub.b": [4],
                                                          "pkg.c": [5]}


def test_bench_has_no_import_circle():
    known = module_names(ROOT, "bench")
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert circles(graph) == []
    # the one this test was written for: workloads import the run rules, not the suite loader
    assert "bench.config" not in graph["bench.workload"]
    assert "bench.config" not in graph["bench.timing"]


def test_bench_units_have_no_import_circle():
    """Between bench's units (``llm``, ``workloads``, ``config``, ...) too: eleven of them once
    formed one circle through imports inside functions (the suite loader, the LLM trainer's
    borrowed helpers, the telemetry overhead tool, the function catalogue's tracer)."""
    graph = unit_graph("bench")
    found = circles({a: set(targets) for a, targets in graph.items()})
    assert found == [], explain(found, graph)


def layer_contract(container: str) -> list[tuple[list[str], bool]]:
    """The layers contract for ``container`` in pyproject.toml, top first: each layer's units
    and whether they are independent (``|``: they do not import each other) or not (``:``)."""
    if tomllib is None:
        pytest.skip("reading pyproject.toml needs Python 3.11 (tomllib)")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    [contract] = [c for c in config["tool"]["importlinter"]["contracts"]
                  if c["type"] == "layers" and c.get("containers") == [container]]
    assert contract.get("exhaustive") is True  # a new unit must be given its place
    return [([u.strip() for u in re.split(r"[|:]", layer)], ":" not in layer)
            for layer in contract["layers"]]


@pytest.mark.parametrize("package", ["bench", "testbed"])
def test_every_import_goes_down_the_layers(package):
    """What ``lint-imports`` checks (grimp), from the source, literal ``import_module`` calls
    included: a unit imports only units in lower layers, never an independent sibling."""
    layers = layer_contract(package)
    rank = {unit: i for i, (units, _) in enumerate(layers) for unit in units}
    independent = {unit: alone for units, alone in layers for unit in units}
    graph = unit_graph(package)
    assert sorted(set(graph) - {package}) == sorted(rank), "pyproject.toml's layers must " \
        f"name every unit of {package} once"
    wrong = [f"{a} -> {b}: {', '.join(sites)}" for a, targets in sorted(graph.items())
             for b, sites in sorted(targets.items()) if package not in (a, b) and
             (rank[a] > rank[b] or (rank[a] == rank[b] and independent[a]))]
    assert wrong == [], "imports against the layers of pyproject.toml:\n" + "\n".join(wrong)


@pytest.mark.parametrize("package", ["bench", "testbed"])
def test_the_architecture_page_draws_the_layers_of_the_contract(package):
    """docs/architecture.md draws each package's layers as pyproject.toml's contract has them
    (one line per layer, top first, a ``#`` comment after it)."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = re.search(rf"```\n{package}/ layers, top first\n(.*?)```", text, re.DOTALL)
    assert block, f"docs/architecture.md has no block starting '{package}/ layers, top first'"
    drawn = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    contract = [(" : " if not alone else " | ").join(units)
                for units, alone in layer_contract(package)]
    assert [line for line in drawn if line] == contract


# -- commands that need no model load no torch ----------------------------------------------------
HEAVY = ("torch", "transformers", "diffusers", "peft", "torchvision")
# Records, at the exit of every Python process started with it on PYTHONPATH, which of HEAVY it
# had loaded: the command's own process and any child it starts.
HOOK = f'''
import atexit, json, os, sys
def _record():
    heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
    with open(os.environ["NO_TORCH_LOG"], "a", encoding="utf-8") as f:
        f.write(json.dumps({{"argv": sys.argv, "heavy": heavy}}) + "\\n")
atexit.register(_record)
'''
# Runs each command in this one process, as `invoke` and `python -m bench` would, and prints
# what it loaded after each (in order: a module once loaded stays).
DRIVER = '''
import json, sys
from invoke import Collection, Program
import tasks
from bench.cli import main as bench_main
HEAVY = %r
program = Program(namespace=Collection.from_module(tasks), binary="invoke")
for argv in json.loads(sys.argv[1]):
    try:
        code = bench_main(argv[1:]) if argv[0] == "bench" else program.run(["invoke", *argv])
    except SystemExit as exc:
        code = exc.code
    heavy = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
    print(json.dumps({"argv": argv, "code": code or 0, "heavy": heavy}), flush=True)
'''


def test_commands_that_need_no_model_import_no_torch(tmp_path):
    """`invoke --list`, `--help` of every task, `list` (its vendor detection runs in a child
    with a timeout: that child alone may load torch), `validate`, `import`, `report` of
    existing results, `store` and `site`: what they need of a model comes from the model
    facts (bench/specs/model_facts.json), so none of them loads torch or transformers."""
    from invoke import Collection

    import tasks

    run = ROOT / "tests" / "fixtures" / "results" / "smoke-cpu-1thread"
    store = str(tmp_path / "store.duckdb")
    importing = ["import", "docs/examples/vendor-inference.csv", "--title", "t", "--url",
                 "https://example.com/x", "--table-name", "T", "--publisher", "p", "--role",
                 "vendor", "--assume", "config=full", "--out", str(tmp_path / "published")]
    commands = [["--list"], *(["--help", name] for name in
                              sorted(Collection.from_module(tasks).task_names)),
                ["list"], ["bench", "list"], ["bench", "validate", str(run)],
                importing,
                ["report", "--results", str(run), "--out", str(tmp_path / "report")],
                ["store", "add", str(run), "--store", store],
                ["store", "list", "runs", "--store", store],
                ["report", "--from-store", "--store", store, "--out", str(tmp_path / "r2")],
                ["site", "--out", str(tmp_path / "site"), "--store", store]]
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK, encoding="utf-8")
    log = tmp_path / "imports.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), str(ROOT)]),
           "NO_TORCH_LOG": str(log), "TESTBED_STORE": store}
    done = subprocess.run([sys.executable, "-c", DRIVER % ((*HEAVY, "pandas"),),
                           json.dumps(commands)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ran = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [r["argv"] for r in ran] == commands, done.stdout[-3000:] + done.stderr[-3000:]
    for r in ran:
        assert r["code"] == 0, f"{r['argv']} failed: {done.stdout[-3000:]}"
        # pandas too, until the import: the report and the store may use it, import need not
        allowed = {"pandas"} if commands.index(r["argv"]) > commands.index(importing) else set()
        assert set(r["heavy"]) <= allowed, f"`{' '.join(r['argv'])}` imported {r['heavy']}"
    children = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    detection = [c for c in children
                 if Path(c["argv"][0]).parts[-3:] == ("bench", "devices", "__main__.py")]
    assert len(detection) == 2  # `invoke list` and `python -m bench list`
    others = [c for c in children if c not in detection and c["heavy"]]
    assert others == [], f"processes that imported {HEAVY[0]} or the like: {others}"
