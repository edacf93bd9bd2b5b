"""How the store's ingest does its work: the worker processes that prepare each file, the
batch inserts, the parse's fast path; each against the plain way it replaced (the same
stores, the same refusals, the same values).

What is stored and refused, and why, is tests/test_store.py and tests/test_trust.py; these
tests hold the ways of getting there to the same answers. No speed is asserted: `invoke
bench-store` prints the figures (docs/store.md).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.jsonio import (
    MAX_INT_DIGITS,
    UnreadableDocument,
    atomic_write_json,
    check_tree,
    json_path,
    parse_json_document,
)
from testbed.store import ingest, open_store
from testbed.store import tables as t
from testbed.store.ingest import AddSummary, add_paths, candidate_files, set_trust
from testbed.store.loadtest import auditor_key, generate, ingest_against_parsing
from testbed.store.rows import _samples, number
from tests.conftest import ROOT
from tests.report_fixtures import ONE_THREAD


def table_rows(store) -> dict[str, list[tuple]]:
    """Every table's rows, sorted, without the time of adding."""
    out = {}
    with store.begin() as conn:
        for table in (t.documents, *t.DERIVED):
            cols = [c for c in table.columns if c.name not in ("added_at", "source")]
            out[table.name] = sorted(conn.execute(sa.select(*cols)).all(), key=repr)
    return out


def summary_facts(summary: AddSummary, root: Path) -> dict[str, Any]:
    def rel(p: Path) -> str:
        return str(p.relative_to(root))

    return {"added": summary.added, "present": sorted(map(rel, summary.present)),
            "refused": sorted((rel(r.path), tuple(r.problems)) for r in summary.refused),
            "signed": sorted((rel(p), s, who) for p, s, who in summary.signed),
            "claims": sorted((rel(p), s, why) for p, s, why in summary.claims),
            "runs": sorted(summary.runs), "apart": sorted(summary.apart)}


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[Path, Path]:
    """80 generated results (whole runs, signed verdicts: 112 files, so two processes
    prepare them), and what a lab's archive also
    holds: an edited result, a file that is not JSON, a copy of a run under another name."""
    root = tmp_path_factory.mktemp("archive")
    key, trust = auditor_key(root)
    docs = root / "docs"
    generate(80, docs, seed=5, signer=key)
    runs = sorted(p for p in docs.iterdir() if not p.name.endswith("-audit"))
    edited = next(runs[3].glob("resnet-infer.json"))
    doc = json.loads(edited.read_text())
    doc["metrics"]["throughput_items_per_s"]["value"] *= 2  # the seal no longer matches
    atomic_write_json(edited, doc)
    (runs[5] / "notes.json").write_text("not JSON {")
    shutil.copytree(runs[7], docs / "copy-of-a-run")
    return docs, trust


@pytest.fixture
def workers_ready(monkeypatch):
    """Small batches, and the worker processes started before the first one: every batch
    goes to them (on a busy machine they may start after the few batches there are)."""

    class Ready(ingest._Workers):
        def __init__(self, jobs: int) -> None:
            super().__init__(jobs)
            self._started.wait()
            assert self.pool is not None, "the worker processes did not start"

    pooled = []
    submit = ingest._submit

    def counting(pool, docs, trust):
        pooled.append(pool is not None)
        return submit(pool, docs, trust)

    monkeypatch.setattr(ingest, "_Workers", Ready)
    monkeypatch.setattr(ingest, "_submit", counting)
    monkeypatch.setattr(ingest, "BATCH_FILES", 25)
    monkeypatch.setattr(ingest, "CHUNK_FILES", 4)
    return pooled


