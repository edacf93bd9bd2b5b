"""Published tables (``invoke import``) checked and scored beside measurements.

Small published tables are built here with one planted error of each class the checks must
catch (a unit error in power with the throughput scaled by the same factor, a column copied
from another metric in one mode of a two-mode report, a throughput no device could reach, a
latency that contradicts its throughput, a value far beyond what the spec sheets predict);
each must be caught, marked on the right value, kept out of the scores and drawn as
described. The same table without the plants passes everything.
"""

from __future__ import annotations

import copy
import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import UserError
from bench.validate import validate_file
from testbed.published import build_documents, import_table, parse_cell, parse_unit
from testbed.report import write_report
from testbed.report.analysis import Analysis
from testbed.report.claims import claim_verdict
from testbed.report.metrics import PUBLISHED_COMPOSITE
from tests.report_fixtures import TWO_THREADS, accelerator, write

ROOT = Path(__file__).resolve().parent.parent
CITE = {"title": "Fixture evaluation of AI accelerators", "url": "https://example.org/eval",
        "table": "Table 2", "page": 7, "publisher": "Fixture Lab", "role": "independent"}
A100, PCIE, MLU = "NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB", "MLU370-X8"
# one throughput column for images and sequences alike: items are each workload's own
THR, LAT, POW, EFF, TEMP = ("throughput [items/s]", "latency [ms]", "power [W]",
                            "efficiency [items/J]", "temperature [C]")


def row(device: str, workload: str, thr: float, power: float, temp: float, batch: int = 64,
        latency_ms: float | None = None, efficiency: float | str | None = None,
        precision: str = "FP16") -> dict[str, object]:
    """A row whose latency and efficiency agree with its throughput unless given; the table
    prints the configuration its rows ran at (so FLOPs per item are known)."""
    infer = workload.endswith("infer")
    return {"device": device, "workload": workload, "config": "full", "precision": precision,
            "batch size": batch, THR: thr,
            LAT: (latency_ms if latency_ms is not None else 1e3 * batch / thr) if infer
            else "--",
            POW: power, EFF: thr / power if efficiency is None else efficiency, TEMP: temp}


def clean_rows() -> list[dict[str, object]]:
    """Three devices, inference and training, every figure consistent."""
    return [
        row(A100, "resnet-infer", 2400, 300, 60), row(PCIE, "resnet-infer", 2000, 230, 55),
        row(MLU, "resnet-infer", 900, 150, 50),
        row(A100, "resnet-train", 800, 350, 66, efficiency=""),
        row(PCIE, "resnet-train", 700, 240, 62, efficiency=""),
        row(MLU, "resnet-train", 300, 160, 58, efficiency=""),
        row(A100, "bert-infer", 1500, 300, 61, batch=8),
        row(PCIE, "bert-infer", 1300, 240, 57, batch=8),
        row(MLU, "bert-infer", 400, 150, 52, batch=8),
    ]


def planted_rows() -> list[dict[str, object]]:
    rows = clean_rows()
    # 1. a unit error in power (W read as uW) with the throughput scaled by the same factor:
    #    items/J is the one consistent value
    rows[2] = row(MLU, "resnet-infer", 900e6, 150e6, 50, latency_ms=1e3 * 64 / 900,
                  efficiency=6.0)
    # 2. in training only, the throughput table is a copy of the temperature table
    for r in rows[3:6]:
        r[THR] = r[TEMP]
    # 3. a throughput no device could reach: 10,000 BERT-base sequences/s (70.7 GFLOP each)
    #    is 707 TFLOP/s on a 312 TFLOP/s A100; latency and power agree with it
    rows[6] = row(A100, "bert-infer", 10000, 300, 61, batch=8, efficiency="")
    # 4. a latency that contradicts its throughput: 0.4 ms per batch of 1 next to 17/s
    rows.append(row(PCIE, "yolov10n-infer", 17, 200, 50, batch=1, latency_ms=0.4))
    rows.append(row(A100, "yolov10n-infer", 2100, 250, 55, batch=1))
    return rows


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    headers = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=headers)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return path


def imported(tmp: Path, name: str, rows: list[dict[str, object]], **cite: object) -> Path:
    table = write_csv(tmp / f"{name}.csv", rows)
    return import_table(table, tmp / "published" / name, {**CITE, **cite}, {}).out


def key(a: Analysis, name: str) -> str:
    return next(k for k, d in a.devices.items() if d.name == name)


