"""The results store on DuckDB: what goes in, what is refused, what comes back out.

Documents are the real smoke runs and the report's fixture lab (accelerators with marks, an
LLM grid, an operator sweep, an OOM), so every table is filled from documents the bench and
the report know. The PostgreSQL store is tests/test_store_postgres.py; the site in a browser
tests/test_store_browser.py.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.jsonio import atomic_write_json, seal
from testbed.report.inputs import load_results
from testbed.signing import sign_document
from testbed.store import open_store
from testbed.store import tables as t
from testbed.store.export import export_documents
from testbed.store.ingest import add_paths, set_trust
from testbed.store.loadtest import _verdict
from testbed.store.queries import (
    list_results,
    list_runs,
    make_filters,
    read_only_query,
)
from testbed.store.rows import hardware_key, number, telemetry_rows, utc
from testbed.store.store import StoreCorrupt
from tests.conftest import ROOT, sigint_as_a_terminal_sends_it
from tests.report_fixtures import ONE_THREAD, TWO_THREADS, build_lab
from tests.signers import make_signer, trust_file

INVOKE = [sys.executable, "-m", "invoke"]


def invoke(*args, timeout=300):
    return subprocess.run([*INVOKE, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def counts(store) -> dict[str, int]:
    with store.begin() as conn:
        return {tbl.name: conn.execute(sa.select(sa.func.count()).select_from(tbl)).scalar()
                for tbl in (t.documents, *t.DERIVED)}


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    """The report's fixture lab and the two real runs, in one directory tree."""
    root = tmp_path_factory.mktemp("lab")
    dirs = build_lab(root / "made")
    for name in ("cpu1", "cpu2"):
        shutil.copytree(dirs[name], root / name)
    return root


