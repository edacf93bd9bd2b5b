"""Every device an entry uses, on every node: the combination arithmetic, worked by hand."""

from __future__ import annotations

import pytest

from bench.multinode import combine_node_results
from bench.results import TelemetryContext, entry_idle, window_telemetry
from bench.telemetry.combine import combine_figures

NULL_FIELDS = ("mem_total_bytes", "clock_hz", "energy_j", "throttle")


def figures(**values):
    base = {k: None for k in ("util_pct", "mem_used_bytes_mean", "mem_used_bytes_peak",
                              "mem_used_pct_mean", "mem_used_pct_peak", "power_w", "temp_c",
                              "clock_hz", "energy_integrated_j", "energy_counter_j")}
    return {**base, **values}


def test_power_and_energy_add_up_utilisation_averages_temperature_is_the_hottest():
    a = figures(util_pct=90.0, power_w=300.0, energy_integrated_j=600.0, temp_c=60.0,
                mem_used_bytes_peak=10.0, mem_used_pct_peak=50.0, clock_hz=1.5e9)
    b = figures(util_pct=70.0, power_w=250.0, energy_integrated_j=500.0, temp_c=71.0,
                mem_used_bytes_peak=30.0, mem_used_pct_peak=75.0, clock_hz=1.3e9)
    out = combine_figures([a, b])
    assert out["power_w"] == 550.0 and out["energy_integrated_j"] == 1100.0
    assert out["util_pct"] == 80.0 and out["temp_c"] == 71.0
    assert out["mem_used_bytes_peak"] == 40.0 and out["mem_used_pct_peak"] == 75.0
    assert out["clock_hz"] == pytest.approx(1.4e9)
    assert out["energy_integrated_reason"] is None


def test_a_device_without_power_makes_the_sum_null_unless_counted_elsewhere():
    a = figures(power_w=200.0, energy_integrated_j=400.0)
    b = figures(power_w=None, energy_integrated_j=None,
                energy_integrated_reason="no power samples")
    out = combine_figures([a, b])
    assert out["power_w"] is None and out["energy_integrated_j"] is None
    assert out["energy_integrated_reason"] == "device 1 of 2: no power samples"
    # the second GPU of a BI-V150 card: its power is the card's, read on the first
    shared = combine_figures([a, b], shared=[False, True])
    assert shared["power_w"] == 200.0 and shared["energy_integrated_j"] == 400.0
    named = combine_figures([a, b], names=["node n1", "node n2"])
    assert named["energy_integrated_reason"] == "node n2: no power samples"


def _series(power, util, n):
    return {"power_w": [power] * n, "util_pct": [util] * n, "mem_used_bytes": [1e9] * n,
            "temp_c": [50.0] * n, **{f: [None] * n for f in NULL_FIELDS}}


def test_window_covers_the_devices_the_entry_used():
    t = [0.0, 1.0, 2.0, 3.0, 4.0]
    snap = {"t_mono_s": t, "devices": [{"index": i, "series": _series(100.0 * (i + 1), 50.0, 5)}
                                       for i in range(3)]}
    both = TelemetryContext(snapshot=snap, interval_s=1.0, devices=(0, 1))
    out = window_telemetry(both, 1.0, 3.0)
    # 100 W + 200 W over 2 s; device 2 (300 W) is not the entry's
    assert out["power_w"] == 300.0 and out["energy_integrated_j"] == pytest.approx(600.0)
    assert [d["index"] for d in out["devices"]] == [0, 1]
    assert out["devices"][1]["energy_integrated_j"] == pytest.approx(400.0)
    one = window_telemetry(TelemetryContext(snapshot=snap, interval_s=1.0, devices=(0,)),
                           1.0, 3.0)
    assert one["power_w"] == 100.0 and "devices" not in one


def test_idle_baseline_of_the_entrys_devices():
    idle = {"power_w": 90.0, "devices": [{"index": 0, "power_w": 20.0},
                                         {"index": 1, "power_w": 30.0},
                                         {"index": 2, "power_w": 40.0}]}
    assert entry_idle(idle, [0, 2])["power_w"] == 60.0
    assert entry_idle({"power_w": 25.0}, [0])["power_w"] == 25.0  # one device sampled
    gap = entry_idle({**idle, "devices": [{"index": 0, "power_w": None}]}, [0])
    assert gap["power_w"] is None and gap["reason"]


