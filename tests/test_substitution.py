"""Suite option ``substitutions``: BERT-tiny in BERT-base's place on the edge device, as the
published evaluation did, applied per vendor and recorded in the result."""

from __future__ import annotations

import json

import pytest

from bench.config import load_suite, substitution_for
from bench.errors import UserError
from bench.validate import validate_file
from tests.conftest import FIXTURES, run_bench

DATA = FIXTURES / "data"
OPTIONS = {"substitutions": [{"workload": "bert", "use": "bert-tiny", "vendors": ["jetson"],
                              "reason": "edge"}]}


def test_substitution_applies_only_to_the_named_vendor_and_workload():
    assert substitution_for(OPTIONS, "bert", "jetson") == {
        "requested": "bert", "used": "bert-tiny", "vendor": "jetson", "reason": "edge"}
    assert substitution_for(OPTIONS, "bert", "cuda") is None
    assert substitution_for(OPTIONS, "lstm", "jetson") is None
    assert substitution_for(OPTIONS, "bert", None) is None


@pytest.mark.parametrize("suite", ["nlp", "nlp-full"])
def test_nlp_suites_run_bert_tiny_for_bert_on_jetson_only(suite):
    plain = {e.id: e for e in load_suite(suite, vendor="cuda").entries}
    edge = {e.id: e for e in load_suite(suite, vendor="jetson").entries}
    assert plain.keys() == edge.keys()  # ids kept: the report lines the rows up
    for entry_id, entry in edge.items():
        if plain[entry_id].workload == "bert":
            assert entry.workload == "bert-tiny"
            assert entry.substitution["requested"] == "bert"
            assert entry.overrides["workload"] == "bert-tiny"  # flagged non-comparable
            assert entry.params == plain[entry_id].params  # same input shapes
        else:
            assert entry == plain[entry_id]
    assert all(e.substitution is None and "workload" not in e.overrides
               for e in plain.values())


def write_suite(tmp_path, options, entries):
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps({"name": "s", "options": options, "entries": entries}))
    return path


def test_substitution_naming_an_unknown_workload_is_refused(tmp_path):
    path = write_suite(tmp_path, {"substitutions": [
        {"workload": "bert", "use": "bert-huge", "vendors": ["jetson"]}]},
        [{"workload": "bert", "mode": "infer"}])
    with pytest.raises(UserError, match=r"\$\.options\.substitutions\[0\]\.use: Unknown "
                                        r"workload 'bert-huge'"):
        load_suite(str(path), vendor="jetson")


def test_substitution_for_an_unknown_vendor_breaks_the_schema(tmp_path):
    path = write_suite(tmp_path, {"substitutions": [
        {"workload": "bert", "use": "bert-tiny", "vendors": ["tpu"]}]},
        [{"workload": "bert", "mode": "infer"}])
    with pytest.raises(UserError, match=r"\$\.options\.substitutions\[0\]\.vendors\[0\]: "
                                        r"'tpu' is not one of"):
        load_suite(str(path))


@pytest.mark.slow
def test_real_data_sets_and_a_substitution_end_to_end(tmp_path):
    """One CLI run over the fixtures: every loader feeds a child process, results validate,
    and a substituted entry says so in its result."""
    tiny_qa = {"data_path": str(DATA / "squad" / "squad_v2_tiny.json"),
               "tokenizer_path": str(DATA / "tokenizer"), "seq_len": 32, "batch_size": 2,
               "num_workers": 0}
    suite = {
        "name": "fixtures", "seed": 0,
        "rules": {"warmup_iters": 1, "min_iters": 2, "min_duration_s": 0, "repeats": 1,
                  "timeout_s": 240},
        "telemetry": {"interval_s": 0.1, "idle_s": 0},
        "options": {"substitutions": [{"workload": "bert", "use": "bert-tiny",
                                       "vendors": ["cpu"], "reason": "test"}]},
        "entries": [
            {"workload": "bert", "mode": "train", "params": tiny_qa},
            {"workload": "resnet", "mode": "train",
             "params": {"data_path": str(DATA / "imagefolder"), "image_size": 32}},
            {"workload": "unet", "mode": "infer",
             "params": {"data_path": str(DATA / "carvana"), "image_height": 16,
                        "image_width": 24}},
            {"workload": "lstm", "mode": "infer",
             "params": {"data_path": str(DATA / "poems"), "batch_size": 2, "gen_len": 8}},
        ],
    }
    path = tmp_path / "fixtures.yaml"
    path.write_text(json.dumps(suite), encoding="utf-8")
    out = tmp_path / "run"
    proc = run_bench("run", "--suite", str(path), "--device", "cpu", "--out", str(out),
                     "--quiet", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    docs = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")
            if p.name != "manifest.json"}
    assert set(docs) == {"bert-train", "resnet-train", "unet-infer", "lstm-infer"}
    for stem in docs:
        assert validate_file(out / f"{stem}.json").ok
        assert docs[stem]["status"] == "ok"

    bert = docs["bert-train"]["workload"]
    assert bert["name"] == "bert-tiny" and bert["overrides"] == {"workload": "bert-tiny"}
    assert bert["info"]["substitution"] == {"requested": "bert", "used": "bert-tiny",
                                            "vendor": "cpu", "reason": "test"}
    assert bert["info"]["parameters"] == 4_369_666
    assert bert["info"]["data"]["format"] == "squad-v2.0"
    assert bert["info"]["data"]["tokenizer"].startswith("BertTokenizer")
    assert len(docs["bert-train"]["repeats"][0]["series"]["loss"]) == 3
    assert docs["resnet-train"]["workload"]["info"]["data"]["classes"] == 2
    assert docs["unet-infer"]["workload"]["info"]["data"]["source"] == "carvana"
    assert "input_wait_pct" in docs["unet-infer"]["metrics"]
    lstm = docs["lstm-infer"]["workload"]["info"]
    assert lstm["data"]["source"] == "poem-tang-json" and len(lstm["sample_ids"]) == 8