def marks(a: Analysis, device: str, workload: str, metric: str) -> str:
    return str(a.cell(key(a, device), workload, metric)["marks"])


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("planted")
    out = imported(tmp, "planted", planted_rows())
    return write_report([out], tmp / "report")


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    return write_report([imported(tmp, "clean", clean_rows())], tmp / "report")


# -- the import ----------------------------------------------------------------------------
def test_every_row_becomes_a_valid_sealed_document_with_its_citation(tmp_path):
    out = imported(tmp_path, "clean", clean_rows())
    files = sorted(out.glob("*.json"))
    assert len(files) == len(clean_rows())
    for path in files:
        report = validate_file(path)
        assert report.ok and report.schema == "published", report.problems
    doc = json.loads(files[0].read_text())
    assert doc["source"] == {**CITE}
    assert doc["import"]["row"] == 1 and doc["import"]["shape"] == "wide"
    assert doc["device"] == {"name": A100, "vendor": "cuda", "count": 1,
                             "spec": "a100-sxm4-40gb"}
    m = doc["metrics"]
    assert m["latency_mean_s"]["value"] == pytest.approx(64 / 2400)  # ms -> s
    assert m["throughput_items_per_s"]["status"] == "published"
    assert m["flop_per_item"]["status"] == "derived"
    assert m["flop_per_item"]["value"] == 7_326_601_216  # ResNet-34 at 224 x 224
    assert m["mfu_pct"]["value"] == pytest.approx(100 * 2400 * 7.326601216e9 / 312e12)
    # the training rows' blank efficiency cells: items/J computed, and said so
    train = json.loads(files[3].read_text())["metrics"]["items_per_j"]
    assert train["status"] == "derived" and train["value"] == pytest.approx(800 / 350)
    assert json.loads(files[3].read_text())["metrics"]["latency_mean_s"]["status"] == "not_run"


def test_long_vendor_shape_with_concurrent_streams(tmp_path):
    table = tmp_path / "vendor.csv"
    table.write_text(
        "Network,Framework,Batch Size,Throughput,Unit,Latency (ms),Precision,"
        "Concurrent Streams,Dataset\n"
        "ResNet-34,PyTorch,32,2400,img/sec,53.3,FP16,4,Synthetic\n"
        "BERT-base,PyTorch,8,--,sequences/s,,FP16,1,SQuAD v1.1\n", encoding="utf-8")
    docs = build_documents(table, {**CITE, "role": "vendor"}, {"device": A100})
    first, second = docs
    assert first["import"]["shape"] == "long" and first["device"]["name"] == A100
    assert first["workload"]["id"] == "resnet-infer"
    # the table prints no configuration: only what it prints, nothing of the suite's config
    assert first["workload"]["params"] == {"batch_size": 32, "streams": 4}
    assert first["workload"]["overrides"] == {} and "flop_per_item" not in first["metrics"]
    assert "config" in first["workload"]["unknowns"]
    assert first["workload"]["config"] == "config not published, batch 32, 4 streams, fp16"
    assert first["workload"]["info"]["framework"] == "PyTorch"
    assert first["metrics"]["throughput_items_per_s"]["unit"] == "images/s"
    assert second["status"] == "not_run"
    assert second["metrics"]["throughput_items_per_s"]["status"] == "not_run"
    assert second["metrics"]["latency_mean_s"]["status"] == "empty"


def test_yaml_table_carries_its_citation(tmp_path):
    table = tmp_path / "table.yaml"
    table.write_text(json.dumps({
        "source": {**CITE, "doi": "10.1234/fixture.5678", "url": None},
        "defaults": {"precision": "bf16", "mode": "infer"},
        "rows": [{"device": A100, "workload": "bert", "batch size": 8,
                  "throughput [sequences/s]": 1500, "latency [ms]": 5.3}]}),
        encoding="utf-8")
    (doc,) = build_documents(table, {}, {})
    assert doc["source"]["doi"] == "10.1234/fixture.5678" and "url" not in doc["source"]
    assert doc["workload"]["id"] == "bert-infer"
    assert doc["workload"]["precision_used"] == "bf16"


