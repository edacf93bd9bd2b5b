"""The report over real runs and fixture results: devices, invalid files, marks, scores, files."""

from __future__ import annotations

import csv
import json
import math
import re

import pytest

from bench.errors import UserError
from testbed.report import load_results, write_report
from testbed.report.analysis import analyse
from tests.conftest import run_bench
from tests.report_fixtures import (
    A100,
    A100_MEMORY,
    ONE_THREAD,
    TWO_THREADS,
    accelerator,
    as_device,
    build_lab,
    load,
    write,
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    dirs = build_lab(root)
    files = write_report([dirs[k] for k in ("cpu1", "cpu2", "a100", "mlu", "extra")],
                         root / "report", baseline=[dirs["a100"]])
    return dirs, files


def test_two_thread_counts_are_two_devices(tmp_path):
    inputs = load_results([ONE_THREAD, TWO_THREADS])
    labels = sorted(d.label for d in inputs.devices.values())
    assert labels == ["Intel Xeon Processor · 1 thread", "Intel Xeon Processor · 2 threads"]
    assert len(inputs.results) == 6 and inputs.manifests == 2 and not inputs.invalid
    files = write_report([ONE_THREAD, TWO_THREADS], tmp_path)
    a = files.analysis
    assert set(a.composites) == {"resnet-infer", "resnet-train", "gemm-infer"}
    for comp in a.composites.values():
        assert len(comp.scores) == 2
        assert "throughput_items_per_s" in comp.used
        # the VM has no RAPL: power is left out, with the reason from the results
        assert "RAPL" in comp.dropped["power_w_mean"][1]
    md = files.markdown.read_text()
    assert "| Intel Xeon Processor · 1 thread | cpu: Intel Xeon Processor · 1 thread |" in md
    assert "no RAPL package domains" in md


def test_the_two_real_runs_scores_follow_the_formula(tmp_path):
    """Recompute one composite by hand from the aggregated table (two devices: x~ = +-a)."""
    a = analyse(load_results([ONE_THREAD, TWO_THREADS]))
    wl = "gemm-infer"
    one, two = a.device_order()
    comp = a.composites[wl]
    expected = {one: 0.0, two: 0.0}
    k = 1 / len(comp.used)
    for metric in comp.used:
        v1 = a.cell(one, wl, metric)["value"]
        v2 = a.cell(two, wl, metric)["value"]
        sign = 1 if metric in ("throughput_items_per_s", "device_util_pct", "flop_per_s") else -1
        better_two = (v2 > v1) == (sign > 0)
        expected[two] += k * (0.9525741268224334 if better_two else 0.04742587317756678)
        expected[one] += k * (0.04742587317756678 if better_two else 0.9525741268224334)
    assert comp.scores[one].score == pytest.approx(expected[one], abs=1e-12)
    assert comp.scores[two].score == pytest.approx(expected[two], abs=1e-12)


def test_invalid_files_are_listed_with_the_reason_and_left_out(tmp_path):
    run = tmp_path / "run"
    doc = accelerator(TWO_THREADS, "resnet-infer", A100, "cuda", A100_MEMORY, 14, 300, 60,
                      65, 34)
    write(doc, run)
    bad = json.loads((run / "resnet-infer.json").read_text())
    bad["metrics"]["device_util_pct"]["value"] = 130.0  # schema: maximum 100
    write(bad, run, "util-over-100")
    tampered = dict(doc, status="ok")
    tampered["metrics"] = {**doc["metrics"], "throughput_items_per_s": {
        **doc["metrics"]["throughput_items_per_s"], "value": 1e9}}
    (run / "tampered.json").write_text(json.dumps({**tampered, "sha256": "0" * 64}))
    (run / "not-json.json").write_text("{")
    files = write_report([run], tmp_path / "rep")
    invalid = {f.path.name: " ".join(f.problems) for f in files.inputs.invalid}
    assert set(invalid) == {"util-over-100.json", "tampered.json", "not-json.json"}
    assert "130" in invalid["util-over-100.json"] and "maximum" in invalid["util-over-100.json"]
    assert "sha256" in invalid["tampered.json"]
    assert len(files.inputs.results) == 1
    md = files.markdown.read_text()
    html = files.html.read_text()
    for name in invalid:
        assert name in md and name in html
    assert "3 invalid" in md


def test_run_label_separates_devices_and_same_configuration_merges(tmp_path):
    base = load(TWO_THREADS, "resnet-infer")
    write(base, tmp_path / "a")
    write(base, tmp_path / "b", "again")  # the same configuration again: merged, n = 2
    labelled = json.loads(json.dumps(base))
    labelled["provenance"]["label"] = "capped 150W"
    write(labelled, tmp_path / "c")
    a = analyse(load_results([tmp_path / "a", tmp_path / "b", tmp_path / "c"]))
    labels = {d.label: k for k, d in a.devices.items()}
    assert set(labels) == {"Intel Xeon Processor · 2 threads", "capped 150W"}
    row = a.cell(labels["Intel Xeon Processor · 2 threads"], "resnet-infer",
                 "throughput_items_per_s")
    assert row["n"] == 2 and row["value"] == pytest.approx(
        base["metrics"]["throughput_items_per_s"]["value"])


def test_label_collisions_add_facts_until_unique(tmp_path):
    doc = load(TWO_THREADS, "gemm-infer")
    write(doc, tmp_path / "a")
    other = json.loads(json.dumps(doc))
    other["provenance"]["torch"]["version"] = "2.1.1+corex.4.1.0"
    write(other, tmp_path / "b")
    labels = sorted(d.label for d in load_results([tmp_path]).devices.values())
    assert labels == ["Intel Xeon Processor · 2 threads · torch 2.1.1+corex.4.1.0",
                      "Intel Xeon Processor · 2 threads · torch 2.13.0+cpu"]


def test_lab_report_marks_non_comparable_and_implausible_values(lab):
    _dirs, files = lab
    a = files.analysis
    mlu = next(k for k, d in a.devices.items() if d.name == "MLU370-X8")
    power = a.cell(mlu, "resnet-infer", "power_w_mean")
    assert "X" in power["marks"] and "1.68e+06 W" in " ".join(power["notes"])
    assert "P" in a.cell(mlu, "resnet-train", "throughput_items_per_s")["marks"]
    assert "O" in a.cell(mlu, "gemm-infer", "throughput_items_per_s")["marks"]
    assert a.status.loc[(mlu, "qwen2-0.5b-infer"), "status"] == "oom"
    md = files.markdown.read_text()
    assert re.search(r"\| resnet-train \|[^\n]*\[P\]", md)
    assert re.search(r"\| power_limit \[✗\] \| MLU370-X8 \| resnet-infer \|", md)
    html = files.html.read_text()
    assert "1.68 MW" in html and "mark-X" in html and "mark-P" in html and "mark-O" in html
    # the implausible power is excluded from the efficiency and power bars' normalisation
    assert "fell back to fp16" in html


def test_failed_check_removes_the_value_from_the_composite(tmp_path):
    one = accelerator(TWO_THREADS, "resnet-infer", A100, "cuda", A100_MEMORY, 14, 300, 60, 65,
                      34)
    two = as_device(one, "MLU370-X8", "mlu", 24 * 2**30)
    two["metrics"]["power_w_mean"]["value"] = 1.68e6
    two["metrics"]["items_per_j"]["value"] = \
        two["metrics"]["throughput_items_per_s"]["value"] / 1.68e6
    write(one, tmp_path / "a")
    write(two, tmp_path / "b")
    a = analyse(load_results([tmp_path]))
    comp = a.composites["resnet-infer"]
    assert "power_w_mean" not in comp.used and "items_per_j" not in comp.used
    device, why = comp.dropped["power_w_mean"]
    assert a.devices[device].name == "MLU370-X8" and "power_limit" in why
    assert "temp_c_mean" in comp.used


def test_baseline_relative_scores(lab):
    _dirs, files = lab
    a = files.analysis
    bl = a.baseline
    assert bl is not None and bl.device.name == A100
    a100 = next(k for k, d in a.devices.items() if d.name == A100)
    cpu2 = next(k for k, d in a.devices.items() if d.label.endswith("2 threads"))
    for wl in ("resnet-infer", "resnet-train", "gemm-infer", "qwen2-0.5b-infer"):
        assert bl.summary[(wl, a100)] == pytest.approx(1.0)
    mine = a.cell(cpu2, "resnet-infer", "throughput_items_per_s")["value"]
    theirs = a.cell(a100, "resnet-infer", "throughput_items_per_s")["value"]
    assert bl.ratios[("resnet-infer", cpu2)]["throughput_items_per_s"] == pytest.approx(
        mine / theirs)
    lat = bl.ratios[("resnet-infer", cpu2)]["latency_mean_s"]
    assert lat == pytest.approx(a.cell(a100, "resnet-infer", "latency_mean_s")["value"]
                                / a.cell(cpu2, "resnet-infer", "latency_mean_s")["value"])
    # LLM tiers: load 9.5 s (A100) vs 2.1 s; tiers (2400, 5200, 9100, 9800) vs
    # (-, -, 35, 61): 0.9 * 0 + 0.1 * 9.5 / 2.1 for the first two, then with 35/9100, 61/9800
    tiers = [t.score for t in bl.tiers[("qwen2-0.5b-infer", cpu2)]]
    load_ratio = 9.5 / 2.1
    assert tiers == pytest.approx([0.1 * load_ratio, 0.1 * load_ratio,
                                   0.9 * 35 / 9100 + 0.1 * load_ratio,
                                   0.9 * 61 / 9800 + 0.1 * load_ratio])
    # summarised by the geometric mean (SPEC CPU's), the arithmetic mean kept beside it
    assert bl.summary[("qwen2-0.5b-infer", cpu2)] == pytest.approx(math.prod(tiers) ** 0.25)
    assert bl.arithmetic[("qwen2-0.5b-infer", cpu2)] == pytest.approx(sum(tiers) / 4)
    rows = list(csv.DictReader(files.scores_csv.open()))
    assert {r["baseline_device"] for r in rows} == {A100}


def test_baseline_must_be_one_device(tmp_path):
    with pytest.raises(UserError, match="exactly one device"):
        write_report([ONE_THREAD], tmp_path, baseline=[ONE_THREAD, TWO_THREADS])
    with pytest.raises(UserError, match="does not exist"):
        write_report([ONE_THREAD], tmp_path, baseline=[tmp_path / "nope"])


def test_report_files_are_self_contained_and_complete(lab):
    _dirs, files = lab
    html = files.html.read_text()
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", html)
    assert not re.search(r"url\((?!#)", html)  # only in-document pattern references
    assert html.count("data-chart='radar'") == 1 and html.count("data-chart='roofline'") == 1
    assert html.count("data-chart='timeline'") == 5
    assert html.count("data-chart='bars'") >= 8
    for chart in files.charts:
        assert chart.read_text().startswith("<?xml") and f"charts/{chart.name}" in \
            files.markdown.read_text()
    rows = list(csv.DictReader(files.csv.open()))
    assert {"device", "workload", "metric", "value", "unit", "n_results", "marks",
            "notes"} <= set(rows[0])
    x = [r for r in rows if r["metric"] == "power_w_mean" and "X" in r["marks"]]
    assert len(x) == 1 and "power_limit" in x[0]["notes"]


def test_bench_run_label_is_recorded_and_validated(tmp_path, fixtures):
    out = tmp_path / "run"
    proc = run_bench("run", "--suite", str(fixtures / "suites" / "quick.yaml"), "--device",
                     "cpu", "--out", str(out), "--only", "test-sleep-infer", "--quiet",
                     "--label", "cpu pinned")
    assert proc.returncode == 0, proc.stderr
    inputs = load_results([out])
    assert not inputs.invalid
    assert inputs.results[0].doc["provenance"]["label"] == "cpu pinned"
    assert [d.label for d in inputs.devices.values()] == ["cpu pinned"]
    bad = run_bench("run", "--suite", str(fixtures / "suites" / "quick.yaml"), "--device",
                    "cpu", "--out", str(tmp_path / "bad"), "--label", "-oops;")
    assert bad.returncode == 2 and "--label" in bad.stderr


def test_host_bound_and_cpu_fallback_are_marked_wherever_the_values_appear(tmp_path):
    gpu = accelerator(TWO_THREADS, "resnet-infer", A100, "cuda", A100_MEMORY, 14, 300, 60, 65,
                      34, util_scale=0.2)  # utilisation ~20 % < the 30 % threshold
    assert gpu["metrics"]["host_bound"]["value"] is True
    npu = as_device(gpu, "MLU370-X8", "mlu", 24 * 2**30)
    npu["metrics"]["host_bound"]["value"] = False
    npu["workload"]["info"]["cpu_fallback"] = ["aten::_adaptive_avg_pool2d"]
    write(gpu, tmp_path / "gpu")
    write(npu, tmp_path / "npu")
    files = write_report([tmp_path / "gpu", tmp_path / "npu"], tmp_path / "rep",
                         baseline=[tmp_path / "gpu"])
    a = files.analysis
    by_name = {d.name: k for k, d in a.devices.items()}
    thr = {n: a.cell(k, "resnet-infer", "throughput_items_per_s") for n, k in by_name.items()}
    assert thr[A100]["marks"] == "H" and "below 30" in " ".join(thr[A100]["notes"])
    assert thr["MLU370-X8"]["marks"] == "C"
    assert "aten::_adaptive_avg_pool2d" in " ".join(thr["MLU370-X8"]["notes"])
    md = files.markdown.read_text()
    # appendix, composite and baseline tables all carry the marks
    assert md.count("[H]") >= 3 and md.count("[C]") >= 3
    html = files.html.read_text()
    assert "mark-H" in html and "mark-C" in html