def node_doc(node: str, rank: int, watts: float, idle_w: float, offset: float) -> dict:
    """A node's result: 2 devices at ``watts`` each, a window of 4 s on the node's own
    clock (``offset`` shifts that clock: nodes do not share one)."""
    t = [offset + 0.5 * k for k in range(21)]  # 0 .. 10 s
    window = {"start_mono": 0, "end_mono": 0, "start_wall": 0, "end_wall": 0,
              "duration_s": 4.0, "start_s": offset + 2.0, "end_s": offset + 6.0}
    return {
        "workload": {"item_unit": "B", "id": "coll"},
        "rules": {"host_bound_util_pct": 30.0},
        "status": "ok",
        "repeats": [{"index": 0, "status": "ok", "window": window, "iterations": 4,
                     "items": 400, "throughput_items_per_s": 100.0,
                     "latencies_s": [1.0] * 4, "metrics": {}}],
        "points": [{"params": {"op": "all_reduce"}, "status": "ok",
                    "windows": [{"start_s": offset + 2.0, "end_s": offset + 4.0}],
                    "metrics": {"throughput_items_per_s": {"value": 50.0, "unit": "B/s"},
                                "power_w_mean": {"value": 1.0, "unit": "W"}}}],
        "placement": {"node": node, "node_rank": rank, "devices": [0, 1]},
        "telemetry": {"t_s": t, "t_wall": t, "backend": "nvml", "errors_t_s": [],
                      "interval": {"requested_s": 0.5}, "unavailable": {}, "scope": {},
                      "not_the_device": None, "idle": {"power_w": idle_w},
                      "devices": [{"index": i, "series": _series(watts, 80.0, 21)}
                                  for i in range(2)]},
        "sha256": "0" * 64,
    }


def test_nodes_of_a_multi_node_entry_are_summed_on_their_own_clocks():
    first = node_doc("n1", 0, watts=100.0, idle_w=40.0, offset=0.0)
    second = node_doc("n2", 1, watts=50.0, idle_w=20.0, offset=1000.0)
    doc = combine_node_results([first, second], "cuda")
    m = doc["metrics"]
    # 2 x 100 W + 2 x 50 W, over each node's own 4 s window
    assert m["power_w_mean"]["value"] == pytest.approx(300.0)
    assert m["energy_j"]["value"] == pytest.approx(1200.0)
    assert m["idle_power_w"]["value"] == pytest.approx(60.0)
    assert m["energy_above_idle_j"]["value"] == pytest.approx(1200.0 - 60.0 * 4.0)
    assert m["items_per_j"]["value"] == pytest.approx(100.0 / 300.0)
    assert m["device_util_pct"]["value"] == pytest.approx(80.0)
    nodes = doc["repeats"][0]["telemetry"]["nodes"]
    assert [(n["node"], n["power_w"]) for n in nodes] == [("n1", 200.0), ("n2", 100.0)]
    point = doc["points"][0]["metrics"]
    assert point["power_w_mean"]["value"] == pytest.approx(300.0)  # re-derived, not node 1's
    assert point["energy_integrated_j"]["value"] == pytest.approx(600.0)
    assert [n["node"] for n in doc["telemetry"]["nodes"]] == ["n2"]
    assert doc["sha256"] != "0" * 64


def test_a_node_that_wrote_nothing_leaves_the_sums_null_and_named():
    first = node_doc("n1", 0, watts=100.0, idle_w=40.0, offset=0.0)
    doc = combine_node_results([first], "cuda", missing=["n2"])
    m = doc["metrics"]
    assert m["power_w_mean"]["value"] is None and m["energy_j"]["value"] is None
    assert "n2" in m["energy_j"]["reason"]
    assert m["idle_power_w"]["value"] is None
    assert m["throughput_items_per_s"]["value"] == 100.0  # the job's figures stay


