"""The model facts (``bench/specs/model_facts.json``): generated from the models, checked
against them here, and read without torch by the commands that must not build models.

The first test is the one that fails when a workload's model, config or FLOP count changes
and nobody ran ``invoke model-facts``: it regenerates the file from the models and compares.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import model_facts
from bench.errors import UserError
from bench.flops import count_work
from bench.tools import model_facts as generator
from bench.workloads import get_workload

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def checked_in() -> dict:
    return json.loads(model_facts.FACTS_PATH.read_text(encoding="utf-8"))


def test_the_checked_in_facts_are_what_the_models_count(checked_in):
    fresh = generator.generate()
    diff = generator.differences(checked_in, fresh)
    assert diff == [], ("bench/specs/model_facts.json disagrees with the models; run "
                        "`invoke model-facts`:\n" + "\n".join(diff[:20]))


def test_the_facts_hold_what_import_and_the_report_need():
    facts = model_facts.load()
    resnet = facts["resnet"]
    assert resnet.group == "cv" and resnet.item_unit == "images"
    full = resnet.work_at("full", "infer")
    assert full.flop_per_item == 7_326_601_216  # ResNet-34 at 224 x 224 (tests/test_flops.py)
    # ResNet-34 (21,797,672 with 1000 classes, tests/test_models.py) with the workload's
    # 100 classes: the last layer has 512 x 900 + 900 parameters fewer
    assert full.parameters == 21_797_672 - 512 * 900 - 900
    assert (full.batch_key, full.batch) == ("batch_size", 128)
    assert facts["yolov10n"].batch_key("infer") == "infer_batch_size"
    assert facts["qwen2-0.5b"].batch_key("infer") == "reference_point.batch"
    # micro-benchmarks report FLOP/s themselves: no count, and why
    gemm = facts["gemm"].work_at("full", "infer")
    assert gemm.flop_per_item is None and "not a model" in gemm.reason


@pytest.mark.parametrize(("name", "mode", "other"), [
    ("resnet", "infer", {"batch_size": 3}), ("resnet", "train", {"batch_size": 3}),
    ("bert", "infer", {"batch_size": 3}), ("lstm", "infer", {"batch_size": 3}),
    ("yolov10n", "infer", {"infer_batch_size": 3}),
    ("qwen2-0.5b", "infer", {"reference_point": "batch 3"}),
])
def test_flops_per_item_do_not_depend_on_the_batch(name, mode, other):
    """What lets a row at batch 16 use the per-item count made at the config's batch."""
    cls = get_workload(name)
    params = copy.deepcopy(cls.configs["small"])
    for key, value in other.items():
        if key == "reference_point":
            params["reference_point"] = {**params["reference_point"], "batch": 3}
        else:
            params[key] = value
    at_other = count_work(lambda: cls.work_probe(mode, params, "fp32", {}))
    facts = model_facts.load()[name].work_at("small", mode)
    assert facts.batch != 3
    assert at_other.flop_per_item == pytest.approx(facts.flop_per_item, rel=1e-12)


def test_bytes_per_item_at_another_batch_and_precision_follow_the_probe():
    cls = get_workload("qwen2-0.5b")
    params = copy.deepcopy(cls.configs["small"])
    params["reference_point"] = {**params["reference_point"], "batch": 3}
    counted = count_work(lambda: cls.work_probe("infer", params, "int8", {}))
    work = model_facts.load()["qwen2-0.5b"].work_at("small", "infer")
    assert counted.bytes_per_item == work.bytes_per_item("int8", 3)
    assert work.bytes_per_item("mixed", 3) is None  # no element size: no memory bound
    assert work.bytes_per_item("fp16", None) is None  # batch unknown: no figure


def test_a_file_that_disagrees_or_is_broken_names_the_fix(tmp_path, checked_in):
    edited = copy.deepcopy(checked_in)
    edited["workloads"]["resnet"]["configs"]["full"]["work"]["infer"]["flop_per_item"] = 1.0
    del edited["workloads"]["bert"]
    diff = generator.differences(edited, checked_in)
    assert "workloads.resnet.configs.full.work.infer.flop_per_item: file 1.0, models " \
           "7326601216.0" in diff
    assert "workloads.bert: missing from the file" in diff
    broken = tmp_path / "facts.json"
    edited["workloads"]["resnet"]["configs"]["full"]["work"]["infer"]["flop_per_item"] = -5
    broken.write_text(json.dumps(edited), encoding="utf-8")
    with pytest.raises(UserError, match=r"model-facts\.schema\.json") as caught:
        model_facts.load(broken)
    assert "invoke model-facts" in caught.value.fix and str(broken) in str(caught.value)


def test_reading_the_facts_imports_no_torch():
    code = ("import sys, bench.model_facts as m; f = m.load(); "
            "assert f['bert'].work_at('full', 'infer').flop_per_item > 0; "
            "print(sorted(k for k in sys.modules if k.split('.')[0] in "
            "('torch', 'transformers', 'bench.workloads')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