def test_worker_processes_store_what_this_process_stores(archive, tmp_path, workers_ready):
    docs, trust = archive
    stores, summaries = [], []
    for jobs in (1, 2):
        workers_ready.clear()
        with open_store(str(tmp_path / f"s{jobs}.duckdb"), ROOT) as store:
            set_trust(store, trust)
            summaries.append(summary_facts(add_paths(store, [docs], jobs=jobs), docs))
            stores.append(table_rows(store))
        assert any(workers_ready) == (jobs == 2)
    assert summaries[0] == summaries[1]
    assert stores[0] == stores[1]
    # what the archive holds, found the same way by both
    facts = summaries[1]
    assert sorted(Path(p).name for p, _ in facts["refused"]) == ["notes.json",
                                                                 "resnet-infer.json"]
    assert any("integrity" in problems[0] for _, problems in facts["refused"])
    assert len(facts["present"]) == len(list((docs / "copy-of-a-run").glob("*.json")))
    assert facts["signed"] and not facts["claims"]


def test_adding_again_reads_but_prepares_nothing(archive, tmp_path, workers_ready,
                                                 monkeypatch):
    docs, _ = archive
    with open_store(str(tmp_path / "s.duckdb"), ROOT) as store:
        first = add_paths(store, [docs], jobs=2)
        workers_ready.clear()
        prepared: list[Any] = []
        monkeypatch.setattr(ingest, "prepare_all",
                            lambda items, trust: prepared.extend(items) or [])
        again = add_paths(store, [docs], jobs=1)
    # only the files refused the first time are looked at again (nothing of them is stored)
    assert sorted(path for path, _, _ in prepared) == sorted(r.path for r in first.refused)
    assert not any(workers_ready) and again.added == {}
    refused = {r.path for r in first.refused}
    assert sorted(again.present) == sorted(p for p in candidate_files([docs])
                                           if p not in refused)


def test_a_verdict_checked_before_the_trust_file_changed_is_checked_again(tmp_path):
    """The workers check signatures against the trust file as the add began; the batch's
    transaction reads it again and checks those made against another."""
    key, trust = auditor_key(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(ONE_THREAD, run)
    manifest = json.loads((run / "manifest.json").read_text())
    from testbed.signing import sign_document
    from testbed.store.loadtest import _verdict

    verdict = sign_document(_verdict(run, manifest["run_id"], "cpu", manifest["entries"],
                                     True, datetime(2026, 12, 1)), key, "audit")
    path = tmp_path / "audit" / "verdict.json"
    path.parent.mkdir()
    atomic_write_json(path, verdict)
    data = path.read_bytes()
    early = ingest.prepare(path, data, hashlib.sha256(data).hexdigest(), trust=None)
    assert early.signature["status"] == "unverified"
    with open_store(str(tmp_path / "s.duckdb"), ROOT) as store:
        add_paths(store, [run])
        set_trust(store, trust)
        summary = AddSummary()
        with store.connect() as conn:
            ingest._add_batch(conn, [early], summary)
        with store.begin() as conn:
            status = conn.execute(sa.select(t.signatures.c.status)
                                  .where(t.signatures.c.doc_id == early.doc_id)).scalar()
    assert [who for _, _, who in summary.signed] == ["auditor@bench-store"]
    assert status == "verified" and summary.claims == []


def test_an_audit_directory_named_relative_to_here_gives_only_its_verdict(tmp_path,
                                                                          monkeypatch):
    (tmp_path / "rerun").mkdir()
    for name in ("verdict.json", "resnet-infer.json", "rerun/resnet-infer.json"):
        (tmp_path / name).write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert candidate_files([Path(".")]) == [Path("verdict.json")]
    assert candidate_files([Path("rerun"), Path("verdict.json")]) == [Path("verdict.json")]
    assert candidate_files([Path("rerun")]) == [Path("rerun/resnet-infer.json")]


# -- batch inserts: the frame path stores what SQLAlchemy's insert stores ----------------------
values = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                   st.floats(allow_nan=False), st.text(max_size=5),
                   st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31)))


def _stored(conn: sa.Connection, table: sa.Table, rows: list[dict], frames: bool) -> Any:
    with conn.begin():
        conn.execute(table.delete())
    try:
        with conn.begin():
            if frames:
                ingest.insert_rows(conn, table, rows)
            else:
                conn.execute(table.insert(), rows)
    except sa.exc.StatementError as exc:  # the database's refusal, or SQLAlchemy's
        return f"refused: {type(exc).__name__}"
    with conn.begin():
        return sorted(conn.execute(sa.select(table)).all(), key=repr)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    with open_store(str(tmp_path_factory.mktemp("frames") / "s.duckdb"), ROOT) as store:
        yield store


