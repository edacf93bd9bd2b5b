"""The yolov10n workload: what `bench run` records for it, and its data modes."""

from __future__ import annotations

import json

import pytest
import yaml

from bench.devices import get_backend
from bench.errors import UserError
from bench.rules import RunRules
from bench.validate import validate_file
from bench.workload import WorkloadContext, get_workload
from tests.conftest import FIXTURES, run_bench


def make_workload(mode: str, **params):
    cls = get_workload("yolov10n")
    full = {**cls.configs["small"], "image_size": 64, **params}
    ctx = WorkloadContext(backend=get_backend("cpu"), mode=mode, params=full,
                          precision="fp32", seed=0, rules=RunRules())
    return cls(ctx)


def test_configs_share_parameters_and_full_is_640():
    cls = get_workload("yolov10n")
    assert set(cls.configs["small"]) == set(cls.configs["full"])
    full = cls.configs["full"]
    assert (full["image_size"], full["train_batch_size"], full["infer_batch_size"]) == (
        640, 32, 128)


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_loader_mode_reads_the_coco_fixture(mode):
    w = make_workload(mode, data="loader", data_path=str(FIXTURES / "coco"))
    w.setup()
    assert "instances_tiny.json (3 images)" in w.info()["data_source"]
    assert [w.step() for _ in range(3)] == [2, 1, 2]  # 3 images, batch 2, cycling
    if mode == "train":
        assert len(w.series["loss"]) == 3 and all(v > 0 for v in w.series["loss"])
    else:
        assert w.detections.shape == (2, 84, 6)  # 64 px: 84 anchors, fewer than max_det


def test_data_path_alone_selects_the_coco_loader():
    w = make_workload("infer", data_path=str(FIXTURES / "coco"))
    w.setup()
    assert w.info()["data_source"].startswith("COCO loader")


def test_loader_mode_without_a_path_uses_host_synthetic_data():
    w = make_workload("train", data="loader")
    w.setup()
    assert w.info()["data_source"] == "DataLoader over host-made synthetic images"
    assert w.step() == 2 and w.series["loss"][0] > 0


def test_synthetic_mode_records_target_statistics():
    w = make_workload("train", train_batch_size=4)
    w.setup()
    info = w.info()
    assert info["parameters"] == info["reference_parameters"] == 2_775_520
    assert info["batch_size"] == 4 and info["objects_per_image_max"] >= 1
    assert w.step() == 4


@pytest.mark.parametrize(("params", "message"), [
    ({"data": "disk"}, "data='disk' is not known"),
    ({"image_size": 100}, "image_size=100 is not a multiple of 32"),
    ({"infer_batch_size": 0}, "infer_batch_size=0 must be a positive integer"),
    ({"data_path": "/nonexistent/coco"}, "does not exist"),
])
def test_bad_parameters_are_user_errors(params, message):
    with pytest.raises(UserError, match=message):
        make_workload("infer", **params).setup()


@pytest.mark.slow
def test_bench_run_records_valid_yolov10n_results(tmp_path):
    suite = tmp_path / "yolo.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "yolo", "rules": {"warmup_iters": 1, "min_iters": 3, "min_duration_s": 0.1,
                                  "repeats": 1, "timeout_s": 240},
        "telemetry": {"interval_s": 0.05, "idle_s": 0.1},
        "entries": [{"workload": "yolov10n", "mode": "train", "config": "small"},
                    {"workload": "yolov10n", "mode": "infer", "config": "small"}]}))
    out = tmp_path / "run"
    proc = run_bench("run", "--suite", str(suite), "--device", "cpu", "--out", str(out),
                     "--quiet", "--set", f"yolov10n-infer.data_path={FIXTURES / 'coco'}",
                     timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path in out.glob("*.json"):
        assert validate_file(path).ok, (path, validate_file(path).problems)
    train = json.loads((out / "yolov10n-train.json").read_text())
    infer = json.loads((out / "yolov10n-infer.json").read_text())
    assert train["status"] == infer["status"] == "ok"
    assert train["workload"]["info"]["parameters"] == 2_775_520
    assert len(train["repeats"][0]["series"]["loss"]) >= 4  # warm-up + timed steps
    assert train["metrics"]["throughput_items_per_s"]["value"] > 0
    assert infer["workload"]["info"]["data_source"].startswith("COCO loader")
    assert "data_path" in json.dumps(infer["workload"])  # the override is recorded
