"""`invoke changes`: the planted steps are found at their run with their cause, nothing else is.

The store is tests/changes_fixtures.py's: 72 generated results with a 20 % drop at a driver
change, a 10 % drop with nothing changed, a torch change that moves nothing, and disturbed
runs, failed audits and impossible figures that must stay out of the series by default.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from testbed.audit.interval import ratio_interval
from testbed.store import open_store
from testbed.store.changes import (
    UNEXPLAINED,
    ChangeSettings,
    RunPoint,
    Series,
    SeriesKey,
    changed_fields,
    detect,
    disturbed_of,
    find_changes,
    provenance_of,
    segment_interval,
)
from testbed.store.ingest import add_paths, set_trust
from testbed.store.queries import make_filters
from tests.changes_fixtures import build
from tests.conftest import ROOT, skip_or_fail
from tests.pg_server import start_server


def invoke(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return build(tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="module")
def found(planted):
    with open_store(planted.store, ROOT, read_only=True) as store:
        return find_changes(store, make_filters())


def _when(truth) -> datetime:
    return datetime.fromisoformat(truth.started_at).replace(tzinfo=None)


def test_finds_each_planted_change_at_its_run_with_its_cause(planted, found):
    truths = planted.history.planted
    assert sorted((t.entry, t.change, t.fields) for t in truths) == [
        ("gemm-infer", -0.10, ()), ("resnet-infer", -0.20, ("driver",))]
    assert len(found.changes) == len(truths)
    for truth in truths:
        change = next(c for c in found.changes if c.key.hardware_key == truth.hardware_key
                      and c.key.entry_id == truth.entry)
        # at the right run: the first run kept in the series from the planted one on (the
        # planted run itself may be kept out: disturbed, an impossible figure, a failed audit)
        kept = found.series_of(change.key).kept
        first = next(p for p in kept if p.started_at >= _when(truth))
        assert change.after is first
        assert change.before is kept[kept.index(first) - 1]
        assert tuple(f.field for f in change.fields) == truth.fields
        assert change.kind == "regression"
        assert change.interval.low < 1 + truth.change < change.interval.high
        assert change.interval.high < 1  # confirmed: wholly below 1
    driver = next(c for c in found.changes if c.key.entry_id == "resnet-infer")
    assert driver.cause == "driver 535.104.05 -> 550.54.15"
    assert driver.since() == "driver 550.54.15"
    unexplained = next(c for c in found.changes if c.key.entry_id == "gemm-infer")
    assert unexplained.cause == UNEXPLAINED
    assert not unexplained.explained


def test_a_version_change_that_moves_nothing_is_no_change(planted, found):
    (torch,) = planted.history.version_only
    assert torch.fields == ("image", "torch")
    series = [s for s in found.series if s.key.hardware_key == torch.hardware_key
              and s.key.entry_id == torch.entry]
    assert len(series) == 1 and series[0].changes == []
    # the version did change inside that series
    kept = series[0].kept
    assert len({p.provenance["torch"] for p in kept}) == 2


def test_disturbed_failed_checks_and_failed_audits_are_kept_out_with_counts(planted, found):
    h = planted.history
    assert h.disturbed and h.failed_audits and h.failed_checks  # the seed plants each
    points = [p for s in found.series for p in s.points]
    out = {k: {p.doc_id for p in points if k in p.excluded} for k in found.excluded}
    assert {k: len(v) for k, v in out.items()} == found.excluded
    assert found.excluded["check"] == h.failed_checks
    assert found.excluded["disturbed"] > 0 and found.excluded["audit"] > 0
    for p in points:
        if "disturbed" in p.excluded:
            assert p.disturbed is not None and p.disturbed.value
        if "audit" in p.excluded:
            assert p.audit == "fail"
        if "check" in p.excluded:
            assert p.checks  # the check's own words
    kept = [p for s in found.series for p in s.kept]
    assert all(not p.excluded for p in kept)
    assert len(kept) + len({d for v in out.values() for d in v}) == len(points)
    assert "--include-all to see them" in found.kept_out()


def test_include_all_keeps_them_in(planted, found):
    with open_store(planted.store, ROOT, read_only=True) as store:
        everything = find_changes(store, make_filters(), include_all=True)
    assert everything.excluded == found.excluded
    assert all(len(s.kept) == len(s.points) for s in everything.series)
    assert sum(len(s.points) for s in everything.series) == \
        sum(len(s.points) for s in found.series)
    assert "(--include-all)" in everything.kept_out()


def test_since_limits_the_changes_listed_not_their_history(planted, found):
    newest = max(c.after.started_at for c in found.changes)
    with open_store(planted.store, ROOT, read_only=True) as store:
        later = find_changes(store, make_filters(
            since=(newest + timedelta(seconds=1)).isoformat()))
        just = find_changes(store, make_filters(since=newest.isoformat()))
    assert later.changes == []
    assert [c.after.run_id for c in just.changes] == [
        c.after.run_id for c in found.changes if c.after.started_at >= newest]
    # the change is still measured against the runs before --since
    assert just.changes[0].runs_before > 1


def test_device_filter_and_another_metric(planted):
    with open_store(planted.store, ROOT, read_only=True) as store:
        mlu = find_changes(store, make_filters(device=["MLU370"]))
        latency = find_changes(store, make_filters(workload=["resnet-infer"]),
                               metrics=("latency_mean_s",))
    assert [c.key.entry_id for c in mlu.changes] == ["gemm-infer"]
    # latency moves the other way: up 25 % when throughput drops 20 %, still a regression
    (c,) = latency.changes
    assert c.ratio > 1.2 and c.kind == "regression"


def test_disturbed_record_is_read_tolerantly():
    assert disturbed_of({}) is None  # older documents: unknown
    assert disturbed_of({"disturbed": {"reasons": []}}) is None
    assert disturbed_of({"disturbed": {"value": False}}).value is False
    record = disturbed_of({"disturbed": {"value": True, "reasons": [
        {"code": "host_cpu_busy", "figure": 1.5, "threshold": 0.25, "unit": "CPUs",
         "message": "other processes used 1.5 of 2 CPUs"}, {"code": "steal"}, "throttled"]}})
    assert record.value is True
    assert record.reasons == ("other processes used 1.5 of 2 CPUs", "steal", "throttled")
    assert record.describe().startswith("disturbed: other processes used")


def _doc(driver="550.54.15", torch="2.4.1+cu124", digest="a" * 64, host="n1",
         batch=32) -> dict:
    return {"provenance": {
        "bench_version": "0.1.0", "source_sha256": "f" * 64,
        "device": {"driver_version": driver, "sdk_version": "12.4", "vbios_version": "96.00"},
        "torch": {"version": torch},
        "image": {"tag": "testbed/cuda:2.4.1", "digest": f"sha256:{digest}", "native": False},
        "host": {"hostname": host, "os": "Debian 12", "kernel": "6.1"}},
        "workload": {"params": {"batch": batch}, "overrides": {}, "precision_used": "fp32"},
        "rules": {"repeats": 3}}


def test_attribution_names_exactly_what_changed():
    base = provenance_of(_doc())
    assert base["firmware"] == "vbios_version 96.00"
    one = changed_fields(base, provenance_of(_doc(driver="560.35.03")))
    assert [f.describe() for f in one] == ["driver 550.54.15 -> 560.35.03"]
    several = changed_fields(base, provenance_of(_doc(torch="2.5.1+cu124", digest="b" * 64)))
    assert [f.field for f in several] == ["torch", "image"]
    assert several[1].describe() == ("image testbed/cuda:2.4.1@aaaaaaaaaaaa -> "
                                     "testbed/cuda:2.4.1@bbbbbbbbbbbb")
    settings = changed_fields(base, provenance_of(_doc(batch=64, host="n2")))
    assert [f.describe() for f in settings] == [
        "host n1 -> n2", "run settings (params.batch 32 -> 64)"]
    assert changed_fields(base, provenance_of(_doc())) == []


def _point(value: float, repeats: tuple[float, ...]) -> RunPoint:
    return RunPoint("d", "r", datetime(2025, 1, 1), "k", value, repeats, {}, None, None, None)


def test_the_interval_is_the_audits_over_the_runs_either_side():
    before = [_point(v, (v,)) for v in (100.0, 102.0, 98.0)]
    after = [_point(v * 0.9, (v * 0.9,)) for v in (100.0, 102.0, 98.0)]
    interval = segment_interval(before, after, 0.95)
    assert math.isclose(interval.estimate, 0.9)
    # pooled over the runs' figures: the audit's own function on the same numbers
    same = ratio_interval(100.0, [100.0, 102.0, 98.0], 90.0, [90.0, 91.8, 88.2])
    assert (interval.low, interval.high) == pytest.approx((same.low, same.high))
    assert interval.high < 1
    # a lone run on a side: its repeats are the spread there
    lone = segment_interval([_point(100.0, (99.0, 101.0))],
                            [_point(99.0, (97.0, 101.0))], 0.95)
    assert lone.low < 1 < lone.high


def test_settings_refuse_what_cannot_work():
    from bench.errors import UserError

    with pytest.raises(UserError, match="not a probability"):
        ChangeSettings(max_pvalue=1.5)
    with pytest.raises(UserError, match="too short"):
        ChangeSettings(window=2)


def test_invoke_changes(planted):
    table = invoke("changes", "--store", planted.store)
    assert table.returncode == 0, table.stderr
    assert "changes: 2 change(s) in 6 series" in table.stdout
    assert "kept out:" in table.stdout and "--include-all to see them" in table.stdout
    assert "driver 535.104.05 -> 550.54.15" in table.stdout
    assert UNEXPLAINED in table.stdout
    # both runs' disturbed records, beside the unexplained change
    assert re.search(r"nothing in the provenance changed; run \S+: not disturbed; run \S+: "
                     "not disturbed", table.stdout)
    js = invoke("changes", "--store", planted.store, "--format", "json", "--workload",
                "resnet-infer")
    assert js.returncode == 0, js.stderr
    data = json.loads(js.stdout)
    assert [c["cause"] for c in data["changes"]] == ["driver 535.104.05 -> 550.54.15"]
    assert data["changes"][0]["ratio"] < 0.85 and data["excluded"]["audit"] >= 0
    for bad, words in ((["--metric", "device_util_pct"], "no ratio scale"),
                       (["--pvalue", "x"], "not a number"),
                       (["--since", "yesterday"], "not a date"),
                       (["--device", "no-such-device"], "matches these filters"),
                       (["--format", "xml"], "not table or json")):
        res = invoke("changes", "--store", planted.store, *bad)
        assert res.returncode == 2, (bad, res.stdout, res.stderr)
        assert words in res.stderr and "Traceback" not in res.stderr


def test_report_from_store_lists_the_changes_in_its_range(planted, tmp_path):
    res = invoke("report", "--from-store", "--store", planted.store, "--out",
                 str(tmp_path / "rep"), "--workload", "resnet-infer")
    assert res.returncode == 0, res.stderr
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert "## What changed: regressions and improvements in range" in md
    assert "driver 535.104.05 -&gt; 550.54.15" in md  # the report escapes Markdown's >
    assert "gemm-infer" not in md.split("## What changed")[1].split("##")[0]
    html = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert "id='changes'" in html and "href='#changes'" in html
    # a range after the change: the report says none
    after = invoke("report", "--from-store", "--store", planted.store, "--out",
                   str(tmp_path / "late"), "--since", "2025-10-01")
    assert after.returncode == 0, after.stderr
    late = (tmp_path / "late" / "report.md").read_text(encoding="utf-8")
    assert "**0 change(s) since 2025-10-01" in late


def test_the_same_changes_on_postgresql(planted, found):
    try:
        server = start_server()
    except RuntimeError as exc:
        skip_or_fail(f"no PostgreSQL server: {exc}")
    try:
        url = server.create_database("changes")
        with open_store(url, ROOT) as store:
            set_trust(store, planted.trust)
            assert not add_paths(store, [planted.docs]).refused
        with open_store(url, ROOT, read_only=True) as store:
            shared = find_changes(store, make_filters())
    finally:
        server.stop()
    assert shared.excluded == found.excluded
    assert [(c.key, c.after.doc_id, c.before.doc_id, c.cause, round(c.ratio, 9))
            for c in shared.changes] == [
        (c.key, c.after.doc_id, c.before.doc_id, c.cause, round(c.ratio, 9))
        for c in found.changes]


def _series(values: list[float]) -> Series:
    points = [RunPoint(f"d{i}", f"r{i}", datetime(2025, 1, 1) + timedelta(days=i), "k", v,
                       (v * 0.99, v * 1.01), {"driver": "550"}, None, None, None)
              for i, v in enumerate(values)]
    return Series(SeriesKey("hw", "resnet-infer", "small", "throughput_items_per_s"), "hw",
                  "resnet-infer", "images/s", points)


def test_one_run_off_its_level_is_no_change():
    # alternating +-1 % around 100: a flat level; one figure 40 times too high in the middle
    flat = [100.0 * (1.01 if i % 2 else 0.99) for i in range(30)]
    spike = list(flat)
    spike[15] = 4000.0
    assert detect(_series(flat), ChangeSettings()) == []
    assert detect(_series(spike), ChangeSettings()) == []
    # the same level stepping down 20 % at run 15 is one change, at its run
    step = [v * (0.8 if i >= 15 else 1.0) for i, v in enumerate(flat)]
    (change,) = detect(_series(step), ChangeSettings())
    assert change.after.run_id == "r15" and change.before.run_id == "r14"
    assert change.ratio == pytest.approx(0.8, rel=0.01)
    # a step at the newest run waits for a second run
    assert detect(_series([*flat, 80.0]), ChangeSettings()) == []
    assert len(detect(_series([*flat, 80.0, 79.0]), ChangeSettings())) == 1