@pytest.mark.parametrize(("cells", "message"), [
    ({THR: "about 2400"}, "is not a number"),
    ({"throughput [furlongs/s]": 5}, "not a rate unit"),
    ({"workload": "frobnicator-7"}, "not one of this test-bed's workloads"),
    ({"precision": "fp13"}, "precision 'fp13' is not known"),
    ({"workload": "bert-infer", "throughput [images/s]": 5},
     "one item of bert is one of its sequences"),
])
def test_bad_tables_name_row_column_and_fix(tmp_path, cells, message):
    bad = {**clean_rows()[0], **cells}
    table = write_csv(tmp_path / "bad.csv", [bad])
    with pytest.raises(UserError, match=re.escape(message)) as err:
        build_documents(table, CITE, {})
    assert "row 1" in str(err.value)


def test_a_citation_is_required(tmp_path):
    table = write_csv(tmp_path / "t.csv", clean_rows()[:1])
    with pytest.raises(UserError, match="citation lacks url or doi") as caught:
        build_documents(table, {**CITE, "url": None}, {})
    assert "--table-name" in caught.value.fix  # the flag invoke import takes


def test_cells_and_units():
    assert parse_unit("time", "µs").factor == 1e-6
    assert parse_unit("rate", "img/sec").si == "images/s"
    assert parse_unit("efficiency", "(images/s)/W").si == "images/J"
    assert parse_unit("temperature", "°F").convert(212) == pytest.approx(100)
    assert parse_cell("1,234.5", parse_unit("power", "kW"), "x")["value"] == 1_234_500
    assert parse_cell("--", None, "x")["status"] == "not_run"
    assert parse_cell("OOM", None, "x")["status"] == "oom"
    assert parse_cell("97*", parse_unit("percent", "%"), "x")["value"] == 97


# -- the clean table -------------------------------------------------------------------------
def test_a_clean_table_passes_every_check(clean):
    a = clean.analysis
    assert [f for r in a.reviews for f in r.findings] == []
    assert a.copies == [] and a.outliers == []
    assert not a.table["marks"].str.contains("[XW]").any()
    applied = {o.check for r in a.reviews for o in r.outcomes if o.applied}
    assert {"throughput_bound", "latency_throughput", "efficiency", "power_limit"} <= applied
    for wl in ("resnet-infer", "resnet-train", "bert-infer"):
        assert "throughput_items_per_s" in a.composites[wl].used


# -- 1. power unit error with the throughput scaled alike ------------------------------------
def test_power_unit_error_marks_power_and_throughput_not_the_consistent_efficiency(planted):
    a = planted.analysis
    found = {f.check: f for r in a.reviews if r.result.doc["device"]["name"] == MLU
             and r.workload == "resnet-infer" for f in r.findings}
    assert "power_w_mean" in found["power_limit"].metrics
    assert found["throughput_bound"].metrics[0] == "throughput_items_per_s"
    assert "flop_per_s" in found["throughput_bound"].metrics  # derived: shares the fate
    assert "carries the same error" in found["efficiency"].message
    assert "X" in marks(a, MLU, "resnet-infer", "power_w_mean")
    assert "X" in marks(a, MLU, "resnet-infer", "throughput_items_per_s")
    assert "X" in marks(a, MLU, "resnet-infer", "mfu_pct")
    assert "X" not in marks(a, MLU, "resnet-infer", "items_per_j")
    # kept out of the scores: no min-max scale over 900 million images/s. The MLU, whose
    # throughput failed its bound, is left out of the composite; the others keep theirs whole
    comp = a.composites["resnet-infer"]
    assert key(a, MLU) not in comp.scores and len(comp.scores) == 2
    assert {"throughput_items_per_s", "power_w_mean", "items_per_j"} <= set(comp.used)


def bar_rects(svg: str, group_title_part: str) -> list[tuple[str, float, str]]:
    """(class, height, tooltip) of the bars whose tooltip names the group."""
    out = []
    for m in re.finditer(r"<rect class='(bar[^']*)' x='[^']+' y='[^']+' width='[^']+' "
                         r"height='([^']+)'[^>]*><title>([^<]*)</title>", svg):
        if group_title_part in m.group(3):
            out.append((m.group(1), float(m.group(2)), m.group(3)))
    return out