numbers = st.one_of(st.none(), st.floats(allow_nan=False), st.integers(-2**70, 2**70))
typed_rows = st.fixed_dictionaries({
    "metric": st.sampled_from(["a", "b", "c"]), "value": numbers,
    "unit": st.one_of(st.none(), st.text(max_size=5)),
    "n": st.one_of(st.none(), st.integers(-2**40, 2**40)), "std": numbers})
any_rows = st.fixed_dictionaries({
    "metric": st.sampled_from(["a", "b", "c"]), "value": values, "unit": values,
    "n": values, "std": values})


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(typed_rows, any_rows), min_size=1, max_size=4))
def test_rows_inserted_from_a_frame_are_the_rows_sqlalchemy_inserts(scratch, rows):
    """Every value type the extractors may hand over, in the column types the store has (a
    string, a 71-bit integer or a time in a number column goes SQLAlchemy's way; a count
    beyond 32 bits is refused by the database either way)."""
    for i, row in enumerate(rows):
        row["doc_id"] = f"d{i}"
    with scratch.connect() as conn:
        assert _stored(conn, t.metrics, rows, True) == _stored(conn, t.metrics, rows, False)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(typed_rows, min_size=1, max_size=4))
def test_rows_of_their_columns_types_go_in_as_a_frame(rows):
    for i, row in enumerate(rows):
        row["doc_id"] = f"d{i}"
    assert ingest._frame(t.metrics, ingest.columnar({"metrics": rows})["metrics"]) is not None


def test_a_failed_insert_is_reported_by_the_database_not_by_the_frame(scratch):
    """A value the frame takes but the column cannot hold (a count beyond 32 bits): the
    database's refusal, which sends the batch one document at a time."""
    with scratch.connect() as conn:
        with pytest.raises(sa.exc.DataError), conn.begin():
            ingest.insert_rows(conn, t.metrics, [{"doc_id": "d", "metric": "m", "n": 2**40}])
        with conn.begin():
            conn.execute(t.metrics.delete())
            ingest.insert_rows(conn, t.metrics, [{"doc_id": "d", "metric": "m", "n": 7}])
            assert conn.execute(sa.select(t.metrics.c.n)).all() == [(7,)]


# -- telemetry samples: the fast path's values are the plain ones ------------------------------
def _reference_samples(values: Any) -> tuple[list[float], int]:
    nums = [v for v in (number(x) if not isinstance(x, bool) else None for x in values)
            if v is not None]
    return nums, sum(1 for v in values if v is not None)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.one_of(st.none(), st.booleans(),
                          st.integers(-10**MAX_INT_DIGITS + 1, 10**MAX_INT_DIGITS - 1),
                          st.floats(), st.text(max_size=3))))
def test_telemetry_samples_are_the_plain_definitions(series):
    """Any series a document can hold (integers as long as a document's), infinities and NaN
    too (from a stored document parsed again)."""
    fast, reference = _samples(series), _reference_samples(series)
    assert fast[1] == reference[1]
    assert [repr(v) for v in fast[0]] == [repr(v) for v in reference[0]]


