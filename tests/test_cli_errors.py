"""Bad input: one paragraph naming the thing and the fix, exit code 2, no partial file."""

from __future__ import annotations

import pytest

from bench.vendors import vendor_list
from tests.conftest import FIXTURES, run_bench


def assert_usage_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ")
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_unknown_suite(tmp_path):
    proc = run_bench("run", "--suite", "nope", "--out", str(tmp_path / "r"))
    assert_usage_error(proc, "Unknown suite 'nope'", "smoke")
    assert not (tmp_path / "r").exists()


def test_unknown_vendor(tmp_path):
    proc = run_bench("run", "--suite", str(FIXTURES / "suites" / "quick.yaml"), "--device",
                     "tpu", "--out", str(tmp_path / "r"))
    assert_usage_error(proc, "Unknown vendor 'tpu'", vendor_list())
    assert not (tmp_path / "r").exists()


def test_absent_vendor_says_where_it_runs(tmp_path):
    proc = run_bench("run", "--suite", str(FIXTURES / "suites" / "quick.yaml"), "--device",
                     "mlu", "--out", str(tmp_path / "r"))
    assert_usage_error(proc, "Vendor 'mlu' is not usable", "torch_mlu", "invoke bench --vendor")


def write_suite(tmp_path, text):
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "needles"), [
    ("name: s\nentries:\n  - {workload: nosuch, mode: infer}\n",
     ["$.entries[0].workload", "Unknown workload 'nosuch'", "resnet"]),
    ("name: s\nentries:\n  - {workload: resnet, mode: infer, config: huge}\n",
     ["no config 'huge'", "small, full"]),
    ("name: s\nentries:\n  - {workload: resnet, mode: infer, params: {batch: 3}}\n",
     ["no parameter(s) batch", "batch_size"]),
    ("name: s\nentries:\n  - {workload: resnet, mode: fly}\n",
     ["$.entries[0].mode", "'fly' is not one of"]),
    ("name: s\nrules: {repeats: 0}\nentries:\n  - {workload: resnet, mode: infer}\n",
     ["$.rules.repeats", "less than the minimum"]),
    ("name: s\nentries: [\n  - oops\n", ["not valid YAML", "line"]),
    ("name: s\nentries:\n  - {workload: resnet, mode: infer}\n"
     "  - {workload: resnet, mode: infer}\n", ["'resnet-infer' appears twice", "unique `id`"]),
])
def test_malformed_suite_file(tmp_path, text, needles):
    suite = write_suite(tmp_path, text)
    proc = run_bench("run", "--suite", str(suite), "--out", str(tmp_path / "r"))
    assert_usage_error(proc, str(suite), *needles)
    assert not (tmp_path / "r").exists()


def test_unknown_override_entry(tmp_path):
    proc = run_bench("run", "--suite", "smoke", "--set", "bert-train.batch_size=4",
                     "--out", str(tmp_path / "r"))
    assert_usage_error(proc, "bert-train", "Entries are: resnet-infer")


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the run directory should go")
    proc = run_bench("run", "--suite", str(FIXTURES / "suites" / "quick.yaml"), "--device",
                     "cpu", "--out", str(blocker / "run"))
    assert_usage_error(proc, f"Output directory {blocker / 'run'} is not writable", "--out DIR")
    assert blocker.read_text() == "a file where the run directory should go"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_validate_with_no_files(tmp_path):
    proc = run_bench("validate", str(tmp_path))
    assert_usage_error(proc, "No JSON files", "results/<run-id>/")


def test_override_of_the_wrong_type_is_refused_before_anything_runs(tmp_path):
    proc = run_bench("run", "--suite", "smoke", "--set", "resnet-train.batch_size=abc",
                     "--out", str(tmp_path / "r"))
    assert_usage_error(proc, "resnet-train", "batch_size='abc' is a string, expected an integer")
    assert not (tmp_path / "r").exists()


def test_a_directory_that_holds_a_run_is_not_reused(tmp_path):
    out = tmp_path / "run"
    suite = str(FIXTURES / "suites" / "quick.yaml")
    first = run_bench("run", "--suite", suite, "--device", "cpu", "--out", str(out), "--quiet",
                      "--only", "test-sleep-infer")
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = run_bench("run", "--suite", suite, "--device", "cpu", "--out", str(out))
    assert_usage_error(again, f"Output directory {out} already holds results",
                       "manifest.json", "its own directory")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("text", ["100000", "0", "-2", "four"])
def test_an_absurd_thread_count_is_refused(tmp_path, text):
    proc = run_bench("run", "--suite", str(FIXTURES / "suites" / "quick.yaml"), "--threads",
                     text, "--out", str(tmp_path / "r"))
    assert_usage_error(proc, "is not a thread count", "4096")
    assert not (tmp_path / "r").exists()


def test_the_suite_schema_allows_the_same_most_threads():
    import json

    from bench.config import MAX_THREADS
    from tests.conftest import ROOT

    device = json.loads((ROOT / "schemas/suite.schema.json").read_text())["$defs"]["device"]
    assert {device["properties"][k]["maximum"] for k in ("threads", "interop_threads")} == \
        {MAX_THREADS}