def test_flagged_values_are_drawn_broken_and_never_flatten_their_group(planted):
    svg = next(f for f in planted.charts if f.name == "bars-throughput_items_per_s.svg")
    text = svg.read_text()
    bars = bar_rects(text, "resnet-infer")
    by_device = {next(n for n in (A100, PCIE, MLU) if n.split()[-1][:8] in t or
                      n.replace("NVIDIA ", "")[:12] in t): (c, h) for c, h, t in bars}
    a100, pcie, mlu = by_device[A100], by_device[PCIE], by_device[MLU]
    assert mlu[0] == "bar bar-clipped"  # a broken bar, never scaled as a full one
    assert a100[0] == pcie[0] == "bar"
    assert pcie[1] / a100[1] == pytest.approx(2000 / 2400, rel=0.01)  # not flattened
    assert "class='break'" in text and "9.000e+08 images/s" in text


# -- 2. a copied column in one mode of a two-mode report -----------------------------------
def test_a_column_copied_in_training_only_is_found_in_its_slice(planted):
    a = planted.analysis
    (copy_,) = a.copies
    assert set(copy_.metrics) == {"throughput_items_per_s", "temp_c_mean"}
    assert "in Training" in copy_.message
    assert {w for _, w in copy_.cells} == {"resnet-train"}
    for device in (A100, PCIE, MLU):
        assert "X" in marks(a, device, "resnet-train", "throughput_items_per_s")
        assert "X" in marks(a, device, "resnet-train", "temp_c_mean")
        assert "X" not in marks(a, device, "resnet-infer", "temp_c_mean")
        # what was computed from the copied throughput goes with it
        assert "X" in marks(a, device, "resnet-train", "flop_per_s")
        assert "X" in marks(a, device, "resnet-train", "items_per_j")
    assert "resnet-train" not in a.composites  # no device's throughput is believable


# -- 3. a throughput no device could reach -----------------------------------------------------
def test_an_impossible_throughput_fails_its_own_bound(planted):
    a = planted.analysis
    (rev,) = [r for r in a.reviews if r.workload == "bert-infer"
              and r.result.doc["device"]["name"] == A100]
    (bound,) = [f for f in rev.findings if f.check == "throughput_bound"]
    assert "706.7 TFLOP/s" in bound.message and "fp16 peak of 312 TFLOP/s" in bound.message
    for metric in ("throughput_items_per_s", "flop_per_s", "mfu_pct", "items_per_j"):
        assert "X" in marks(a, A100, "bert-infer", metric), metric
    assert "X" not in marks(a, A100, "bert-infer", "power_w_mean")
    comp = a.composites["bert-infer"]
    assert key(a, A100) not in comp.scores and "throughput_items_per_s" in comp.used


# -- 4. a latency that contradicts its throughput ----------------------------------------------
def test_latency_contradicting_throughput_marks_both(planted):
    a = planted.analysis
    (rev,) = [r for r in a.reviews if r.workload == "yolov10n-infer"
              and r.result.doc["device"]["name"] == PCIE]
    (found,) = [f for f in rev.findings if f.check == "latency_throughput"]
    assert "0.4 ms" in found.message
    assert "X" in marks(a, PCIE, "yolov10n-infer", "latency_mean_s")
    assert "X" in marks(a, PCIE, "yolov10n-infer", "throughput_items_per_s")
    assert "X" not in marks(a, A100, "yolov10n-infer", "latency_mean_s")


def test_checks_table_lists_every_basis_that_fired(planted):
    rows = {r[1]: r for r in planted_views(planted).checks.rows}
    basis = rows["power_limit"][5]
    assert "failed on: NVIDIA A100-PCIE-40GB" not in basis
    assert "failed on: Cambricon MLU370-X8 board power limit 250 W" in basis
    assert rows["throughput_bound"][4].text == "failed"
    assert rows["identical_columns"][3] == "1"


def planted_views(files):
    from testbed.report.views import build_views

    return build_views(files.analysis)


