"""Property-based fuzzing of everything that reads someone else's files (hypothesis).

Four readers, one property: whatever the input, the reader answers (a result, or a refusal
naming the file, the JSON path and the fix) within a few seconds. A traceback or a hang is a
failure.

- ``suite``: ``bench.config.load_suite`` on suite files: mutated real suites and raw text;
  only ``UserError`` may come out.
- ``validate``: ``bench.validate.validate_file`` on mutated real result documents (re-sealed
  or not, NaN/Infinity written as Python's ``json`` would) and on raw bytes: a report, never
  an exception, and every problem has a JSON path and a rule.
- ``report``: the report's pipeline (load, check, analyse, views, Markdown, HTML, CSV) on a
  run directory where one real result was mutated and re-sealed, so it passes the schema and
  the hash and reaches the analysis.
- ``audit``: ``testbed.audit.submission.load_submission`` on a run directory with a mutated
  manifest or result: checks, never an exception other than ``UserError``.
- ``import``: ``testbed.published.import_table`` on a published table (CSV or YAML) with
  cells and headers replaced, or raw bytes: a ``UserError`` naming the table, or documents
  that pass the published schema (no negative, no absurd figure).
- ``ingest``: ``invoke store add``'s ``add_paths`` on a stored run plus a mutated manifest,
  result or verdict (re-sealed or not, raw bytes): refusals with reasons, never an exception,
  and never a counted result its run's manifest does not list.
- ``site``: ``invoke site`` on a store holding a real run and one mutated result that passed
  the schema (so the leaderboard's analysis and pages see it): pages or a ``UserError``.

``tests/test_hostile_inputs.py`` runs each with a few dozen examples; ``invoke fuzz`` runs
thousands and prints what it tried and found (``python -m tests.fuzz_inputs --help``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "tests" / "fixtures" / "results" / "smoke-cpu-1thread"
# A published table in the wide shape: three devices, inference and training.
TABLE = [
    {"device": "NVIDIA A100-SXM4-40GB", "workload": "resnet-infer", "precision": "FP16",
     "batch size": "64", "throughput [items/s]": "2400", "latency [ms]": "26.7",
     "power [W]": "300", "efficiency [items/J]": "8.0", "temperature [C]": "60"},
    {"device": "MLU370-X8", "workload": "resnet-infer", "precision": "FP16",
     "batch size": "64", "throughput [items/s]": "900", "latency [ms]": "71.1",
     "power [W]": "150", "efficiency [items/J]": "6.0", "temperature [C]": "50"},
    {"device": "NVIDIA A100-SXM4-40GB", "workload": "resnet-train", "precision": "FP16",
     "batch size": "64", "throughput [items/s]": "800", "latency [ms]": "--",
     "power [W]": "350", "efficiency [items/J]": "", "temperature [C]": "66"},
]
CITE = {"title": "Fuzzed table", "url": "https://example.org/t", "table": "Table 1",
        "page": 1, "publisher": "Fuzz Lab", "role": "independent"}
SUITE = ROOT / "bench" / "suites" / "smoke.yaml"
EXAMPLE_TIMEOUT_S = 30  # an answer later than this is a hang

# -- strategies -------------------------------------------------------------------------------

SCALARS = (st.none() | st.booleans()
           | st.integers(min_value=-(10 ** 30), max_value=10 ** 30)
           | st.sampled_from([0, -1, 2 ** 63, 10 ** 400, 1e308, -1e308, 5e-324])
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=40)
           | st.sampled_from(["", "../../etc/passwd", "/abs", "manifest", "a/b", "=1+1",
                              "<script>x</script>", "\u202e", "x" * 300, "-", ".", "..",
                              "\x00", "ok", "error", "fp32", "cpu", "train", "infer"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                      max_leaves=12)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:3]):  # long series: their first items stand for the rest
            yield from _paths(v, (*prefix, i))


EDITS = ("replace", "replace", "replace", "delete", "wrap", "same-type")


@st.composite
def mutated(draw: Any, doc: Any, max_edits: int = 3, edits: tuple[str, ...] = EDITS) -> Any:
    """``doc`` with a few values replaced, keys deleted or values nested deeper (``edits``:
    the kinds of edit to draw from)."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, max_edits))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        action = draw(st.sampled_from(edits))
        if action == "delete" and isinstance(parent, dict):
            del parent[key]
        elif action == "wrap":
            parent[key] = draw(st.sampled_from([[parent[key]], {"x": parent[key]}]))
        elif action == "same-type":
            parent[key] = draw(_same_type(parent[key]))
        else:
            parent[key] = draw(VALUES)
    return doc


