"""The run rule ``input_variants`` (the audit's caching check): the timed loop really cycles
through K different batches of the same values, says in the result which inputs varied or
why none could, the suite refuses values out of range, and the result validates."""

from __future__ import annotations

import json

import pytest
import torch

from bench.config import load_suite
from bench.data.variants import make_variants, permuted, variant_seed
from bench.devices import get_backend
from bench.errors import UserError
from bench.rules import RunRules
from bench.schema import validation_errors
from bench.workload import Workload, WorkloadContext, get_workload
from tests.conftest import run_bench


def rules(k: int, warmup: int = 2, iters: int = 5) -> RunRules:
    return RunRules(warmup_iters=warmup, min_iters=iters, min_duration_s=0.0, repeats=1,
                    input_variants=k)


def context(k: int, mode: str = "infer", params: dict | None = None,
            precision: str = "fp32", **kw) -> WorkloadContext:
    return WorkloadContext(get_backend("cpu"), mode, params or {}, precision, 7, rules(k, **kw))


class Recorder(Workload):
    """A workload with two synthetic inputs whose steps record what they read."""

    name = "test-variants"
    description = "records the inputs of every step"
    group = "micro"
    modes = ("infer",)
    item_unit = "items"
    configs = {"small": {}}
    input_attrs = ("images", "labels")

    def setup(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.images = torch.randn(3, 4, 5, generator=gen)
        self.labels = torch.randint(0, 1000, (3,), generator=gen)
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def step(self) -> int:
        self.seen.append((self.images, self.labels))
        return 3


# -- the variants themselves ---------------------------------------------------------------
def test_a_variant_holds_the_same_values_in_another_order():
    x = torch.randn(4, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    v = permuted(x, torch.Generator().manual_seed(variant_seed(0, 1)))
    assert v.shape == x.shape and v.dtype == x.dtype and v.stride() == x.stride()
    assert torch.equal(v.flatten().sort().values, x.flatten().sort().values)
    assert (v != x).float().mean() > 0.9  # a random order moves nearly every value


def test_a_sliced_view_keeps_its_strides_and_integers_stay_in_range():
    chunk = torch.randint(4, 4845, (4, 33))
    inputs = chunk[:, :-1]  # the LSTM's input window: a view with row stride 33
    v = permuted(inputs, torch.Generator().manual_seed(1))
    assert v.stride() == (33, 1) and v.dtype == torch.long
    assert torch.equal(v.flatten().sort().values, inputs.flatten().sort().values)
    assert not torch.equal(v, inputs)


def test_an_expanded_tensor_gets_storage_of_its_own():
    row = torch.arange(6.0).expand(4, 6)
    v = permuted(row, torch.Generator().manual_seed(1))
    assert v.shape == (4, 6)
    assert torch.equal(v.flatten().sort().values, row.flatten().sort().values)


def test_variants_start_with_the_original_and_are_deterministic_and_distinct():
    x = torch.randn(64)
    a, b = make_variants(x, 4, seed=3), make_variants(x, 4, seed=3)
    assert a[0] is x and len(a) == 4
    assert all(torch.equal(u, w) for u, w in zip(a, b, strict=True))
    assert len({tuple(v.tolist()) for v in a}) == 4
    assert not torch.equal(make_variants(x, 2, seed=4)[1], a[1])  # another suite seed


def test_tensors_of_one_size_in_a_batch_stay_aligned():
    ids = torch.arange(10, 50).reshape(4, 10)
    batch = {"input_ids": ids, "token_type_ids": ids * 2, "n": 5}
    variant = make_variants(batch, 2, seed=0)[1]
    assert torch.equal(variant["token_type_ids"], variant["input_ids"] * 2)
    assert not torch.equal(variant["input_ids"], ids) and variant["n"] == 5


def test_variant_seeds_differ_for_every_seed_and_index():
    seeds = {variant_seed(s, j) for s in range(4) for j in range(64)}
    assert len(seeds) == 4 * 64
    with pytest.raises(ValueError):
        variant_seed(0, 2**16)


# -- the default measure() -----------------------------------------------------------------
def test_every_step_reads_variant_i_mod_k_and_the_info_says_so():
    wl = Recorder(context(3, warmup=2, iters=5))
    wl.setup()
    original = (wl.images, wl.labels)
    loop = wl.measure()
    assert loop["iterations"] == 5 and len(wl.seen) == 7  # warm-up steps cycle too
    assert wl.seen[0][0] is original[0] and wl.seen[0][1] is original[1]
    for i, (images, labels) in enumerate(wl.seen):
        assert images is wl.seen[i % 3][0] and labels is wl.seen[i % 3][1]
        assert images.shape == original[0].shape and labels.dtype == original[1].dtype
        assert torch.equal(labels.sort().values, original[1].sort().values)
    assert len({wl.seen[i][0].data_ptr() for i in range(3)}) == 3
    assert not torch.equal(wl.seen[1][0], wl.seen[0][0])
    assert not torch.equal(wl.seen[2][0], wl.seen[1][0])
    assert wl.info()["input_variants"] == {"requested": 3, "used": 3,
                                           "attrs": ["images", "labels"]}


def test_the_normal_run_reads_one_batch_and_records_nothing():
    wl = Recorder(context(1))
    wl.setup()
    wl.measure()
    assert {id(images) for images, _ in wl.seen} == {id(wl.images)}
    assert "input_variants" not in wl.info()


def test_a_workload_without_input_attrs_runs_normally_and_says_why():
    class Plain(Recorder):
        name = "test-plain"
        input_attrs = ()

    wl = Plain(context(4))
    wl.setup()
    assert wl.measure()["iterations"] == 5
    assert wl.info()["input_variants"] == {
        "requested": 4, "used": 1,
        "reason": "workload test-plain names no synthetic inputs to vary (input_attrs)"}


def test_a_workload_with_its_own_loop_says_it_did_not_vary_its_inputs():
    class Grid(Recorder):
        name = "test-own-loop"

        def measure(self):
            return {}

    wl = Grid(context(2))
    wl.setup()
    wl.measure()
    record = wl.info()["input_variants"]
    assert record["used"] == 1 and "times its own loop" in record["reason"]


def test_variants_that_do_not_fit_in_memory_leave_the_run_on_one_batch(monkeypatch):
    def no_room(value, count, seed):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    monkeypatch.setattr("bench.workload.make_variants", no_room)
    wl = Recorder(context(8))
    wl.setup()
    assert wl.measure()["iterations"] == 5
    assert {id(images) for images, _ in wl.seen} == {id(wl.images)}
    assert wl.info()["input_variants"] == {
        "requested": 8, "used": 1,
        "reason": "8 copies of images, labels do not fit in device memory (CUDA out of "
                  "memory. Tried to allocate 9.00 GiB): ran on the one batch"}


def test_resnet_cycles_distinct_image_batches_on_the_device():
    cls = get_workload("resnet")
    wl = cls(context(2, params={**cls.configs["small"], "image_size": 32}, warmup=1, iters=3))
    wl.setup()
    reads = []
    step = wl.step

    def recording() -> int:
        reads.append((wl.images.data_ptr(), wl.images.sum().item(), wl.labels.clone()))
        return step()

    wl.step = recording
    wl.measure()
    assert [r[0] for r in reads] == [reads[0][0], reads[1][0]] * 2 and reads[0][0] != reads[1][0]
    assert reads[0][1] == pytest.approx(reads[1][1], rel=1e-4)  # same values, other order
    assert wl.info()["input_variants"]["attrs"] == ["images", "labels"]


def test_loader_mode_keeps_its_loader_and_says_why():
    cls = get_workload("resnet")
    params = {**cls.configs["small"], "image_size": 32, "data": "loader", "num_workers": 0}
    wl = cls(context(2, params=params, warmup=1, iters=2))
    wl.setup()
    assert wl.measure()["iterations"] == 2
    record = wl.info()["input_variants"]
    assert record["used"] == 1 and "loader mode" in record["reason"]


@pytest.mark.parametrize("name, attrs", [
    ("resnet", ["images", "labels"]), ("unet", ["images", "masks"]), ("bert", ["batch"]),
    ("bert-tiny", ["batch"]), ("lstm", ["inputs", "targets"]), ("yolov10n", ["images"]),
])
def test_every_synthetic_step_loop_workload_names_inputs_it_builds(name, attrs):
    cls = get_workload(name)
    assert list(cls.input_attrs) == attrs
    small = {"resnet": {"image_size": 32}, "unet": {"image_height": 32, "image_width": 48},
             "bert": {"seq_len": 32, "batch_size": 1}, "bert-tiny": {"seq_len": 32},
             "lstm": {}, "yolov10n": {"image_size": 64}}[name]
    wl = cls(context(2, params={**cls.configs["small"], **small}))
    wl.setup()
    assert wl.fixed_inputs_reason() is None  # synthetic mode builds every named input


def test_gemm_cycles_its_operands(monkeypatch):
    workload = get_workload("gemm")(context(3, warmup=3, iters=3, params={"sizes": [16]}))
    workload.setup()
    calls = []
    matmul = torch.matmul

    def recording(a, b, out):
        calls.append(a.data_ptr())
        return matmul(a, b, out=out)

    monkeypatch.setattr(torch, "matmul", recording)
    workload.measure()
    assert len(calls) == 6 and calls == calls[:3] * 2 and len(set(calls)) == 3
    assert workload.info()["input_variants"] == {"requested": 3, "used": 3,
                                                 "attrs": ["a", "b"]}


# -- the suite rule ----------------------------------------------------------------------------
def suite_file(tmp_path, rule: str):
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\nrules: {{input_variants: {rule}}}\n"
                    "entries:\n  - {workload: gemm, mode: infer}\n"
                    "  - {workload: resnet, mode: infer, rules: {input_variants: 1}}\n")
    return path


def test_the_rule_reaches_the_entries_and_an_entry_may_set_its_own(tmp_path):
    suite = load_suite(str(suite_file(tmp_path, "8")))
    assert [e.rules.input_variants for e in suite.entries] == [8, 1]
    assert suite.entries[0].to_dict()["rules"]["input_variants"] == 8
    assert RunRules().input_variants == 1


@pytest.mark.parametrize("rule, words", [
    ("0", "0 is less than the minimum of 1"), ("65", "65 is greater than the maximum of 64"),
    ("two", "'two' is not of type 'integer'"), ("2.5", "2.5 is not of type 'integer'"),
])
def test_the_rule_refuses_values_out_of_range_with_the_field(tmp_path, rule, words):
    path = suite_file(tmp_path, rule)
    with pytest.raises(UserError) as err:
        load_suite(str(path))
    assert f"Suite file {path} breaks the suite schema at $.rules.input_variants" in \
        err.value.what
    assert words in err.value.what and "suite.schema.json" in err.value.fix


# -- the result document ---------------------------------------------------------------------
def test_a_run_with_input_variants_writes_valid_results_that_say_what_varied(tmp_path):
    suite = tmp_path / "variants.yaml"
    suite.write_text(
        "name: variants\n"
        "rules: {warmup_iters: 1, min_iters: 3, min_duration_s: 0, repeats: 1, timeout_s: 120,"
        " input_variants: 4}\n"
        "telemetry: {interval_s: 0.05, idle_s: 0}\n"
        "entries:\n"
        "  - {workload: resnet, mode: infer, params: {image_size: 32}}\n"
        "  - {workload: test-sleep, mode: infer}\n")
    out = tmp_path / "run"
    proc = run_bench("run", "--suite", str(suite), "--device", "cpu", "--out", str(out),
                     "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    resnet = json.loads((out / "resnet-infer.json").read_text())
    sleep = json.loads((out / "test-sleep-infer.json").read_text())
    for doc in (resnet, sleep):
        assert doc["status"] == "ok" and validation_errors(doc, "result") == []
        assert doc["rules"]["input_variants"] == 4
    assert resnet["workload"]["info"]["input_variants"] == {
        "requested": 4, "used": 4, "attrs": ["images", "labels"]}
    record = sleep["workload"]["info"]["input_variants"]
    assert record["used"] == 1 and "input_attrs" in record["reason"]

    # A result written before the rule existed has no input_variants and stays valid.
    older = json.loads(json.dumps(resnet))
    del older["rules"]["input_variants"], older["workload"]["info"]["input_variants"]
    assert validation_errors(older, "result") == []
    broken = json.loads(json.dumps(resnet))
    broken["workload"]["info"]["input_variants"]["used"] = 0
    assert any(p.path == "$.workload.info.input_variants.used"
               for p in validation_errors(broken, "result"))
