"""Published tables as they were printed: the headers vendors write, and nothing invented.

- A real vendor table (``tests/fixtures/published/stcp920-inference.csv``, a byte-for-byte
  copy of the corpus file) imports as printed, 21 documents, and its report fails no check.
- A made-up evaluation appendix that prints no batch size imports without one: the checks
  that need it do not apply (and say why), the metrics stay in the scores, and its
  ``--composite published`` score is the composite worked out by hand below.
- ``--assume`` fills an unknown only when asked, is recorded in each document, shown beside
  the figure and named in every check message that used it.
- An impossible power with a throughput scaled alike still fails both.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest

from bench import model_facts
from bench.errors import UserError
from testbed.published import (
    build_documents,
    import_table,
    layout,
    parse_unit,
    vocabulary,
)
from testbed.report import write_report
from testbed.report.metrics import score_settings

ROOT = Path(__file__).resolve().parent.parent
STCP920 = ROOT / "tests" / "fixtures" / "published" / "stcp920-inference.csv"
VENDOR = {"title": "STCP920 board inference performance", "url": "https://example.com/stcp920",
          "table": "FP16 and INT8", "publisher": "Stream Computing", "role": "vendor"}
CITE = {"title": "Fixture evaluation, appendix", "url": "https://example.org/appendix",
        "table": "Table A.2", "page": 31, "publisher": "Fixture Lab", "role": "independent"}
A100, PCIE, MLU = "NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB", "MLU370-X8"


def corpus_file(name: str) -> Path | None:
    """The shared corpus copy of a fixture, where this checkout has one above it."""
    for up in Path(__file__).resolve().parents:
        candidate = up / "shared" / "corpus" / name
        if candidate.is_file():
            return candidate
    return None


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    headers = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=headers)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return path


# -- the vendor's table, as printed --------------------------------------------------------
def test_the_corpus_copy_is_byte_for_byte_the_corpus_file():
    source = corpus_file(STCP920.name)
    if source is None:
        pytest.skip("no shared corpus above this checkout to compare the fixture with")
    assert STCP920.read_bytes() == source.read_bytes()


@pytest.fixture(scope="module")
def stcp920(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stcp920")
    done = import_table(STCP920, tmp / "published", VENDOR, {"device": "STCP920"})
    return done, write_report([done.out], tmp / "report")


def test_a_vendor_table_imports_as_printed(stcp920):
    done, _ = stcp920
    docs = [json.loads(p.read_text()) for p in done.files]
    assert len(docs) == 21
    with STCP920.open(encoding="utf-8") as f:
        printed = list(csv.DictReader(f))
    for doc, row in zip(docs, printed, strict=True):
        wl, m = doc["workload"], doc["metrics"]
        # thread_num is the concurrent streams; Latency(msec) in milliseconds
        assert wl["params"] == {"batch_size": int(row["Batch size"]),
                                "streams": int(row["thread_num"])}
        assert m["latency_mean_s"]["value"] == pytest.approx(float(row["Latency(msec)"]) / 1e3)
        assert m["throughput_items_per_s"]["value"] == float(row["Throughput (samples per sec)"])
        assert m["throughput_items_per_s"]["as_published"].endswith("samples per sec")
        assert wl["precision_used"] == row["Precision"].lower()
        assert doc["assumptions"] == [] and "flop_per_item" not in m
    by_model = {d["workload"]["info"]["model"]: d["workload"] for d in docs}
    # resnet34 is this test-bed's ResNet-34, at a configuration the table does not print
    assert by_model["resnet34"]["name"] == "resnet"
    assert by_model["resnet34"]["item_unit"] == "images"
    assert "config" in by_model["resnet34"]["unknowns"]
    # the others are workloads of their own, grouped by the default patterns, counting
    # the table's own "samples"
    assert {m: by_model[m]["group"] for m in ("resnet50", "densenet101", "bert_large_384",
                                              "xlnet", "dlrm", "mmoe", "wdl", "dssm_mock")} \
        == {"resnet50": "cv", "densenet101": "cv", "bert_large_384": "nlp", "xlnet": "nlp",
            "dlrm": "rec", "mmoe": "rec", "wdl": "rec", "dssm_mock": "rec"}
    assert by_model["dlrm"]["item_unit"] == "samples"
    assert by_model["dlrm"]["info"]["registered"] is False
    # FP16 and INT8 rows of one model stay apart
    assert len({(d["workload"]["id"], d["workload"]["config"]) for d in docs}) == 21


def test_the_vendor_tables_report_fails_no_check(stcp920):
    _, files = stcp920
    a = files.analysis
    assert [f.message for r in a.reviews for f in r.findings] == []
    assert a.copies == [] and a.outliers == []
    applied = [r for r in a.reviews for o in r.outcomes
               if o.check == "latency_throughput" and o.applied]
    assert len(applied) == 21  # batch x thread_num / latency = throughput in every row
    assert "Every check passed on every result." in files.markdown.read_text()


def test_other_models_take_the_group_the_user_gives(tmp_path):
    docs = build_documents(STCP920, VENDOR, {"device": "STCP920",
                                             "other_models": ["dlrm*,wdl=nlp", "mmoe=cv"]})
    groups = {d["workload"]["info"]["model"]: d["workload"]["group"] for d in docs}
    assert groups["dlrm"] == groups["dlrm_1M"] == groups["wdl"] == "nlp"
    assert groups["mmoe"] == "cv" and groups["deepfm"] == "rec"  # the default pattern still
    table = write_csv(tmp_path / "t.csv", [{"Model": "frobnicator-7", "Batch size": 1,
                                            "Throughput (samples per sec)": 10,
                                            "Precision": "FP16"}])
    with pytest.raises(UserError, match="no --other-models pattern gives its group") as err:
        build_documents(table, VENDOR, {"device": "STCP920"})
    assert "--other-models 'frobnicator-7*=cv'" in err.value.fix
    done = import_table(table, tmp_path / "pub", VENDOR, {
        "device": "STCP920", "other_models": ["frob*=cv"], "assume": ["config=full"]})
    doc = json.loads(done.files[0].read_text())
    # a model of its own has no config of this test-bed's to assume: nothing recorded
    assert doc["assumptions"] == []
    assert any("--assume config=full applies to no row" in n for n in done.notes)
    assert doc["workload"]["group"] == "cv" and doc["workload"]["item_unit"] == "samples"
    with pytest.raises(UserError, match="PATTERN"):
        build_documents(table, VENDOR, {"device": "STCP920", "other_models": ["frob*=gpu"]})


# -- headers as vendors and papers print them ------------------------------------------------
@pytest.mark.parametrize(("kind", "text", "si", "factor"), [
    ("time", "ms", "s", 1e-3), ("time", "msec", "s", 1e-3), ("time", "millisecond", "s", 1e-3),
    ("time", "milliseconds", "s", 1e-3), ("time", "s", "s", 1), ("time", "sec", "s", 1),
    ("time", "us", "s", 1e-6),
    ("rate", "samples per sec", "samples/s", 1), ("rate", "images/sec", "images/s", 1),
    ("rate", "sentences/s", "sequences/s", 1), ("rate", "tokens/s", "tokens/s", 1),
    ("rate", "qps", "queries/s", 1), ("rate", "fps", "images/s", 1),
    ("rate", "it/s", "iterations/s", 1), ("rate", "images per second", "images/s", 1),
    ("rate", "tokens/ms", "tokens/s", 1e3),
])
def test_units_as_printed(kind, text, si, factor):
    unit = parse_unit(kind, text)
    assert unit is not None and unit.si == si and unit.factor == pytest.approx(factor)


@pytest.mark.parametrize(("header", "key"), [
    ("thread_num", "streams"), ("threads", "streams"), ("Concurrency", "streams"),
    ("instances", "streams"), ("Streams", "streams"), ("batch", "batch_size"),
    ("bs", "batch_size"), ("Batch size", "batch_size"), ("Model", "model"),
])
def test_identity_headers_as_printed(header, key):
    cols = layout(["workload", header, "Throughput (qps)"], "t")
    assert cols.ids[key] == header


def test_an_unknown_header_or_unit_still_fails_with_the_fix(tmp_path):
    with pytest.raises(UserError, match="'Speedup \\(x\\)' is not a metric") as err:
        layout(["model", "Speedup (x)"], "t")
    assert "published_headers.yaml" in err.value.fix and "docs/report.md" in err.value.fix
    table = write_csv(tmp_path / "t.csv", [{"Model": "resnet50", "Latency (fortnights)": 3,
                                            "Precision": "FP16"}])
    with pytest.raises(UserError, match="'fortnights', which is not a time unit") as err:
        build_documents(table, VENDOR, {"device": "STCP920"})
    assert "msec" in err.value.fix and "row 1" in str(err.value)


def test_docs_list_every_header_and_unit_read():
    """The mapping is data (testbed/published_headers.yaml); docs/report.md lists it."""
    docs = (ROOT / "docs" / "report.md").read_text(encoding="utf-8")
    section = docs[docs.index("### Headers and units read"):]
    v = vocabulary()
    words = [*(a for aliases in v["columns"].values() for a in aliases),
             *(h for m in v["metrics"].values() for h in m["headers"]),
             *(u for units in v["units"].values() for u in units), *v["rates"],
             *(w for words in v["items"].values() for w in words),
             *(p for patterns in v["other_models"].values() for p in patterns)]
    missing = [w for w in words if f"`{w}`" not in section]
    assert missing == [], f"docs/report.md does not list {missing}"


def test_iterations_per_second_are_batches(tmp_path):
    table = write_csv(tmp_path / "t.csv", [
        {"Model": "resnet50", "bs": 8, "Throughput (it/s)": 100, "Precision": "FP16"}])
    (doc,) = build_documents(table, VENDOR, {"device": "STCP920"})
    thr = doc["metrics"]["throughput_items_per_s"]
    # the table counts no item of its own: the generic one
    assert thr["value"] == 800 and thr["unit"] == "items/s" and "x the batch" in thr["reason"]
    table = write_csv(tmp_path / "u.csv", [
        {"Model": "resnet50", "Throughput (it/s)": 100, "Precision": "FP16"}])
    with pytest.raises(UserError, match="counts iterations"):
        build_documents(table, VENDOR, {"device": "STCP920"})


# -- an appendix with no batch sizes ------------------------------------------------------------
THR, LAT, POW, EFF = ("throughput [sequences/s]", "latency [ms]", "power [W]",
                      "efficiency [sequences/J]")


def appendix_rows() -> list[dict[str, object]]:
    """Per device the appendix's figures for BERT-base, and no batch size or sequence length:
    consistent as printed (efficiency = throughput / power). 16 x 1 / 5 ms would be 3200/s,
    not 1200/s: BERT's full config (batch 16) would make the first row fail."""
    def r(device, thr, lat, power, temp, util, mem):
        return {"device": device, "model": "BERT-base", "mode": "infer", "precision": "FP16",
                THR: thr, LAT: lat, POW: power, EFF: round(thr / power, 6),
                "temperature [C]": temp, "utilization [%]": util, "memory [GiB]": mem}
    return [r(A100, 1200, 5, 300, 60, 90, 12), r(PCIE, 900, 7.5, 250, 58, 85, 12),
            r(MLU, 600, 10, 150, 52, 80, 9)]