def _same_type(value: Any) -> st.SearchStrategy[Any]:
    """A value the schema probably still accepts: the report's analysis sees it."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(min_value=-(2 ** 63), max_value=2 ** 63) | st.sampled_from([0, 1])
    if isinstance(value, float):
        return (st.floats(allow_nan=False, allow_infinity=False)
                | st.sampled_from([0.0, -0.0, 1e-300, 1e300, -1.0]))
    if isinstance(value, str):
        return st.text(max_size=30) | st.sampled_from(["", "=cmd|' /C calc'!A0", "<b>x</b>"])
    return st.just(value)


RAW_BYTES = (st.binary(max_size=200)
             | st.sampled_from([b"", b"{", b"[" * 5000, b"{\"a\":" * 3000, b"NaN",
                                b"1" * 5000, b"\xff\xfe", b"[1e999]", b"\"\\ud800\"",
                                b"{\"kind\": \"bench.result\"}", b"[-Infinity]"])
             | st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")))


def _dump(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")


def _seal_if_possible(doc: Any) -> Any:
    from bench.jsonio import seal

    if isinstance(doc, dict):
        with contextlib.suppress(ValueError, TypeError, RecursionError):
            return seal(doc)
    return doc


# -- the properties ---------------------------------------------------------------------------

def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class Workspace:
    """A scratch directory per target, emptied between examples."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fuzz-")))

    def fresh(self) -> Path:
        for child in self.root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        return self.root

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def check_suite(ws: Workspace, data: bytes) -> None:
    from bench.config import load_suite
    from bench.errors import UserError

    path = ws.fresh() / "suite.yaml"
    path.write_bytes(data)
    try:
        load_suite(str(path))
    except UserError as exc:
        assert str(path) in str(exc) or "Override" in str(exc) or "Suite" in str(exc), exc
        assert len(str(exc)) < 3000, len(str(exc))


def check_validate(ws: Workspace, data: bytes) -> None:
    from bench.validate import validate_file

    path = ws.fresh() / "result.json"
    path.write_bytes(data)
    report = validate_file(path, ws.root)
    for problem in report.problems:
        assert problem.path.startswith("$") and problem.rule, problem
        assert len(problem.message) < 1000, len(problem.message)
    engines_agree(report)


def engines_agree(report: Any) -> None:
    """The compiled validator accepts only what the reference accepts (bench.schema)."""
    if report.schema is not None:
        from bench.schema import fast_verdict, reference_errors

        fast = fast_verdict(report.doc, report.schema)
        assert fast is None or fast == (not reference_errors(report.doc, report.schema)), \
            f"jsonschema-rs and jsonschema disagree on this document ({report.schema})"


def check_report(ws: Workspace, data: bytes) -> None:
    from testbed.report import render_html, render_md
    from testbed.report.analysis import analyse
    from testbed.report.build import aggregated_csv, scores_csv
    from testbed.report.inputs import load_results
    from testbed.report.views import build_views

    run = ws.fresh() / "run"
    shutil.copytree(RUN, run)
    (run / "gemm-infer.json").write_bytes(data)
    inputs = load_results([run])
    analysis = analyse(inputs)
    views = build_views(analysis)
    meta = {"title": "t", "generated": "now", "files": inputs.files, "sources": str(run),
            "results": len(inputs.results), "invalid": len(inputs.invalid),
            "devices": len(inputs.devices), "workloads": len(analysis.workloads)}
    render_md.render(views, meta)
    render_html.render(views, meta)
    aggregated_csv(analysis)
    scores_csv(analysis)


def check_audit(ws: Workspace, data: bytes, name: str = "gemm-infer.json") -> None:
    from bench.errors import UserError
    from testbed.audit.submission import load_submission

    run = ws.fresh() / "run"
    shutil.copytree(RUN, run)
    (run / name).write_bytes(data)
    try:
        _, checks = load_submission(run)
    except UserError:
        return
    for check in checks:
        assert len(check.message) < 3000, (check.id, len(check.message))