@pytest.fixture(scope="module")
def filled(lab, tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "store.duckdb"
    with open_store(str(path), ROOT) as store:
        summary = add_paths(store, [lab])
    return path, summary


# -- rows: pure functions ---------------------------------------------------------------------
def test_time_and_number_conversions():
    assert utc("2026-11-24T08:25:37.320+00:00") == datetime(2026, 11, 24, 8, 25, 37, 320000)
    assert utc("2026-11-24T10:00:00+02:00") == datetime(2026, 11, 24, 8, 0)
    assert utc("2026-11-24T08:00:00Z") == datetime(2026, 11, 24, 8, 0)
    assert utc("yesterday") is None and utc(None) is None
    assert number(True) == 1.0 and number(3) == 3.0 and number(None) is None
    assert number(float("nan")) is None and number("12") is None


def test_telemetry_summary_by_hand():
    tel = {"fields": {"power_w": "W", "util_pct": "%", "temp_c": "degC"},
           "unavailable": {"temp_c": "no sensor"},
           "devices": [{"index": 0, "series": {"power_w": [100.0, None, 200.0, 300.0],
                                               "util_pct": [50, 70], "temp_c": [None, None]}}]}
    rows = {r["field"]: r for r in telemetry_rows("d", tel)}
    assert rows["power_w"] == {"doc_id": "d", "device_index": 0, "field": "power_w",
                               "unit": "W", "samples": 3, "mean": 200.0, "min": 100.0,
                               "max": 300.0, "unavailable": None}
    assert rows["util_pct"]["mean"] == 60.0
    assert rows["temp_c"]["samples"] == 0 and rows["temp_c"]["unavailable"] == "no sensor"


def test_hardware_key_drops_only_the_versions():
    facts = {"vendor": "cuda", "name": "A100", "count": "8", "torch": "2.4", "driver": "550",
             "image": "cuda:1", "label": "capped"}
    assert hardware_key(facts) == "label=capped|vendor=cuda|name=A100|count=8"


# -- ingest ----------------------------------------------------------------------------------
def test_every_document_lands_in_its_tables(filled, lab):
    path, summary = filled
    files = sorted(lab.rglob("*.json"))
    assert summary.refused == [] and summary.present == []
    assert summary.added == {"result": len(files) - 2, "manifest": 2}
    with open_store(str(path), ROOT, read_only=True) as store:
        n = counts(store)
        assert n["documents"] == len(files) and n["results"] == len(files) - 2
        with store.begin() as conn:
            # one metrics row per metric of every result, as the documents hold them
            expected = sum(len(json.loads(f.read_text())["metrics"]) for f in files
                           if f.name != "manifest.json")
            assert n["metrics"] == expected
            points = sum(len(json.loads(f.read_text()).get("points") or []) for f in files)
            assert points > 0 and n["points"] == points and n["point_metrics"] > points
            assert n["telemetry"] > 0
            statuses = set(conn.execute(sa.select(t.results.c.status)).scalars())
            assert statuses == {"ok", "oom"}
            a100 = conn.execute(sa.select(t.results).where(
                t.results.c.device_name == "NVIDIA A100-SXM4-80GB")).first()
            assert a100.vendor == "cuda" and a100.driver_version == "fixture"
            assert "name=NVIDIA A100-SXM4-80GB" in a100.device_key
            runs = {r.run_id: r for r in conn.execute(sa.select(t.runs))}
        manifest = json.loads((lab / "cpu1" / "manifest.json").read_text())
        run = runs[manifest["run_id"]]
        assert run.state == "finished" and run.manifest_id is not None
        assert run.started_at == utc(manifest["started_at"])


def test_device_key_is_the_reports(filled, lab):
    path, _ = filled
    inputs = load_results([lab])
    with open_store(str(path), ROOT, read_only=True) as store, store.begin() as conn:
        stored = set(conn.execute(sa.select(t.results.c.device_key)).scalars())
    assert stored == set(inputs.devices)


def test_adding_again_changes_nothing_and_a_reformatted_copy_is_the_same_result(
        filled, lab, tmp_path):
    path, _ = filled
    copy = tmp_path / "copy"
    shutil.copytree(lab / "cpu1", copy)
    doc = json.loads((copy / "resnet-infer.json").read_text())
    (copy / "resnet-infer.json").write_text(json.dumps(doc))  # other bytes, same seal
    with open_store(str(path), ROOT) as store:
        before = counts(store)
        again = add_paths(store, [lab, copy])
        assert again.added == {} and again.refused == []
        assert len(again.present) == len(list(lab.rglob("*.json"))) + 4
        assert counts(store) == before


def test_invalid_and_edited_documents_are_refused_as_the_report_refuses_them(tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(ONE_THREAD, bad)
    doc = json.loads((bad / "resnet-infer.json").read_text())
    doc["metrics"]["throughput_items_per_s"]["value"] *= 3
    (bad / "resnet-infer.json").write_text(json.dumps(doc))  # edited, seal left as it was
    (bad / "broken.json").write_text('{"kind": "bench.result", "status": "ok"}')
    (bad / "notjson.json").write_text("{nope")
    with open_store(str(tmp_path / "s.duckdb"), ROOT) as store:
        summary = add_paths(store, [bad])
        assert summary.added == {"result": 2, "manifest": 1}
        with store.begin() as conn:
            names = set(conn.execute(sa.select(t.documents.c.name)).scalars())
        assert names == {"manifest.json", "gemm-infer.json", "resnet-train.json"}
    refused = {r.path.name: r.problems for r in summary.refused}
    report = {f.path.name: f.problems for f in load_results([bad]).invalid}
    assert refused == report  # the same files, the same words
    assert "changed after it was written" in refused["resnet-infer.json"][0]
    assert "not JSON" in refused["notjson.json"][0]


def test_values_the_schema_leaves_open_never_crash_the_ingest(tmp_path):
    """Found by `invoke fuzz` (ingest, site): a verdict whose summary counts were objects,
    valid by its schema, made the insert fail with a traceback; so did a 31-digit suite seed
    and a repeat count of 7.8e18."""
    manifest = json.loads((ONE_THREAD / "manifest.json").read_text())
    verdict = _verdict(ONE_THREAD, manifest["run_id"], "cpu", manifest["entries"], True,
                       datetime(2026, 12, 1))
    verdict["summary"]["metrics"]["pass"] = {}
    verdict["summary"]["checks"] = {"integrity": {"fail": "many"}}
    (tmp_path / "audit").mkdir()
    atomic_write_json(tmp_path / "audit" / "verdict.json",
                      seal({k: v for k, v in verdict.items() if k != "sha256"}))
    doc = json.loads((ONE_THREAD / "gemm-infer.json").read_text())
    doc["suite"]["seed"], doc["run_id"] = 10**30, "odd-seed"
    (tmp_path / "odd").mkdir()
    atomic_write_json(tmp_path / "odd" / "gemm-infer.json",
                      seal({k: v for k, v in doc.items() if k != "sha256"}))
    doc = json.loads((ONE_THREAD / "gemm-infer.json").read_text())
    doc["metrics"]["latency_p99_s"]["n"], doc["run_id"] = 7751560234508384256, "odd-n"
    (tmp_path / "odd-n").mkdir()  # found by the site's fuzzing: an n no column holds
    atomic_write_json(tmp_path / "odd-n" / "gemm-infer.json",
                      seal({k: v for k, v in doc.items() if k != "sha256"}))
    with open_store(str(tmp_path / "s.duckdb"), ROOT) as store:
        add_paths(store, [ONE_THREAD])
        summary = add_paths(store, [tmp_path / "audit", tmp_path / "odd", tmp_path / "odd-n"])
    assert summary.added == {"audit": 1}
    assert sorted(r.path.parent.name for r in summary.refused) == ["odd", "odd-n"]
    assert all("the store cannot hold a value of it" in r.problems[0] for r in summary.refused)


@pytest.fixture(scope="module")
def auditor(tmp_path_factory):
    return make_signer(tmp_path_factory.mktemp("keys"), "auditor@lab.example")


def test_verdicts_link_to_the_results_they_judged(tmp_path, auditor):
    run = tmp_path / "run"
    shutil.copytree(TWO_THREADS, run)
    manifest = json.loads((run / "manifest.json").read_text())
    entries = manifest["entries"]
    passed = _verdict(run, manifest["run_id"], "cpu", entries, True,
                      datetime(2026, 12, 1, 9, 0))
    failed = _verdict(run, manifest["run_id"], "cpu", entries[:1], False,
                      datetime(2026, 12, 2, 9, 0))
    old = dict(failed)
    old["submitted"] = {k: v for k, v in old["submitted"].items() if k != "result_sha256"}
    old["ended_at"] = "2026-12-03T09:00:00+00:00"
    for name, doc in (("a", passed), ("b", failed), ("c", seal(old))):
        (tmp_path / "audits" / name).mkdir(parents=True)
        atomic_write_json(tmp_path / "audits" / name / "verdict.json",
                          sign_document(doc, auditor.key, "audit"))
    with open_store(str(tmp_path / "s.duckdb"), ROOT) as store:
        set_trust(store, trust_file(tmp_path / "allowed_signers", auditor))
        # verdicts naming results the store does not hold are refused; one written before
        # verdicts named them links later, by run and entry
        early = add_paths(store, [tmp_path / "audits"])
        assert [r.path.parent.name for r in early.refused] == ["a", "b"]
        assert "none of them stored here" in early.refused[0].problems[0]
        add_paths(store, [run])
        assert add_paths(store, [tmp_path / "audits"]).added == {"audit": 2}
        f = make_filters()
        runs = list_runs(store, f)
        assert [(r.audit, r.audited_at, r.audited_by) for r in runs] == \
            [("fail", datetime(2026, 12, 3, 9), "auditor@lab.example")]
        by_entry = {r.entry_id: r.audit for r in list_results(store, f)}
        first = entries[0]["id"]
        assert by_entry[first] == "fail"  # its latest verdict (linked by run and entry)
        assert {v for e, v in by_entry.items() if e != first} == {"pass"}
        assert [r.entry_id for r in list_results(store, make_filters(audit="fail"))] == [first]
        assert list_results(store, make_filters(audit="none")) == []


def test_an_audit_directory_adds_only_its_verdict(tmp_path):
    audit_dir = tmp_path / "audits" / "x-audit"
    shutil.copytree(ONE_THREAD, audit_dir / "as-submitted")  # the auditor's re-run
    manifest = json.loads((ONE_THREAD / "manifest.json").read_text())
    atomic_write_json(audit_dir / "verdict.json",
                      _verdict(ONE_THREAD, manifest["run_id"], "cpu", manifest["entries"],
                               True, datetime(2026, 12, 1)))
    with open_store(str(tmp_path / "s.duckdb"), ROOT) as store:
        add_paths(store, [ONE_THREAD])  # the judged run: a verdict must name stored results
        assert add_paths(store, [tmp_path / "audits"]).added == {"audit": 1}


# -- out again ---------------------------------------------------------------------------------
def test_documents_come_back_byte_for_byte(filled, lab, tmp_path):
    path, _ = filled
    with open_store(str(path), ROOT, read_only=True) as store:
        written = export_documents(store, tmp_path / "out")
    digest = {hashlib.sha256(p.read_bytes()).hexdigest() for p in lab.rglob("*.json")}
    assert {hashlib.sha256(p.read_bytes()).hexdigest() for p in written} == digest
    run = json.loads((lab / "cpu1" / "manifest.json").read_text())["run_id"]
    assert (tmp_path / "out" / run / "manifest.json").read_bytes() == \
        (lab / "cpu1" / "manifest.json").read_bytes()


def test_a_document_changed_inside_the_database_is_caught(lab, tmp_path):
    path = tmp_path / "s.duckdb"
    with open_store(str(path), ROOT) as store:
        add_paths(store, [lab / "cpu1"])
        with store.begin() as conn:
            doc_id = conn.execute(sa.select(t.documents.c.doc_id)
                                  .where(t.documents.c.name == "resnet-infer.json")).scalar()
            import zlib

            body = zlib.compress(b'{"forged": true}')
            conn.execute(t.documents.update().where(t.documents.c.doc_id == doc_id)
                         .values(body=body))
        with pytest.raises(StoreCorrupt, match="changed inside the store"):
            store.document(doc_id)


def test_derived_tables_are_rebuilt_from_the_documents_after_an_upgrade(filled, tmp_path):
    path = tmp_path / "old.duckdb"
    shutil.copy(filled[0], path)
    with open_store(str(path), ROOT) as store:
        before = counts(store)
        with store.begin() as conn:
            conn.execute(t.store_meta.update().values(value="0"))
            conn.execute(t.metrics.delete())
    # A reader of an older store upgrades it once: every derived row comes back.
    with open_store(str(path), ROOT, read_only=True) as store:
        assert counts(store) == before


# -- questions ---------------------------------------------------------------------------------
def test_filters(filled, lab):
    path, _ = filled
    with open_store(str(path), ROOT, read_only=True) as store:
        mlu = list_results(store, make_filters(device=["mlu370"]))
        assert mlu and {r.device for r in mlu} == {"MLU370-X8"}
        infer = list_results(store, make_filters(workload=["resnet-infer"], device=["a100"]))
        assert [r.entry_id for r in infer] == ["resnet-infer"]
        doc = json.loads((lab / "made" / "a100" / "resnet-infer.json").read_text())
        assert infer[0].headline == doc["metrics"]["throughput_items_per_s"]["value"]
        assert list_results(store, make_filters(since="2100-01-01")) == []
        runs = list_runs(store, make_filters(device=["threads=1"]))
        assert len(runs) == 1
        assert runs[0].devices == ["Intel Xeon Processor · 1 thread"]
        assert [r.devices for r in list_runs(store, make_filters(run="fixture-mlu"))] == \
            [["MLU370-X8"]]
        assert list_runs(store, make_filters(suite="no-such-suite")) == []


def test_read_only_sql(filled):
    path, _ = filled
    with open_store(str(path), ROOT, read_only=True) as store:
        result = read_only_query(store, "SELECT vendor, count(*) AS n FROM results "
                                        "GROUP BY vendor ORDER BY vendor")
        assert result.columns == ["vendor", "n"]
        assert dict(result.rows)["mlu"] == 5
        for sql in ("DROP TABLE results", "DELETE FROM metrics",
                    f"COPY results TO '{path.parent / 'leak.csv'}'",
                    "SELECT * FROM read_csv('/etc/passwd')"):
            with pytest.raises(Exception, match="query failed"):
                read_only_query(store, sql)
        assert not (path.parent / "leak.csv").exists()
        assert counts(store)["results"] > 0


# Run for ever (in little memory: one row per step). DuckDB's own check for Ctrl-C stops the
# first, not the recursive one.
ENDLESS = "SELECT sum(a.range * b.range) FROM range(1000000000) a, range(1000000000) b"
RECURSIVE = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"


def test_a_query_is_stopped_at_its_time_limit(filled):
    import time

    path, _ = filled
    with open_store(str(path), ROOT, read_only=True) as store:
        start = time.monotonic()
        for sql in (ENDLESS, RECURSIVE):
            with pytest.raises(Exception, match="longer than 1 s and was stopped"):
                read_only_query(store, sql, timeout_s=1)
        assert time.monotonic() - start < 30
        assert read_only_query(store, "SELECT 1").rows == [(1,)]  # the store still answers


def test_ctrl_c_stops_a_query(filled):
    """The probe: a recursive query ran on after SIGINT."""
    import signal
    import time

    proc = subprocess.Popen([*INVOKE, "store", "query", RECURSIVE, "--store", str(filled[0])],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_as_a_terminal_sends_it)
    time.sleep(6)  # invoke and the store are open; the query is running
    assert proc.poll() is None, proc.communicate()
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the query went on after Ctrl-C")
    assert time.monotonic() - sent < 30 and proc.returncode != 0
    assert "Traceback" not in err


# -- the commands ------------------------------------------------------------------------------
def test_store_commands(filled, lab, tmp_path):
    store = str(tmp_path / "cli.duckdb")
    proc = invoke("store", "add", str(lab / "cpu1"), "--path", str(lab / "made"),
                  "--store", store)
    assert proc.returncode == 0, proc.stderr
    assert "added to" in proc.stdout and "REFUSED" not in proc.stdout
    proc = invoke("store", "list", "runs", "--store", store)
    assert proc.returncode == 0 and "Intel Xeon Processor · 1 thread" in proc.stdout
    proc = invoke("store", "list", "results", "--store", store, "--device", "a100",
                  "--workload", "resnet-infer")
    assert proc.returncode == 0 and "1 result(s)" in proc.stdout, proc.stdout
    proc = invoke("store", "query", "SELECT count(*) AS n FROM results", "--store", store,
                  "--format", "csv")
    assert proc.returncode == 0 and proc.stdout.splitlines()[1].isdigit()
    proc = invoke("store", "list", "tables")
    assert all(tbl.name in proc.stdout for tbl in t.metadata.sorted_tables)
    proc = invoke("store", "export", str(tmp_path / "exp"), "--parquet", "--documents",
                  "--store", store)
    assert proc.returncode == 0, proc.stderr
    import duckdb

    n = duckdb.sql(f"SELECT count(*) FROM '{tmp_path / 'exp/parquet/metrics.parquet'}'")
    assert n.fetchall()[0][0] > 0
    check = subprocess.run([sys.executable, "-m", "bench", "validate", "--quiet",
                            str(tmp_path / "exp" / "documents")], capture_output=True,
                           text=True, cwd=ROOT)
    assert check.returncode == 0, check.stdout


@pytest.mark.parametrize("args, words", [
    (("store", "list", "runs", "--store", "{tmp}/none.duckdb"), "no store at"),
    (("store", "list", "runs", "--store", "mysql://x@y/z"), "not supported"),
    (("store", "list", "runs", "--since", "last week", "--store", "{filled}"), "not a date"),
    (("store", "query", "SELEC nothing", "--store", "{filled}"), "invoke store list tables"),
    (("store", "query", "SELECT 1", "--timeout", "soon", "--store", "{filled}"),
     "not a number of seconds"),
    (("store", "frobnicate", "x"), "not a store command"),
    (("store", "add", "{tmp}/missing"), "does not exist"),
    (("store", "list", "runs", "--store", "postgresql://u:secret@localhost:99999/db"),
     "not a tcp port"),
    (("store", "list", "runs", "--store", "postgresql://u@localhost:port/db"),
     "not a database url"),
    (("site", "--out", "{tmp}/a-file", "--store", "{filled}"), "is not a directory"),
    (("store", "export", "{tmp}/a-file", "--documents", "--store", "{filled}"),
     "not writable"),
    (("report", "--from-store", "--device", "no-such-device", "--store", "{filled}"),
     "no result in the store"),
])
def test_bad_input_is_exit_2_with_the_fix(filled, tmp_path, args, words):
    args = [a.format(tmp=tmp_path, filled=filled[0]) for a in args]
    (tmp_path / "a-file").write_text("x")
    proc = invoke(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert words in proc.stderr.lower() and "Traceback" not in proc.stderr
    assert "secret" not in proc.stderr


def test_export_never_blocks_on_a_fifo_in_its_way(filled, tmp_path):
    """The probe: `store export` hung for ever when a file it compares with was a FIFO."""
    import os

    first = tmp_path / "first"
    assert invoke("store", "export", str(first), "--documents", "--store",
                  str(filled[0])).returncode == 0
    target = tmp_path / "again"
    shutil.copytree(first, target)
    victim = next((target / "documents").rglob("manifest.json"))
    victim.unlink()
    os.mkfifo(victim)
    proc = invoke("store", "export", str(target), "--documents", "--store", str(filled[0]),
                  timeout=120)
    assert proc.returncode == 2 and "is not a regular file" in proc.stderr, proc.stderr
    (target / "parquet").mkdir()
    os.mkfifo(target / "parquet" / "runs.parquet")
    proc = invoke("store", "export", str(target), "--parquet", "--store", str(filled[0]),
                  timeout=120)
    assert proc.returncode == 2 and "is not a regular file" in proc.stderr, proc.stderr


def test_copied_documents_have_the_mode_of_every_other_file(filled, tmp_path):
    """The probe: the site's and the export's document copies were 0600, the rest 0644."""
    import stat

    out, site = tmp_path / "exp", tmp_path / "site"
    assert invoke("store", "export", str(out), "--documents", "--store",
                  str(filled[0])).returncode == 0
    assert invoke("site", "--out", str(site), "--store", str(filled[0])).returncode == 0
    (tmp_path / "probe").write_text("x")
    usual = stat.S_IMODE((tmp_path / "probe").stat().st_mode)
    copies = [*out.rglob("*.json"), *(site / "documents").glob("*.json"),
              *(site / "audits").glob("*")]
    assert copies and {stat.S_IMODE(p.stat().st_mode) for p in copies} == {usual}
    assert stat.S_IMODE((site / "index.html").stat().st_mode) == usual


def _scores(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return sorted(csv.DictReader(fh), key=lambda r: (r["workload"], r["device"]))


def test_report_from_the_store_is_the_report_of_the_files(filled, lab, tmp_path):
    files = invoke("report", "-r", str(lab / "made" / "a100"), "-r", str(lab / "made" / "mlu"),
                   "-r", str(lab / "cpu1"), "--out", str(tmp_path / "files"))
    assert files.returncode == 0, files.stderr
    stored = invoke("report", "--from-store", "--store", str(filled[0]), "--device", "a100",
                    "--device", "mlu370", "--device", "threads=1", "--out",
                    str(tmp_path / "store"))
    assert stored.returncode == 0, stored.stderr
    assert _scores(tmp_path / "store" / "scores.csv") == _scores(tmp_path / "files" /
                                                                 "scores.csv")
    assert (tmp_path / "store" / "aggregated.csv").read_text().count("\n") == \
        (tmp_path / "files" / "aggregated.csv").read_text().count("\n")
    md = (tmp_path / "store" / "report.md").read_text()
    assert "documents" in md  # the report names the exported documents it read


def test_the_schema_in_the_docs_is_the_codes():
    from testbed.store.cli import schema_markdown

    assert schema_markdown() in (ROOT / "docs" / "store.md").read_text(encoding="utf-8")


def test_store_locations(tmp_path, monkeypatch):
    from testbed.store.db import ENV, locate

    monkeypatch.delenv(ENV, raising=False)
    assert locate(None, tmp_path).path == tmp_path / "store.duckdb"
    monkeypatch.setenv(ENV, str(tmp_path / "lab.duckdb"))
    assert locate(None, tmp_path).path == tmp_path / "lab.duckdb"
    pg = locate("postgresql://lab:secret@db:5432/results", tmp_path)
    assert pg.url.startswith("postgresql+psycopg://lab:secret@") and pg.path is None
    assert pg.shown == "postgresql://lab:***@db:5432/results"  # never the password
