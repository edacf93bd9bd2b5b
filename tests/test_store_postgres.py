"""The shared store on a real PostgreSQL server, started in a temporary directory.

The same commands as on DuckDB, through the same SQLAlchemy layer: adding (idempotent, also
when two processes add the same run at once), listing, read-only SQL (one statement, in a
read-only transaction) and the leaderboard, whose ranking and scores must be those of the
DuckDB store holding the same documents.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import sqlalchemy as sa

from testbed.store import open_store
from testbed.store import tables as t
from testbed.store.ingest import add_paths
from testbed.store.queries import make_filters, read_only_query
from testbed.store.site.data import gather
from tests.conftest import ROOT, skip_or_fail
from tests.pg_server import start_server
from tests.report_fixtures import build_lab

INVOKE = [sys.executable, "-m", "invoke"]


def invoke(*args, timeout=300):
    return subprocess.run([*INVOKE, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def server():
    try:
        srv = start_server()
    except RuntimeError as exc:
        skip_or_fail(f"no PostgreSQL server: {exc}")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    dirs = build_lab(root / "made")
    for name in ("cpu1", "cpu2"):
        shutil.copytree(dirs[name], root / name)
    return root


def test_add_list_and_query_on_a_server(server, lab):
    url = server.create_database("cli")
    first = invoke("store", "add", str(lab), "--store", url)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 manifests, 18 results added" in first.stdout
    again = invoke("store", "add", str(lab), "--store", url)
    assert again.returncode == 0 and "nothing new" in again.stdout
    assert f"{len(list(lab.rglob('*.json')))} already stored" in again.stdout
    runs = invoke("store", "list", "runs", "--store", url)
    assert runs.returncode == 0 and "5 run(s)" in runs.stdout  # 2 real, 3 fixture devices
    assert "Intel Xeon Processor · 2 threads" in runs.stdout
    assert invoke("store", "reader", "cli_query", "--store", url).returncode == 0
    reader = url.replace("testbed@", "cli_query@")
    out = invoke("store", "query", "SELECT vendor, count(*) AS n FROM results GROUP BY vendor "
                 "ORDER BY vendor", "--store", reader, "--format", "json")
    assert out.returncode == 0, out.stderr
    assert {r["vendor"]: r["n"] for r in json.loads(out.stdout)}["mlu"] == 5
    with open_store(reader, ROOT, read_only=True) as store:
        for sql in ("SELECT 1; DROP TABLE results", "DROP TABLE results",
                    "DELETE FROM metrics", "INSERT INTO store_meta VALUES ('x', 'y')"):
            with pytest.raises(Exception, match="query failed"):
                read_only_query(store, sql)
        assert read_only_query(store, "SELECT count(*) FROM results").rows == [(18,)]


def test_two_processes_adding_the_same_run_store_it_once(server, lab):
    url = server.create_database("race")
    procs = [subprocess.Popen([*INVOKE, "store", "add", str(lab), "--store", url], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with open_store(url, ROOT, read_only=True) as store, store.begin() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(t.documents)).scalar()
        results = conn.execute(sa.select(sa.func.count()).select_from(t.results)).scalar()
        metrics = conn.execute(sa.select(sa.func.count()).select_from(t.metrics)).scalar()
    assert n == len(list(lab.rglob("*.json"))) and results == 18
    with open_store(url, ROOT) as store:  # nothing left to add: nothing was lost either
        assert add_paths(store, [lab]).added == {}
    assert metrics > 0


def test_a_document_another_writer_stored_meanwhile_is_counted_once(server, lab,
                                                                    monkeypatch):
    """The batch finds the document absent, another process commits it, the batch's insert
    then conflicts: it is retried one document at a time and that one counts as stored."""
    from testbed.store import ingest

    url = server.create_database("meanwhile")
    run = lab / "cpu1"
    original = ingest._drop_known_seals
    calls = []

    def other_writer_first(conn, docs, out):
        if not calls:
            calls.append(docs[0].path)
            with open_store(url, ROOT) as other:
                add_paths(other, [docs[0].path])
        return original(conn, docs, out)

    monkeypatch.setattr(ingest, "_drop_known_seals", other_writer_first)
    with open_store(url, ROOT) as store:
        summary = add_paths(store, [run])
    assert summary.present == calls and summary.refused == []
    assert sum(summary.added.values()) == len(list(run.glob("*.json"))) - 1


def test_the_leaderboard_is_the_same_on_both_databases(server, lab, tmp_path):
    url = server.create_database("board")
    boards = []
    for where in (url, str(tmp_path / "s.duckdb")):
        with open_store(where, ROOT) as store:
            add_paths(store, [lab])
        with open_store(where, ROOT, read_only=True) as store:
            data = gather(store, make_filters(), baseline="NVIDIA A100-SXM4-80GB")
        boards.append({w: [(r.device.key, r.rank, r.value, r.composite, r.baseline, r.status)
                           for r in b.rows] for w, b in data.boards.items()})
    assert boards[0] == boards[1]
    assert boards[0]["resnet-infer"][0][1] == 1  # someone is ranked


def test_queries_run_only_under_a_role_that_can_read_and_nothing_else(server, lab):
    """The probe: with the superuser's URL, COPY ... TO PROGRAM ran a command on the server and
    pg_read_file returned /etc/passwd, READ ONLY transaction or not."""
    import psycopg

    url = server.create_database("roles")
    assert invoke("store", "add", str(lab), "--store", url).returncode == 0
    marker = server.directory / "INJECTED"
    attacks = (f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'",
               "SELECT pg_read_file('/etc/passwd')", "SELECT lo_import('/etc/passwd')")
    for sql in (*attacks, "SELECT 1"):
        refused = invoke("store", "query", sql, "--store", url)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "is a superuser" in refused.stderr and "invoke store reader" in refused.stderr
        assert "Traceback" not in refused.stderr and "root:" not in refused.stdout
    assert not marker.exists()

    made = invoke("store", "reader", "testbed_query", "--store", url)
    assert made.returncode == 0 and "created" in made.stdout, made.stderr
    reader = url.replace("testbed@", "testbed_query@")
    ok = invoke("store", "query", "SELECT count(*) AS n FROM results", "--store", reader,
                "--format", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout) == [{"n": 18}], ok.stderr
    for sql in (*attacks, "DELETE FROM documents", "CREATE TABLE x (a int)"):
        denied = invoke("store", "query", sql, "--store", reader)
        assert denied.returncode == 2 and "The query failed" in denied.stderr, denied.stderr
        assert "root:" not in denied.stdout
    assert not marker.exists()
    slow = invoke("store", "query", "SELECT pg_sleep(30)", "--store", reader, "--timeout", "1")
    assert slow.returncode == 2 and "longer than 1 s" in slow.stderr, slow.stderr

    # the derived tables dropped and made again (an upgrade) keep the reader's rights
    with open_store(url, ROOT) as store, store.begin() as conn:
        conn.execute(t.store_meta.update().where(t.store_meta.c.key == "derived_version")
                     .values(value="0"))
    with open_store(url, ROOT):
        pass
    again = invoke("store", "query", "SELECT count(*) FROM metrics", "--store", reader)
    assert again.returncode == 0, again.stderr

    # a role that may also write is refused, naming what it may do
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("GRANT INSERT ON documents TO testbed_query")
    writer = invoke("store", "query", "SELECT 1", "--store", reader)
    assert writer.returncode == 2 and "may INSERT documents" in writer.stderr, writer.stderr