def test_a_multi_node_entry_is_disturbed_when_any_node_was():
    from bench.contention import judge
    from bench.rules import QuietRules

    quiet = judge([{"other_cpus": 0.1, "cpus": 8, "slowdown": 1.0}], None, QuietRules())
    busy = judge([{"other_cpus": 6.0, "cpus": 8, "slowdown": 1.0}], None, QuietRules())
    first = {**node_doc("n1", 0, 100.0, 40.0, 0.0), "disturbed": quiet}
    second = {**node_doc("n2", 1, 50.0, 20.0, 1000.0), "disturbed": busy}
    doc = combine_node_results([first, second], "cuda")
    assert doc["disturbed"]["value"] is True
    (reason,) = doc["disturbed"]["reasons"]
    assert reason["code"] == "host_cpu" and reason["message"].startswith(
        "node n2: other processes used 6.0 of 8 CPUs")
    assert combine_node_results([first, {**second, "disturbed": quiet}],
                                "cuda")["disturbed"]["value"] is False
    # a node that wrote nothing cannot say: unknown, not quiet
    lone = combine_node_results([first], "cuda", missing=["n2"])["disturbed"]
    assert lone["value"] is None and lone["unjudged"] == ["node n2: no record"]
    # results from before the record stay without one
    assert "disturbed" not in combine_node_results([node_doc("n1", 0, 1.0, 1.0, 0.0)], "cuda")


def test_the_nodes_of_a_gathered_entry_are_in_the_jobs_order_with_their_job_rank():
    """c10d numbered the second node's ranks first: the record says which node is which in
    the job instead of "node n1, node_rank 0" beside "n2 holds ranks 0, 1"."""
    first = node_doc("n1", 0, 100.0, 40.0, 0.0)
    first["placement"]["nodes"] = [{"node": "n2", "ranks": [0, 1]},
                                   {"node": "n1", "ranks": [2, 3]}]
    second = node_doc("n2", 1, 50.0, 20.0, 1000.0)
    doc = combine_node_results([first, second], "cuda")
    assert doc["placement"]["nodes"] == [{"node": "n1", "node_rank": 0, "ranks": [2, 3]},
                                         {"node": "n2", "node_rank": 1, "ranks": [0, 1]}]
    assert (doc["placement"]["node"], doc["placement"]["node_rank"]) == ("n1", 0)


def test_the_report_says_nodes_and_ranks_of_a_multi_rank_result():
    from testbed.report.views import placement_text

    def doc(nodes, world):
        return {"placement": {"world_size": world, "nodes": nodes}}

    assert placement_text(doc([{"node": "n1", "ranks": [2, 3]},
                               {"node": "n2", "ranks": [0, 1]}], 4)) == "2 nodes × 2 ranks"
    assert placement_text(doc([{"node": "n1", "ranks": [0]},
                               {"node": "n2", "ranks": [1]}], 2)) == "2 nodes × 1 rank"
    assert placement_text(doc([{"node": "a", "ranks": [0, 1, 2]},
                               {"node": "b", "ranks": [3]}], 4)) == "4 ranks on 2 nodes"
    assert placement_text(doc([{"node": "a", "ranks": [0, 1]}], 2)) == "2 ranks on 1 node"
    assert placement_text(doc([{"node": "a", "ranks": [0]}], 1)) is None
    assert placement_text({}) is None


def test_a_two_node_result_is_reported_with_its_nodes_and_ranks(tmp_path):
    """The report called a 2-node x 2-rank collectives result "1 device" and said no more."""
    import json

    from testbed.report import write_report
    from tests.conftest import FIXTURES
    from tests.report_fixtures import write

    doc = json.loads((FIXTURES / "results" / "scorecard-cpu" / "collectives.json").read_text())
    doc["placement"] = {"launcher": "slurm", "job_id": "7", "world_size": 4, "nnodes": 2,
                        "node": "n1", "node_rank": 0, "devices": [0],
                        "nodes": [{"node": "n1", "node_rank": 0, "ranks": [2, 3]},
                                  {"node": "n2", "node_rank": 1, "ranks": [0, 1]}]}
    write(doc, tmp_path / "run")
    files = write_report([tmp_path / "run"], tmp_path / "report")
    md = files.markdown.read_text(encoding="utf-8")
    assert f"| {doc['workload']['id']} (2 nodes × 2 ranks) |" in md
    assert "1 device configuration(s)" in md and "1 device(s)" not in md