# -- 5. a value far beyond what the spec sheets predict -----------------------------------------
def test_outlier_gets_a_warning_and_stays_out_of_the_others_scale(tmp_path):
    rows = clean_rows()[:3]
    # 4000 images/s on a 48 TFLOP/s MLU370 device is 61 % of its peak: possible, so no ✗,
    # but 11.7x the A100s' share of their 312 TFLOP/s: a warning
    rows[2] = row(MLU, "resnet-infer", 4000, 150, 50)
    files = write_report([imported(tmp_path, "outlier", rows)], tmp_path / "report")
    a = files.analysis
    # the throughput, the latency of the same batches and the FLOP/s made of the throughput
    assert {(a.devices[o.device].name, o.metric) for o in a.outliers} == {
        (MLU, "throughput_items_per_s"), (MLU, "latency_mean_s"), (MLU, "flop_per_s")}
    o = next(o for o in a.outliers if o.metric == "throughput_items_per_s")
    assert o.times == pytest.approx((4000 / 48e12) / ((2400 + 2000) / 2 / 312e12))
    assert "W" in marks(a, MLU, "resnet-infer", "throughput_items_per_s")
    comp = a.composites["resnet-infer"]
    parts = {d: next(p for p in s.parts if p.metric == "throughput_items_per_s")
             for d, s in comp.scores.items()}
    # the A100s span the scale alone; the outlier is clipped to its top
    assert parts[key(a, A100)].scaled == pytest.approx(3.0)
    assert parts[key(a, PCIE)].scaled == pytest.approx(-3.0)
    assert parts[key(a, MLU)].scaled == pytest.approx(3.0)
    svg = next(f for f in files.charts if f.name == "bars-throughput_items_per_s.svg")
    assert "bar bar-clipped" in svg.read_text()
    md = files.markdown.read_text()
    assert "[!]" in md and "outliers" in md


# -- scores: names and summaries ----------------------------------------------------------------
def test_published_composite_is_exactly_the_publications_four_metrics(tmp_path):
    from testbed.report.metrics import score_settings

    out = imported(tmp_path, "clean", clean_rows())
    files = write_report([out], tmp_path / "p", settings=score_settings(composite="published"))
    comp = files.analysis.composites["resnet-infer"]
    assert set(comp.used) == set(PUBLISHED_COMPOSITE)
    assert set(files.analysis.composites["resnet-train"].used) == set(PUBLISHED_COMPOSITE) - {
        "latency_mean_s"}  # latency is an inference metric
    html = files.html.read_text()
    assert "Published composite" in html
    default = write_report([out], tmp_path / "d")
    assert "Published composite" not in default.html.read_text()
    assert "default metric set" in default.html.read_text()
    custom = write_report([out], tmp_path / "c", settings=score_settings(
        weights=["power_w_mean=2"], composite="published"))
    assert "Published composite" not in custom.html.read_text()


def test_devices_table_has_no_long_unbroken_columns(clean):
    views = planted_views(clean)
    assert views.devices.header == ["device", "hardware", "software", "spec sheet", "results",
                                    "from"]
    assert "published: Fixture evaluation" in views.devices.rows[0][5].text


# -- claims -------------------------------------------------------------------------------------
def test_claim_verdicts_under_the_audit_bands():
    from testbed.audit.tolerances import load_tolerances

    rule = load_tolerances().rule_for("throughput_items_per_s", "cuda")  # ±5 %
    assert claim_verdict(1000, 980, +1, rule)[0] == "holds"
    assert claim_verdict(1000, 900, +1, rule)[0] == "falls short"
    assert claim_verdict(1000, 1100, +1, rule)[0] == "exceeded"
    lat = load_tolerances().rule_for("latency_mean_s", "cuda")  # ±10 %
    assert claim_verdict(0.010, 0.012, -1, lat)[0] == "falls short"  # slower than claimed
    assert claim_verdict(0.010, 0.008, -1, lat)[0] == "exceeded"
    assert claim_verdict(1.0, 5.0, +1, load_tolerances().rule_for("model_load_s"))[0] \
        == "not compared"


def test_vendor_claims_next_to_the_measurement(tmp_path):
    name = "NVIDIA A100-SXM4-80GB"
    measured = accelerator(TWO_THREADS, "resnet-infer", name, "cuda", 85899345920, 14.0,
                           300, 60, 65, 34)
    write(measured, tmp_path / "run")
    thr = measured["metrics"]["throughput_items_per_s"]["value"]
    lat = measured["metrics"]["latency_mean_s"]["value"]
    claim = {"device": name, "workload": "resnet-infer", "config": "small", "precision": "fp32",
             "batch size": 2, THR: round(thr * 1.03, 3),
             "latency [ms]": round(lat * 1e3 * 0.97, 6)}
    holds = imported(tmp_path, "holds", [claim], role="vendor", publisher="Vendor A")
    bold = imported(tmp_path, "bold", [{**claim, THR: round(thr * 2, 3),
                                        LAT: round(lat * 1e3 / 2, 6)}],
                    role="vendor", publisher="Vendor B", table="Table 9")
    files = write_report([holds, bold, tmp_path / "run"], tmp_path / "report")
    claims = {(c.source.split(":")[0], c.metric): c for c in files.analysis.claims}
    assert claims[("Vendor A", "throughput_items_per_s")].verdict == "holds"
    assert claims[("Vendor A", "throughput_items_per_s")].ratio == pytest.approx(1 / 1.03)
    assert claims[("Vendor B", "throughput_items_per_s")].verdict == "falls short"
    assert claims[("Vendor B", "latency_mean_s")].verdict == "falls short"
    assert claims[("Vendor A", "throughput_items_per_s")].band == "±5%"
    html = files.html.read_text()
    assert "Published claims against measurements" in html and "falls short" in html