def check_import(ws: Workspace, value: tuple[bytes, str]) -> None:
    from bench.errors import UserError
    from bench.validate import validate_file
    from testbed.published import import_table

    data, suffix = value
    path = ws.fresh() / f"table{suffix}"
    path.write_bytes(data)
    try:
        done = import_table(path, ws.root / "out", CITE, {})
    except UserError as exc:
        assert "Table" in str(exc) or "--" in str(exc) or "citation" in str(exc).lower(), exc
        assert len(str(exc)) < 3000, len(str(exc))
        return
    for file in done.files:
        report = validate_file(file)
        assert report.ok, (file.name, [str(p) for p in report.problems[:2]])
        engines_agree(report)


def _store_template() -> Path:
    """A store holding the real run (made once per process, copied for each input)."""
    from testbed.store import open_store
    from testbed.store.ingest import add_paths

    global _TEMPLATE
    if _TEMPLATE is None:
        _TEMPLATE = Path(tempfile.mkdtemp(prefix="fuzz-store-")) / "template.duckdb"
        with open_store(str(_TEMPLATE), ROOT) as store:
            add_paths(store, [RUN])
    return _TEMPLATE


_TEMPLATE: Path | None = None


def check_ingest(ws: Workspace, value: tuple[bytes, str]) -> None:
    import sqlalchemy as sa

    from testbed.store import open_store
    from testbed.store import tables as t
    from testbed.store.ingest import add_paths
    from testbed.store.queries import counted

    data, name = value
    root = ws.fresh()
    shutil.copy(_store_template(), root / "s.duckdb")
    where = root / ("audit" if name == "verdict.json" else "run")
    where.mkdir()
    (where / name).write_bytes(data)
    with open_store(str(root / "s.duckdb"), ROOT) as store:
        summary = add_paths(store, [where], jobs=1)
        for refused in summary.refused:
            assert refused.problems and all(len(p) < 3000 for p in refused.problems)
        with store.begin() as conn:
            r, me = t.results.c, t.manifest_entries.c
            # every counted result of a run with a manifest is one the manifest lists
            strays = conn.execute(
                sa.select(r.doc_id).join(t.runs, t.runs.c.run_id == r.run_id)
                .where(t.runs.c.manifest_id.is_not(None), counted(),
                       ~sa.exists().where(me.manifest_id == t.runs.c.manifest_id,
                                          sa.or_(me.seal == r.seal,
                                                 sa.and_(me.entry_id == r.entry_id,
                                                         me.seal.is_(None),
                                                         t.runs.c.state == "running"))))
            ).all()
            assert not strays, strays


def check_site(ws: Workspace, data: bytes) -> None:
    from bench.errors import UserError
    from testbed.store import open_store
    from testbed.store.ingest import add_paths
    from testbed.store.queries import make_filters
    from testbed.store.site import write_site

    root = ws.fresh()
    shutil.copy(_store_template(), root / "s.duckdb")
    (root / "run").mkdir()
    (root / "run" / "gemm-infer.json").write_bytes(data)
    with open_store(str(root / "s.duckdb"), ROOT) as store:
        add_paths(store, [root / "run"], jobs=1)
    with open_store(str(root / "s.duckdb"), ROOT, read_only=True) as store:
        try:
            write_site(store, root / "site", make_filters(), baseline=None)
        except UserError:
            return
    assert (root / "site" / "index.html").exists()


def _suite_inputs() -> st.SearchStrategy[bytes]:
    import yaml

    base = yaml.safe_load(SUITE.read_text())
    as_yaml = mutated(base).map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode())
    return as_yaml | RAW_BYTES | st.sampled_from([b"name: s\nentries: &a [*a]\n",
                                                  b"a: &a [*a, *a, *a, *a, *a, *a, *a]\n",
                                                  b"name: s\nrules: {timeout_s: .nan}\n"])


def _result_inputs(seal_some: bool = True) -> st.SearchStrategy[bytes]:
    base = _load(RUN / "gemm-infer.json")
    docs = mutated(base)
    sealed = docs.map(_seal_if_possible) if seal_some else docs
    return (sealed.map(_dump) | docs.map(_dump) | RAW_BYTES) if seal_some else docs.map(_dump)


def _report_inputs() -> st.SearchStrategy[bytes]:
    """Mostly edits that keep a value's type, re-sealed: such documents pass the schema and
    the hash, so the checks, the analysis and the renderers see them."""
    base = _load(RUN / "gemm-infer.json")
    edits = ("same-type", "same-type", "same-type", "replace", "delete")
    return mutated(base, max_edits=3, edits=edits).map(_seal_if_possible).map(_dump)


