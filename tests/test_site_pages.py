"""What the leaderboard site says on its pages (the HTML as written; the browser walk is
tests/test_store_browser.py): a lone device has no composite score, a workload page says what
was measured, marks look as the report's, a disturbed result is marked and the store keeps
the flag as a column."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import sqlalchemy as sa

from bench.contention import judge
from bench.rules import QuietRules
from testbed.store import open_store
from testbed.store import tables as t
from testbed.store.ingest import add_paths
from testbed.store.queries import list_results, make_filters
from testbed.store.site import write_site
from tests.conftest import ROOT
from tests.report_fixtures import ONE_THREAD, TWO_THREADS, load, write


def site_of(tmp_path: Path, *runs: Path) -> Path:
    path = str(tmp_path / "store.duckdb")
    with open_store(path, ROOT) as store:
        add_paths(store, list(runs))
    with open_store(path, ROOT, read_only=True) as store:
        write_site(store, tmp_path / "site", make_filters())
    return tmp_path / "site"


def page(site: Path, workload: str) -> str:
    return next((site / "workloads").glob(f"{workload}-*.html")).read_text(encoding="utf-8")


def test_a_lone_device_has_no_composite_score_and_its_page_says_what_was_measured(tmp_path):
    html = page(site_of(tmp_path, ONE_THREAD), "resnet-infer")
    assert "composite score" not in html.split("id='leaderboard'")[1].split("</thead>")[0]
    assert "0.500" not in html
    assert "One device: no composite score" in html
    facts = dict(re.findall(r"<tr><td>([^<]+)</td><td class='text'>([^<]*)</td></tr>",
                            html.split("id='workload-facts'")[1].split("</table>")[0]))
    doc = load(ONE_THREAD, "resnet-infer")
    assert facts["configuration"] == doc["workload"]["config"]
    assert facts["precision"] == doc["workload"]["precision_used"] == "fp32"
    assert facts["batch size"] == str(doc["workload"]["params"]["batch_size"])
    assert f"batch_size = {doc['workload']['params']['batch_size']}" in facts["parameters"]


def test_two_devices_keep_the_composite(tmp_path):
    html = page(site_of(tmp_path, ONE_THREAD, TWO_THREADS), "resnet-infer")
    assert "<th>composite score</th>" in html
    assert "The composite score is the report's" in html


def test_marks_look_as_in_the_report_and_a_disturbed_result_is_marked(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(ONE_THREAD, runs / "quiet")
    busy = load(TWO_THREADS, "resnet-infer")
    busy["disturbed"] = judge([{"other_cpus": 1.5, "cpus": 2}], None, QuietRules())
    write(busy, runs / "busy")
    site = site_of(tmp_path, runs)
    html = page(site, "resnet-infer")
    legend = html.split("<dl class='marks'>")[1].split("</dl>")[0]
    # "far beyond the spec sheets" is "!" as in the report, never a bare W
    assert "<sup class='mark mark-W'>!</sup>" in legend and ">W</sup>" not in legend
    assert "<sup class='mark mark-D'>D</sup>" in legend and "disturbed while it measured" in \
        legend
    row = next(r for r in html.split("<tr>") if "2 threads" in r and "mark-D" in r)
    assert "other processes used 1.5 of 2 CPUs" in row  # the reason, on hover
    with open_store(str(tmp_path / "store.duckdb"), ROOT, read_only=True) as store:
        with store.begin() as conn:
            flags = dict(conn.execute(sa.select(t.results.c.run_id, t.results.c.disturbed)
                                      .where(t.results.c.entry_id == "resnet-infer")).all())
        listed = {r.run_id: r.disturbed for r in list_results(store, make_filters())
                  if r.entry_id == "resnet-infer"}
    # the busy copy says so; the older run's document does not say: unknown, not quiet
    assert sorted(flags.values(), key=str) == [None, True] and listed == flags