# -- the command line -----------------------------------------------------------------------------
def test_invoke_import_then_report(tmp_path):
    table = write_csv(tmp_path / "t.csv", clean_rows()[:3])
    invoke = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
    args = ["import", str(table), "--title", CITE["title"], "--url", CITE["url"],
            "--table-name", "Table 2", "--page", "7", "--publisher", "Fixture Lab",
            "--role", "independent", "--out", str(tmp_path / "pub")]
    done = subprocess.run([*invoke, *args], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "3 document(s)" in done.stdout and "published" in done.stdout
    again = subprocess.run([*invoke, *args], capture_output=True, text=True, timeout=300,
                           cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = copy.deepcopy(clean_rows()[:1])
    bad[0][THR] = "fast"
    bad_table = write_csv(tmp_path / "bad.csv", bad)
    failed = subprocess.run([*invoke, "import", str(bad_table), *args[2:-1],
                             str(tmp_path / "pub2")], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert failed.returncode == 2 and "'fast' is not a number" in failed.stderr
    assert "Traceback" not in failed.stderr
    report = subprocess.run([*invoke, "report", "-r", str(tmp_path / "pub"), "--out",
                             str(tmp_path / "rep"), "--composite", "published"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "rep" / "report.html").exists()


# -- hostile tables ------------------------------------------------------------------------------
@pytest.mark.parametrize(("column", "cell"), [(THR, "-2400"), (LAT, "-3"), (POW, "-300")])
def test_negative_figures_are_refused_naming_the_cell(tmp_path, column, cell):
    bad = clean_rows()[:1]
    bad[0][column] = cell
    with pytest.raises(UserError, match=r"row 1 makes an invalid document.*less than the minimum"):
        build_documents(write_csv(tmp_path / "neg.csv", bad), CITE, {})


def test_one_absurd_figure_leaves_the_other_devices_composite_whole(tmp_path):
    """The probe: 5.2e52 images/s on one device took throughput out of every device's
    composite in its workload (a metric is scored only where every device has it)."""
    rows = [r for r in clean_rows() if r["workload"] == "resnet-infer"]
    rows[0][THR] = "5.2e52"
    files = write_report([imported(tmp_path, "absurd", rows)], tmp_path / "report")
    comp = files.analysis.composites["resnet-infer"]
    assert "throughput_items_per_s" in comp.used
    scored = {files.analysis.devices[d].name for d in comp.scores}
    assert scored == {PCIE, MLU}  # the absurd one is left out, with its X mark


def test_a_table_of_too_many_rows_is_refused_before_any_work(tmp_path):
    from testbed.published import MAX_ROWS

    table = tmp_path / "big.csv"
    row = clean_rows()[0]
    table.write_text(",".join(row) + "\n" + (",".join(str(v) for v in row.values()) + "\n")
                     * (MAX_ROWS + 1))
    with pytest.raises(UserError, match=f"more than the {MAX_ROWS}"):
        build_documents(table, CITE, {})


def test_an_interrupted_import_leaves_no_half_table(tmp_path, monkeypatch):
    import testbed.published as published

    written = []
    real = published.atomic_write_json

    def dies_on_the_third(path, doc):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(path)
        real(path, doc)

    monkeypatch.setattr(published, "atomic_write_json", dies_on_the_third)
    table = write_csv(tmp_path / "t.csv", clean_rows())
    with pytest.raises(KeyboardInterrupt):
        import_table(table, tmp_path / "published" / "t", CITE, {})
    assert len(written) == 2
    assert list((tmp_path / "published").iterdir()) == []  # neither the table nor a half
    monkeypatch.setattr(published, "atomic_write_json", real)
    done = import_table(table, tmp_path / "published" / "t", CITE, {})
    assert sorted(p.name for p in done.out.iterdir()) == sorted(p.name for p in done.files)
    assert len(done.files) == len(clean_rows())