def _audit_inputs() -> st.SearchStrategy[tuple[bytes, str]]:
    manifest = _load(RUN / "manifest.json")
    result = _load(RUN / "gemm-infer.json")
    return (mutated(manifest).map(lambda d: (_dump(d), "manifest.json"))
            | mutated(result).map(_seal_if_possible).map(lambda d: (_dump(d),
                                                                    "gemm-infer.json"))
            | RAW_BYTES.map(lambda b: (b, "manifest.json")))


def _table_bytes(rows: Any, as_yaml: bool) -> bytes:
    import csv
    import io

    import yaml

    if as_yaml:
        return yaml.safe_dump({"rows": rows}, allow_unicode=True).encode("utf-8",
                                                                        "surrogatepass")
    rows = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
    headers = list(dict.fromkeys(str(k) for r in rows for k in r))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers)
    for r in rows:
        writer.writerow(["" if r.get(h) is None else str(r.get(h)) for h in headers])
    return out.getvalue().encode("utf-8", "surrogatepass")


def _import_inputs() -> st.SearchStrategy[tuple[bytes, str]]:
    edits = ("same-type", "same-type", "replace", "delete")
    tables = mutated(TABLE, max_edits=3, edits=edits)
    return (tables.map(lambda rows: (_table_bytes(rows, False), ".csv"))
            | tables.map(lambda rows: (_table_bytes(rows, True), ".yaml"))
            | RAW_BYTES.map(lambda b: (b, ".csv"))
            | st.sampled_from([(b"device,workload,throughput [items/s]\nA100,resnet-infer,"
                                b"-5\n", ".csv"),
                               (b"device,workload,precision,throughput [items/s]\nA100,"
                                b"resnet-infer,fp16,5.2e52\n", ".csv")]))


def _verdict_base() -> Any:
    from datetime import datetime

    from testbed.store.loadtest import _verdict

    manifest = _load(RUN / "manifest.json")
    return _verdict(RUN, manifest["run_id"], "cpu", manifest["entries"], True,
                    datetime(2026, 12, 1))


def _ingest_inputs() -> st.SearchStrategy[tuple[bytes, str]]:
    manifest = _load(RUN / "manifest.json")
    result = _load(RUN / "gemm-infer.json")
    verdict = _verdict_base()
    return (mutated(manifest).map(lambda d: (_dump(d), "manifest.json"))
            | mutated(result).map(_seal_if_possible).map(lambda d: (_dump(d),
                                                                    "gemm-infer.json"))
            | mutated(result, edits=("same-type",)).map(_seal_if_possible)
            .map(lambda d: (_dump(d), "resnet-infer.json"))
            | mutated(verdict).map(_seal_if_possible).map(lambda d: (_dump(d),
                                                                     "verdict.json"))
            | RAW_BYTES.map(lambda b: (b, "gemm-infer.json")))


def _site_inputs() -> st.SearchStrategy[bytes]:
    """Like the report's: type-keeping edits, re-sealed, in a run of its own (a result of the
    real run's id would be refused as not in its manifest)."""
    base = {**_load(RUN / "gemm-infer.json"), "run_id": "fuzz-run"}
    edits = ("same-type", "same-type", "same-type", "replace", "delete")
    return mutated(base, max_edits=3, edits=edits).map(_seal_if_possible).map(_dump)


@dataclass(frozen=True)
class Target:
    name: str
    what: str
    inputs: Callable[[], st.SearchStrategy[Any]]
    check: Callable[[Workspace, Any], None]


TARGETS = {
    "suite": Target("suite", "suite loader (bench.config.load_suite)", _suite_inputs,
                    check_suite),
    "validate": Target("validate", "validate (bench.validate.validate_file)", _result_inputs,
                       check_validate),
    "report": Target("report", "report pipeline (load, checks, analysis, views, renderers)",
                     _report_inputs, check_report),
    "audit": Target("audit", "audit's submission reader (load_submission)", _audit_inputs,
                    lambda ws, pair: check_audit(ws, pair[0], pair[1])),
    "import": Target("import", "published-table importer (testbed.published.import_table)",
                     _import_inputs, check_import),
    "ingest": Target("ingest", "store's ingest (testbed.store.ingest.add_paths)",
                     _ingest_inputs, check_ingest),
    "site": Target("site", "leaderboard site (testbed.store.site.write_site)", _site_inputs,
                   check_site),
}


# -- running ----------------------------------------------------------------------------------