def test_a_table_without_batch_sizes_invents_none(tmp_path):
    table = write_csv(tmp_path / "appendix.csv", appendix_rows())
    docs = build_documents(table, CITE, {})
    for doc in docs:
        wl = doc["workload"]
        assert wl["name"] == "bert" and wl["params"] == {"batch_size": None}
        assert wl["unknowns"]["batch_size"] == "not published"
        assert "config" in wl["unknowns"] and "streams" in wl["unknowns"]
        assert wl["config"] == "config not published, fp16" and wl["overrides"] == {}
        assert doc["assumptions"] == []
        # no FLOPs per item of a guessed sequence length, nor what is made of them
        assert not {"flop_per_item", "flop_per_s", "mfu_pct"} & set(doc["metrics"])
        assert doc["metrics"]["items_per_j"]["status"] == "published"


@pytest.fixture(scope="module")
def appendix(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("appendix")
    table = write_csv(tmp / "appendix.csv", appendix_rows())
    out = import_table(table, tmp / "published", CITE, {}).out
    return write_report([out], tmp / "report", settings=score_settings(composite="published"))


def test_what_a_table_does_not_say_fails_no_check(appendix):
    a = appendix.analysis
    assert [f.message for r in a.reviews for f in r.findings] == []
    outcomes = {(r.result.doc["device"]["name"], o.check): o for r in a.reviews
                for o in r.outcomes}
    for device in (A100, PCIE, MLU):
        lat = outcomes[(device, "latency_throughput")]
        assert not lat.applied and "batch size is not published" in lat.not_applicable
        bound = outcomes[(device, "throughput_bound")]
        assert not bound.applied and "configuration is not published" in bound.not_applicable
        # what it prints is still judged
        assert outcomes[(device, "efficiency")].applied
        assert outcomes[(device, "power_limit")].applied
    md = appendix.markdown.read_text()
    assert "not applicable to 3 results: the batch size is not published" in md
    assert not a.table["marks"].str.contains("X").any()


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_the_published_composite_is_the_one_worked_out_by_hand(appendix):
    """The publication's four metrics, equal weights, a = 3, x~ = -3 + 6 (x - min) / (max -
    min), score = mean of sigmoid(+x~) (larger is better) or sigmoid(-x~) (smaller):

    | device | throughput | items/J | power | latency | x~ thr | x~ eff | x~ power | x~ lat |
    | A100   | 1200       | 4.0     | 300   | 5 ms    | 3      | 3      | 3        | -3     |
    | PCIe   | 900        | 3.6     | 250   | 7.5 ms  | 0      | -3     | 1        | 0      |
    | MLU    | 600        | 4.0     | 150   | 10 ms   | -3     | 3      | -3       | 3      |
    """
    a = appendix.analysis
    comp = a.composites["bert-infer"]
    assert set(comp.used) == {"throughput_items_per_s", "items_per_j", "power_w_mean",
                              "latency_mean_s"}  # nothing left out for what is not printed
    by_name = {a.devices[d].name: c.score for d, c in comp.scores.items()}
    s = sigmoid
    assert by_name[A100] == pytest.approx((s(3) + s(3) + s(-3) + s(3)) / 4)
    assert by_name[PCIE] == pytest.approx((s(0) + s(-3) + s(-1) + s(0)) / 4)
    assert by_name[MLU] == pytest.approx((s(-3) + s(3) + s(3) + s(-3)) / 4)


# -- assumptions ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def assumed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("assumed")
    table = write_csv(tmp / "appendix.csv", appendix_rows())
    done = import_table(table, tmp / "published", CITE, {"assume": ["config=full"]})
    return done, write_report([done.out], tmp / "report")


def test_an_assumed_config_is_recorded_in_each_document(assumed):
    done, _ = assumed
    for path in done.files:
        doc = json.loads(path.read_text())
        (a,) = doc["assumptions"]
        assert a["fact"] == "config" and a["value"] == "full"
        assert a["given"] == "--assume config=full"
        assert {"flop_per_item", "batch_size", "streams"} <= set(a["covers"])
        wl = doc["workload"]
        assert wl["config"] == "full (assumed), fp16" and "batch_size" not in wl["unknowns"]
        assert wl["params"]["batch_size"] == 16 and wl["params"]["seq_len"] == 384
        assert doc["metrics"]["flop_per_item"]["assumed"] == "--assume config=full"
    assert any("assumed, not printed: --assume config=full" in n for n in done.notes)
    assert not any("applies to no row" in n for n in done.notes)


def test_an_assumption_is_named_in_every_check_that_uses_it_and_beside_the_figure(assumed):
    _, files = assumed
    a = files.analysis
    (rev,) = [r for r in a.reviews if r.result.doc["device"]["name"] == A100]
    (lat,) = [f for f in rev.findings if f.check == "latency_throughput"]
    # 16 (the assumed config's batch) x 1 / 5 ms = 3200, not the printed 1200
    assert "3200" in lat.message and "assumed, not printed: --assume config=full" in lat.message
    for r in a.reviews:
        for o in r.outcomes:
            if o.check == "throughput_bound" and o.applied:
                assert o.findings == [] or "--assume config=full" in o.findings[0].message
    # beside the figure: the row's mark and its note, wherever the value appears
    cell = a.cell(next(k for k, d in a.devices.items() if d.name == PCIE), "bert-infer",
                  "throughput_items_per_s")
    assert "O" in cell["marks"]
    assert any("assumed, not printed: config=full (--assume config=full)" in n
               for n in cell["notes"])
    assert "assumed, not printed: config=full (--assume config=full)" in files.html.read_text()


def test_an_assumed_batch_size_is_named_in_the_check_message(tmp_path):
    rows = appendix_rows()
    rows[0][LAT] = 50  # 64 / 50 ms = 1280/s next to the printed 1200/s: consistent
    rows[1][LAT] = 5  # 64 / 5 ms = 12800/s next to 900/s: one of the two is wrong
    rows[2][LAT] = 100  # 64 / 100 ms = 640/s next to 600/s: consistent
    table = write_csv(tmp_path / "t.csv", rows)
    done = import_table(table, tmp_path / "pub", CITE, {"assume": ["batch_size=64"]})
    doc = json.loads(done.files[0].read_text())
    assert doc["workload"]["params"] == {"batch_size": 64}
    assert doc["workload"]["config"] == "config not published, batch 64 (assumed), fp16"
    assert doc["assumptions"] == [{"fact": "batch_size", "value": 64,
                                   "given": "--assume batch_size=64",
                                   "covers": ["batch_size", "bytes_per_item"]}]
    a = write_report([done.out], tmp_path / "report").analysis
    found = [f for r in a.reviews for f in r.findings]
    assert [f.check for f in found] == ["latency_throughput"]
    assert "(assumed, not printed: --assume batch_size=64)" in found[0].message
    # streams are not printed: at least one, so only a throughput below batch / latency
    # fails (the A100 row's 1200/s is within 25 % of 64 / 50 ms all the same)
    assert "more streams" in found[0].message


def test_a_bad_assumption_names_the_fix(tmp_path):
    table = write_csv(tmp_path / "t.csv", appendix_rows())
    for bad in ("config", "colour=red", "batch_size=many"):
        with pytest.raises(UserError, match="assume") as err:
            build_documents(table, CITE, {"assume": [bad]})
        assert "positive whole number" in str(err.value) or "config=full" in err.value.fix
    with pytest.raises(UserError, match=re.escape("has no config 'huge' (--assume config=huge)")):
        build_documents(table, CITE, {"assume": ["config=huge"]})


# -- an impossible power still fails, with the throughput that follows it ---------------------
def test_an_impossible_power_and_the_throughput_scaled_alike_still_fail(tmp_path):
    rows = appendix_rows()
    # W read as uW, and the throughput scaled by the same factor: items/J stays consistent
    rows[2][POW], rows[2][THR] = 150e6, 600e6
    table = write_csv(tmp_path / "t.csv", rows)
    out = import_table(table, tmp_path / "pub", CITE, {}).out
    a = write_report([out], tmp_path / "report",
                     settings=score_settings(composite="published")).analysis
    found = {f.check: f for r in a.reviews if r.result.doc["device"]["name"] == MLU
             for f in r.findings}
    assert "power_w_mean" in found["power_limit"].metrics
    assert "throughput_items_per_s" in found["efficiency"].metrics
    assert "carries the same error" in found["efficiency"].message
    mlu = next(k for k, d in a.devices.items() if d.name == MLU)
    assert "X" in a.cell(mlu, "bert-infer", "power_w_mean")["marks"]
    assert "X" in a.cell(mlu, "bert-infer", "throughput_items_per_s")["marks"]
    # The device whose throughput failed its bound is left out of the composite (one absurd
    # figure must not take a metric out of every device's score); the others keep theirs.
    comp = a.composites["bert-infer"]
    assert mlu not in comp.scores and comp.scores
    assert {"power_w_mean", "throughput_items_per_s"} <= set(comp.used)


def test_an_llm_row_at_its_printed_config_gets_its_memory_bound_at_the_row_batch(tmp_path):
    table = write_csv(tmp_path / "llm.csv", [
        {"device": A100, "workload": "qwen2-0.5b", "config": "full", "batch size": 8,
         "throughput [tokens/s]": 4000, "precision": "bf16"}])
    (doc,) = build_documents(table, CITE, {})  # one mode: no mode column needed
    m, wl = doc["metrics"], doc["workload"]
    assert wl["mode"] == "infer" and wl["config"] == "full, batch 8"
    work = model_facts.load()["qwen2-0.5b"].work_at("full", "infer")
    assert m["flop_per_item"]["value"] == work.flop_per_item
    assert m["bytes_per_item"]["value"] == work.weights_per_step * 2 / 8  # bf16, batch 8
