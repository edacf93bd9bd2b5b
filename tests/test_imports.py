"""No import circles in bench/ (the package every image and node runs), lazy imports included.

A circle that only works because one side imports inside a function (the suite loader and the
workloads once did) breaks the day someone moves that import to the top; the run rules and the
progress events have modules of their own so that no such circle is needed.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def module_names(root: Path, package: str) -> dict[str, Path]:
    out = {}
    for path in (root / package).rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports anywhere in its file (a package it lives in is
    already imported when it runs, so that is no edge)."""
    targets: set[str] = set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            wanted = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            wanted = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for target in wanted:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                targets.add(target)
    return targets


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
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


def test_the_checker_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_bench_has_no_import_circle():
    known = module_names(ROOT, "bench")
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert circles(graph) == []
    # the one this test was written for: workloads import the run rules, not the suite loader
    assert "bench.config" not in graph["bench.workload"]
    assert "bench.config" not in graph["bench.timing"]


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