def _leaves(doc: Any, prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    if isinstance(doc, dict) and doc:
        return {k: v for key, val in doc.items() for k, v in _leaves(val, (*prefix, key)).items()}
    if isinstance(doc, list) and doc:
        return {k: v for i, val in enumerate(doc) for k, v in _leaves(val, (*prefix, i)).items()}
    return {prefix: doc}


def describe(value: Any) -> str:
    """A failing input in a few lines: what differs from the real document it was made from
    (or its first bytes)."""
    from bench.errors import cut
    from bench.jsonio import json_path

    data, name = value if isinstance(value, tuple) else (value, "gemm-infer.json")
    try:
        doc = json.loads(data)
        base = _load(RUN / name) if (RUN / name).exists() else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return cut(repr(data), 300)
    if base is None or not isinstance(doc, dict):
        return cut(repr(data), 300)
    old, new = _leaves(base), _leaves(doc)
    changed = [p for p in sorted(set(old) | set(new), key=str) if old.get(p, "<absent>") !=
               new.get(p, "<absent>") and p and p[-1] != "sha256"]
    return f"{name} with " + "; ".join(
        f"{json_path(p)} = {cut(repr(new.get(p, '<absent>')), 80)}" for p in changed[:6])

class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """A reader that has not answered after ``seconds`` is hung (SIGALRM, main thread)."""
    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"no answer after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Outcome:
    target: str
    tried: int
    seconds: float
    failure: str | None = None


def fuzz(target: Target, examples: int, seed: int | None = None,
         derandomize: bool = False, shrink: bool = True) -> Outcome:
    """Run ``target`` on ``examples`` generated inputs; the first failure ends it (minimised
    by hypothesis with ``shrink``: that can take minutes on a large document).
    ``derandomize``: the same inputs every time (the test suite)."""
    phases = [Phase.explicit, Phase.reuse, Phase.generate, *([Phase.shrink] if shrink else [])]
    ws = Workspace()
    tried = 0
    last_error: list[str] = []

    @settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
              phases=phases,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(target.inputs())
    def prop(value: Any) -> None:
        nonlocal tried
        tried += 1
        try:
            with time_limit(EXAMPLE_TIMEOUT_S):
                target.check(ws, value)
        except BaseException as exc:
            # hypothesis runs the shrunk example last: this is the one reported
            frames = traceback.format_exception(exc)
            last_error[:] = [f"input: {describe(value)}\n", *frames[-8:]]
            raise

    if seed is not None:
        prop = __import__("hypothesis").seed(seed)(prop)
    start = time.monotonic()
    failure = None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Generating overly large repr")
            prop()
    except Exception as exc:
        failure = "".join(last_error) or "".join(traceback.format_exception(exc))[-3000:]
    finally:
        ws.close()
    return Outcome(target.name, tried, time.monotonic() - start, failure)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz_inputs", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--examples", type=int, default=10_000,
                   help="inputs in all, shared evenly by the targets (default 10000)")
    p.add_argument("--targets", default=",".join(TARGETS),
                   help=f"comma-separated, of {', '.join(TARGETS)}")
    p.add_argument("--seed", type=int, help="a fixed seed (default: a fresh random one)")
    p.add_argument("--shrink", action="store_true",
                   help="minimise a failing input (slow on large documents; the report shows "
                        "what differs from the real document either way)")
    args = p.parse_args(argv)
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        print(f"error: unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}",
              file=sys.stderr)
        return 2
    os.environ.setdefault("BENCH_WORKLOAD_MODULES", "tests.faulty_workloads")
    each = max(1, math.ceil(args.examples / len(names)))
    outcomes = []
    for name in names:
        target = TARGETS[name]
        print(f"fuzzing the {target.what}: {each} inputs ...", flush=True)
        outcome = fuzz(target, each, args.seed, shrink=args.shrink)
        outcomes.append(outcome)
        found = "nothing found" if outcome.failure is None else "FAILURE:"
        print(f"  {outcome.tried} inputs tried in {outcome.seconds:.0f} s: {found}", flush=True)
        if outcome.failure:
            print(outcome.failure, flush=True)
    total = sum(o.tried for o in outcomes)
    failed = [o.target for o in outcomes if o.failure]
    print(f"fuzz: {total} inputs tried over {len(outcomes)} reader(s); "
          + (f"failures in {', '.join(failed)}" if failed else
             "no traceback, no hang, every refusal named its file and JSON path"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