# -- the parse's fast path: every document read or refused as before -------------------------
def _reference_check_tree(doc: Any, max_depth: int, max_nodes: int) -> None:
    """``check_tree`` as it was: every value visited with its path."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(doc, ())]
    nodes = 0
    while stack:
        value, where = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise UnreadableDocument("size", f"holds more than {max_nodes} values")
        container = isinstance(value, dict | list | tuple)
        if container and len(where) >= max_depth:
            raise UnreadableDocument("depth", f"nests deeper than {max_depth} levels")
        if isinstance(value, dict):
            stack.extend((v, (*where, k)) for k, v in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((v, (*where, i)) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            raise UnreadableDocument("finite", f"at {json_path(where)}: {value} is not a "
                                     "finite number")


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except UnreadableDocument as exc:
        return (exc.rule, str(exc))


trees = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=3),
              st.floats(), st.datetimes()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(st.text(max_size=2), inner, max_size=4)),
    max_leaves=30)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(trees, st.integers(1, 6), st.integers(1, 40))
def test_check_tree_refuses_what_it_refused(doc, max_depth, max_nodes):
    """Depth, value count and non-finite numbers anywhere (YAML gives times, tuples): the
    same verdict, the same rule and message (the path of the same value)."""
    assert _outcome(check_tree, doc, max_depth, max_nodes) == \
        _outcome(_reference_check_tree, doc, max_depth, max_nodes)


def _reference_parse(data: bytes) -> Any:
    """``parse_json_document`` as it was: a Python call per number, then the full walk."""
    from bench import jsonio

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableDocument("json", f"is not UTF-8 text ({exc.reason} at byte "
                                 f"{exc.start})") from exc
    try:
        doc = json.loads(text, parse_constant=jsonio._refuse_constant,
                         parse_int=jsonio._parse_int, parse_float=jsonio._parse_float)
    except RecursionError as exc:
        raise UnreadableDocument("depth", f"nests deeper than {jsonio.MAX_DEPTH} levels") \
            from exc
    except json.JSONDecodeError as exc:
        raise UnreadableDocument("json", f"is not JSON: {exc}") from exc
    _reference_check_tree(doc, jsonio.MAX_DEPTH, jsonio.MAX_NODES)
    return doc


json_texts = st.one_of(
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                           st.text(max_size=3)),
                 lambda inner: st.one_of(st.lists(inner, max_size=4),
                                         st.dictionaries(st.text(max_size=2), inner,
                                                         max_size=4)),
                 max_leaves=25).map(lambda v: json.dumps(v)),  # NaN, Infinity included
    st.lists(st.sampled_from(["[", "]", "{", "}", ",", ":", '"a"', "1e999", "-1e400", "NaN",
                              "1" * (MAX_INT_DIGITS + 1), "2.5", "null", " "]),
             max_size=12).map("".join))


@settings(max_examples=500, deadline=None, derandomize=True)
@given(json_texts)
def test_documents_are_read_and_refused_as_before(text):
    data = text.encode("utf-8")
    mine, reference = _outcome(parse_json_document, data), _outcome(_reference_parse, data)
    assert repr(mine) == repr(reference)


@pytest.mark.parametrize("text", [
    "[" * 64 + "]" * 64, "[" * 65 + "]" * 65, "[" * 5000 + "]" * 5000,
    '{"a": [1.5, 1e999]}', '{"a": [1e999, ' + "1" * 50 + "]}", '[1e999, }', "[NaN, 1e999]",
    '{"a": [[0.5, 2], {"b": -1e400}]}', '[1e308, 1e308]'])
def test_the_bounds_are_where_they_were(text):
    data = text.encode()
    assert repr(_outcome(parse_json_document, data)) == repr(_outcome(_reference_parse, data))


# -- the figure's command --------------------------------------------------------------------
def test_the_benchmark_times_the_command_on_every_file(tmp_path):
    """`invoke bench-store` prints `invoke store add` against parsing the same files: here
    that the command ran on exactly those files and stored them (the figures are printed,
    never asserted)."""
    files = generate(8, tmp_path / "docs")
    ratio = ingest_against_parsing(tmp_path / "docs", tmp_path / "cli.duckdb", rounds=1)
    assert ratio.files == files == len(candidate_files([tmp_path / "docs"]))
    r = ratio.median
    assert ratio.rounds == [r] and min(r.parse_s, r.reader_s, r.ingest_s) > 0
    assert r.ratio == r.ingest_s / r.parse_s
    with open_store(str(tmp_path / "cli.duckdb"), ROOT, read_only=True) as store, \
            store.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.documents)).scalar() \
            == files
