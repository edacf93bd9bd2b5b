"""LLM workloads: parameter counts, memory estimate, precision policy, generation protocol,
metrics, prompts, local weights and the grid (docs/workloads.md, docs/llm.md)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from bench.devices import get_backend
from bench.errors import UserError
from bench.llm import prompts
from bench.llm.architectures import ARCHITECTURES, DecoderShape, decoder_parameter_count
from bench.llm.generation import (
    TTFT_TIERS,
    GenerationSettings,
    GenerationTiming,
    TokenClock,
    generate_timed,
    generation_metrics,
    tier_metrics,
    tier_of,
)
from bench.llm.grid import pick_reference, run_point
from bench.llm.memory import (
    GIB,
    choose_precision,
    estimate_generation_memory,
    fits,
    kv_cache_bytes,
)
from bench.rules import RunRules
from bench.workloads import WorkloadContext, get_workload
from bench.workloads.llm import grid_points
from tests.conftest import run_bench

LLM = Path(__file__).resolve().parent / "fixtures" / "llm"
REPORTED = {"qwen2-0.5b": 494_032_768, "llama3-8b": 8_030_261_248, "glm4-9b": 9_399_951_360}
QUICK = RunRules(warmup_iters=0, min_iters=1, min_duration_s=0.0, repeats=1)


def meta_model(name: str, scale: str = "published") -> torch.nn.Module:
    arch = ARCHITECTURES[name]
    with torch.device("meta"):
        return arch.model_type_class()(arch.build_config(scale))


# -- parameter counts (docs/workloads.md) --------------------------------------------------------
@pytest.mark.parametrize("name", sorted(REPORTED))
def test_published_configuration_has_the_reported_parameter_count(name):
    model = meta_model(name)
    count = sum(p.numel() for p in model.parameters())
    assert count == REPORTED[name] == ARCHITECTURES[name].reference_parameters
    # The closed form the memory estimate uses agrees with the built model.
    assert decoder_parameter_count(DecoderShape.from_config(model.config)) == count


@pytest.mark.parametrize("name", sorted(REPORTED))
def test_reduced_variant_keeps_the_architecture_features(name):
    model = meta_model(name, "reduced")
    full = meta_model(name)
    assert type(model) is type(full)
    shape = DecoderShape.from_config(model.config)
    assert decoder_parameter_count(shape) == sum(p.numel() for p in model.parameters())
    assert shape.qkv_bias == DecoderShape.from_config(full.config).qkv_bias
    assert shape.tied_embeddings == DecoderShape.from_config(full.config).tied_embeddings
    assert shape.layers == 2 and shape.vocab == 512


def test_report_glm4_count_is_the_four_kv_group_variant():
    """The report's 9,483,857,920 is GLM-4-9B with multi_query_group_num 4 (Chat-1M)."""
    shape = DecoderShape.from_config(meta_model("glm4-9b").config)
    four_groups = DecoderShape(**{**shape.__dict__, "kv_heads": 4})
    assert decoder_parameter_count(four_groups) == 9_483_857_920
    assert decoder_parameter_count(four_groups) - decoder_parameter_count(shape) == \
        40 * 2 * (2 * 4096 * 128 + 2 * 128)


# -- memory estimate and precision policy ------------------------------------------------------
def qwen_shape() -> DecoderShape:
    return DecoderShape.from_config(ARCHITECTURES["qwen2-0.5b"].build_config("published"))


def test_memory_estimate_by_hand():
    # Qwen2-0.5B, bf16, batch 1, 256 in + 128 out:
    # weights 494,032,768 x 2; KV 2 x 24 layers x 384 tokens x 2 heads x 64 x 2 B;
    # activations 256 x (2x896 + (14+2x2)x64 + 3x4864) x 2 B + 2 x 151,936 x 4 B.
    est = estimate_generation_memory(qwen_shape(), 1, 256, 128, "bf16")
    assert est.weights_bytes == 988_065_536
    assert est.kv_cache_bytes == 4_718_592
    assert est.activation_bytes == 8_978_432 + 1_215_488
    assert est.total_bytes == 1_002_978_048


def test_kv_cache_of_llama3_at_the_largest_grid_point_is_16_gib():
    shape = DecoderShape.from_config(ARCHITECTURES["llama3-8b"].build_config("published"))
    # 2 x 32 layers x 64 sequences x 2048 tokens x 8 KV heads x 128 x 2 B = 16 GiB.
    assert kv_cache_bytes(shape, 64, 2048, 2) == 16 * GIB
    est = estimate_generation_memory(shape, 64, 1024, 1024, "bf16")
    # activations: 64 x 1024 x (2x4096 + (32+2x8)x128 + 3x14336) x 2 B + 2 x 64 x 128,256 x 4 B
    assert est.activation_bytes == 7_516_192_768 + 65_667_072
    assert est.total_bytes == 16_060_522_496 + 16 * GIB + 7_581_859_840  # 38.02 GiB
    assert fits(est, 80 * GIB)  # 72 GiB usable on an A100-80GB
    assert not fits(est, 40 * GIB)  # 36 GiB usable


def test_fits_uses_ninety_percent_of_the_budget():
    est = estimate_generation_memory(qwen_shape(), 1, 256, 128, "bf16")
    assert fits(est, math.ceil(est.total_bytes / 0.9))
    assert not fits(est, est.total_bytes)  # all of it: no headroom left
    assert fits(est, None)


def test_precision_falls_back_when_fp32_does_not_fit_a_24_gib_card():
    need = {"fp32": 32 * GIB, "bf16": 16 * GIB, "fp16": 16 * GIB}
    choice = choose_precision("fp32", ["fp32", "bf16", "fp16"], need.__getitem__, 24 * GIB)
    assert (choice.used, choice.requested) == ("bf16", "fp32")
    assert "fp32 needs 32.00 GiB" in choice.reason and "21.60 GiB usable" in choice.reason
    kept = choose_precision("fp32", ["fp32", "bf16"], need.__getitem__, 80 * GIB)
    assert (kept.used, kept.reason) == ("fp32", None)


def test_precision_without_bf16_support_uses_fp16_and_says_why():
    choice = choose_precision("bf16", ["fp32", "fp16"], lambda p: 1, 24 * GIB)
    assert choice.used == "fp16"
    assert "does not support bf16" in choice.reason


def test_precision_when_nothing_fits_uses_the_most_compact():
    choice = choose_precision("fp32", ["fp32", "bf16", "fp16"], lambda p: 100 * GIB, 24 * GIB)
    assert choice.used == "fp16" and "nothing fits" in choice.reason


# -- the generation protocol ------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, words", [
    ({"min_new_tokens": 1}, "min_new_tokens (1) differs"),
    ({"do_sample": True}, "do_sample"),
    ({"num_beams": 4}, "num_beams=4"),
    ({"ignore_eos": False}, "ignore_eos"),
])
def test_generation_settings_refuse_meaningless_measurements(kwargs, words):
    with pytest.raises(UserError, match=re.escape(words)):
        GenerationSettings(**{"max_new_tokens": 16, "min_new_tokens": 16, **kwargs})


def test_suite_refuses_sampling_before_running(tmp_path):
    proc = run_bench("run", "--suite", "llm", "--device", "cpu", "--out", str(tmp_path),
                     "--set", "glm4-9b-infer.do_sample=true")
    assert proc.returncode == 2
    assert "glm4-9b-infer" in proc.stderr and "do_sample" in proc.stderr
    assert not list(tmp_path.glob("*.json"))


def test_generation_metrics_by_hand():
    timings = [GenerationTiming(0.0, [0.5, 0.6, 0.8], 0.9),
               GenerationTiming(1.0, [1.3, 1.4, 1.5], 1.6)]
    m = generation_metrics(timings, batch=2, input_tokens=4, output_tokens=3, duration_s=2.0)
    assert m["ttft_s"]["value"] == pytest.approx(0.4)
    assert m["ttft_p50_s"]["value"] == pytest.approx(0.3)  # nearest rank 1 of [0.3, 0.5]
    assert m["ttft_p90_s"]["value"] == pytest.approx(0.5)
    assert m["tpot_mean_s"]["value"] == pytest.approx(0.125)  # gaps 0.1 0.2 0.1 0.1
    assert m["tpot_p50_s"]["value"] == pytest.approx(0.1)
    assert m["tpot_p99_s"]["value"] == pytest.approx(0.2)
    assert m["output_tokens_per_s"]["value"] == pytest.approx(6.0)  # 2 x 3 x 2 tokens / 2 s
    assert m["throughput_items_per_s"]["value"] == m["output_tokens_per_s"]["value"]
    assert m["prompt_tokens_per_s"]["value"] == pytest.approx(20.0)  # 2 x 4 / 0.4 s
    assert m["generation_latency_mean_s"]["value"] == pytest.approx(0.75)
    assert m["output_tokens_generated"] == {"value": None, "unit": "tokens", "requested": 3,
                                            "reason": "2 of 2 generation(s) did not record "
                                                      "their output length"}


def test_output_tokens_generated_is_the_shortest_generation_beside_the_request():
    timings = [GenerationTiming(0.0, [0.1, 0.2], 0.3, new_tokens=8),
               GenerationTiming(1.0, [1.1, 1.2], 1.3, new_tokens=6),
               GenerationTiming(2.0, [2.1, 2.2], 2.3, new_tokens=9)]
    m = generation_metrics(timings, batch=1, input_tokens=4, output_tokens=8, duration_s=3.0)
    assert m["output_tokens_generated"] == {"value": 6, "unit": "tokens", "requested": 8,
                                            "max": 9}


def test_output_tokens_generated_over_repeats_is_the_minimum_and_keeps_the_request():
    from bench.results import build_points

    def repeat(value, high):
        return {"points": [{"params": {"batch": 1}, "status": "ok", "metrics": {
            "output_tokens_generated": {"value": value, "unit": "tokens", "requested": 8,
                                        "max": high},
            "ttft_s": {"value": value / 100, "unit": "s"}}}]}

    point = build_points([repeat(8, 8), repeat(5, 8), repeat(8, 9)], None, "tokens", 0.0)[0]
    assert point["metrics"]["output_tokens_generated"] == {
        "value": 5, "unit": "tokens", "requested": 8, "max": 9, "n": 3,
        "per_repeat": [8, 5, 8]}
    assert point["metrics"]["ttft_s"]["value"] == pytest.approx(0.07)  # others: the mean
    unmeasured = {"points": [{"params": {"batch": 1}, "status": "ok", "metrics": {
        "output_tokens_generated": {"value": None, "unit": "tokens", "requested": 8,
                                    "reason": "not recorded"}}}]}
    point = build_points([repeat(8, 8), unmeasured], None, "tokens", 0.0)[0]
    figure = point["metrics"]["output_tokens_generated"]
    assert figure["value"] == 8 and figure["per_repeat"] == [8, None]
    assert figure["note"] == "1 of 2 repeat(s) without a value: not recorded"


def test_one_output_token_has_no_time_per_token():
    m = generation_metrics([GenerationTiming(0.0, [0.2], 0.25)], 1, 8, 1, 0.25)
    assert m["tpot_mean_s"]["value"] is None and "one output token" in m["tpot_mean_s"]["reason"]


def test_ttft_tiers_are_half_open_intervals():
    assert tier_of(0.5) == "tier_max_tokens_per_s_0_500ms"
    assert tier_of(0.5001) == "tier_max_tokens_per_s_500_1000ms"
    assert tier_of(3.0) == "tier_max_tokens_per_s_1000_3000ms"
    assert tier_of(12.0) == "tier_max_tokens_per_s_3000ms_inf"
    with pytest.raises(ValueError):
        tier_of(0.0)


def test_tier_metrics_take_the_best_throughput_per_tier():
    points = [(0.2, 100.0, {"b": 1}), (0.4, 150.0, {"b": 8}), (0.7, 300.0, {"b": 16}),
              (5.0, 900.0, {"b": 64})]
    m = tier_metrics(points)
    assert m["tier_max_tokens_per_s_0_500ms"]["value"] == 150.0
    assert m["tier_max_tokens_per_s_0_500ms"]["point"] == {"b": 8}
    assert m["tier_max_tokens_per_s_500_1000ms"]["value"] == 300.0
    assert m["tier_max_tokens_per_s_1000_3000ms"]["value"] is None
    assert "(1000, 3000] ms" in m["tier_max_tokens_per_s_1000_3000ms"]["reason"]
    assert m["tier_max_tokens_per_s_3000ms_inf"]["value"] == 900.0


def test_token_clock_ignores_the_prompt_and_syncs_before_each_timestamp():
    calls = []
    ticks = iter([1.0, 2.0, 3.5])
    clock = TokenClock(lambda: calls.append("sync"), lambda: next(ticks))
    for _ in range(4):
        clock.put(None)
    assert clock.token_s == [1.0, 2.0, 3.5] and calls == ["sync"] * 3


def test_generate_timed_produces_exactly_the_requested_tokens():
    arch = ARCHITECTURES["llama3-8b"]
    torch.manual_seed(0)
    model = arch.model_type_class()(arch.build_config("reduced")).eval()
    ids = torch.randint(0, 512, (3, 10))
    config = GenerationSettings(7, 7).generation_config(eos_token_id=2, pad_token_id=0)
    out, timing = generate_timed(model, ids, torch.ones_like(ids), config, lambda: None)
    assert out.shape == (3, 17) and timing.new_tokens == 7
    assert len(timing.token_s) == 7 and timing.start_s < timing.token_s[0] <= timing.end_s
    assert not (out[:, 10:] == 2).any()  # EOS is masked: the length is fixed


# -- prompts ------------------------------------------------------------------------------------
def test_fit_to_length_cuts_or_fills_and_keeps_the_question_last():
    assert prompts.fit_to_length([1, 2, 3, 4, 5], [9, 9], [], 5) == [1, 2, 3, 9, 9]
    assert prompts.fit_to_length([1, 2], [9], [[7, 7, 7], [8]], 5) == [7, 7, 1, 2, 9]
    assert prompts.fit_to_length([1], [9], [[7], [8, 8]], 5) == [8, 8, 7, 1, 9]
    with pytest.raises(ValueError):
        prompts.fit_to_length([1], [9], [], 5)


def test_cmrc2018_prompts_have_exact_length(fixtures):
    examples = prompts.load_cmrc2018(LLM / "cmrc2018-tiny.json")
    assert len(examples) == 3 and examples[1][1] == "首字延迟被分成几个区间？"
    tok = prompts.load_tokenizer(LLM / "tokenizer-tiny.json")
    tail = tok.encode(prompts.TAIL.format(question=examples[0][1]), add_special_tokens=False)
    for length in (24, 64, 200):
        rows = prompts.cmrc2018_prompt_ids(examples, tok, 5, length)
        assert [len(r) for r in rows] == [length] * 5
        assert rows[0][-min(len(tail), length):] == tail[-length:]
        assert rows[3] == rows[0]  # cycles through the three paragraphs
    with pytest.raises(UserError, match="too little"):
        prompts.cmrc2018_prompt_ids(examples, tok, 1, 100_000)


@pytest.mark.parametrize("content, words", [
    (None, "does not exist"), ("{not json", "cannot be read"), ('{"x": 1}', "no `data` list"),
    ('{"data": [{"paragraphs": [{"context": ""}]}]}', "context is missing"),
])
def test_cmrc2018_loader_names_the_problem(tmp_path, content, words):
    path = tmp_path / "cmrc.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=words):
        prompts.load_cmrc2018(path)


# -- the workload, in process --------------------------------------------------------------------
def make_workload(name: str, precision: str = "fp32", rules: RunRules = QUICK, **params):
    cls = get_workload(name)
    merged = {**cls.configs["small"], **params}
    cls.validate_params(merged)
    ctx = WorkloadContext(backend=get_backend("cpu"), mode="infer", params=merged,
                          precision=precision, seed=0, rules=rules)
    return cls(ctx)


def test_points_beyond_the_memory_budget_are_oom_with_the_estimate():
    # Reduced Qwen2 in fp32 needs 485,632 B at (1, 16, 8), 538,880 B at (1, 32, 16) and more
    # at batch 4; a 600,000 B budget leaves 540,000 B usable.
    w = make_workload("qwen2-0.5b", memory_budget_bytes=600_000)
    w.setup()
    assert w.precision_used == "fp32" and w.precision_reason is None
    out = w.measure()
    status = {(p["params"]["batch"], p["params"]["input_tokens"]): p["status"]
              for p in out["points"]}
    assert status == {(1, 16): "ok", (4, 16): "oom", (1, 32): "ok", (4, 32): "oom"}
    skipped = out["points"][1]
    assert skipped["error"]["type"] == "MemoryEstimate"
    assert skipped["metrics"]["memory_estimate_bytes"]["value"] == 657_664
    assert "window" not in skipped
    assert out["points"][0]["metrics"]["memory_estimate_bytes"]["value"] == 485_632
    for p in out["points"]:
        generated = p["metrics"].get("output_tokens_generated")
        assert (generated is None) == (p["status"] != "ok")
        if generated:
            n_out = p["params"]["output_tokens"]
            assert generated == {"value": n_out, "unit": "tokens", "requested": n_out,
                                 "max": n_out}
    assert out["throughput_items_per_s"] > 0 and out["items"] == out["iterations"] * 8
    ran = [p for p in out["points"] if p["status"] == "ok"]
    for name, low, high in TTFT_TIERS:
        inside = [p for p in ran if low < p["metrics"]["ttft_s"]["value"] <= high]
        best = max(inside, key=lambda p: p["metrics"]["output_tokens_per_s"]["value"],
                   default=None)
        assert out["metrics"][name]["value"] == (
            best["metrics"]["output_tokens_per_s"]["value"] if best else None)
        assert w.extra["ttft_tier_points"][name] == (best["params"] if best else None)


def test_fp32_that_does_not_fit_falls_back_to_bf16_and_records_why():
    w = make_workload("qwen2-0.5b", memory_budget_bytes=500_000)
    w.setup()
    assert w.precision_used == "bf16"
    assert "fp32 needs" in w.precision_reason and "fell back to bf16" in w.precision_reason
    assert next(w.model.parameters()).dtype == torch.bfloat16


def test_a_real_allocation_failure_is_an_oom_point_not_a_crash():
    ctx = WorkloadContext(backend=get_backend("cpu"), mode="infer", params={},
                          precision="fp32", seed=0, rules=QUICK)

    def step() -> int:
        torch.empty(2**60, dtype=torch.uint8)  # the allocator refuses: a real OOM
        return 1

    point = run_point(ctx, {"batch": 64}, step, lambda loop: {})
    assert point.status == "oom" and point.loop is None
    assert "allocate" in point.error["message"]
    ref, note = pick_reference([point], {"batch": 64})
    assert ref is None and note == "no grid point ran"


def test_reference_point_stands_in_when_the_configured_one_did_not_run():
    w = make_workload("llama3-8b", memory_budget_bytes=None,
                      reference_point={"batch": 4, "input_tokens": 32, "output_tokens": 16})
    w.setup()
    out = w.measure()
    assert w.extra["reference_point_used"] == {"batch": 4, "input_tokens": 32,
                                               "output_tokens": 16}
    assert out["items"] == out["iterations"] * 4 * 16


def test_cmrc2018_prompts_through_the_workload():
    w = make_workload("glm4-9b", prompts="cmrc2018", dataset=str(LLM / "cmrc2018-tiny.json"),
                      tokenizer=str(LLM / "tokenizer-tiny.json"), batch_sizes=[2],
                      reference_point={"batch": 2, "input_tokens": 16, "output_tokens": 8})
    w.setup()
    assert w.extra["prompts"]["paragraphs"] == 3
    assert all(len(r) == 32 for r in w.prompt_rows[32])
    out = w.measure()
    assert [p["status"] for p in out["points"]] == ["ok", "ok"]


def test_input_variants_cycle_permuted_prompt_batches_per_point(monkeypatch):
    import bench.workloads.llm as llm_workload

    seen = []
    real = llm_workload.generate_timed

    def recording(model, ids, *args, **kwargs):
        seen.append(ids)
        return real(model, ids, *args, **kwargs)

    monkeypatch.setattr(llm_workload, "generate_timed", recording)
    rules = RunRules(warmup_iters=1, min_iters=3, min_duration_s=0.0, repeats=1,
                     input_variants=2)
    w = make_workload("qwen2-0.5b", rules=rules, batch_sizes=[2], io_tokens=[[16, 8]],
                      reference_point={"batch": 2, "input_tokens": 16, "output_tokens": 8})
    w.setup()
    w.measure()
    assert len(seen) == 4  # one warm-up and three timed generations
    first = torch.tensor(w.prompt_rows[16][:2])
    assert torch.equal(seen[0].cpu(), first) and not torch.equal(seen[1], seen[0])
    assert seen[2] is seen[0] and seen[3] is seen[1]
    assert torch.equal(seen[1].flatten().sort().values, first.flatten().sort().values)
    assert w.info()["input_variants"] == {"requested": 2, "used": 2, "attrs": ["input_ids"]}


def test_local_weights_are_loaded_not_initialised(tmp_path):
    arch = ARCHITECTURES["qwen2-0.5b"]
    torch.manual_seed(123)
    saved = arch.model_type_class()(arch.build_config("reduced"))
    saved.save_pretrained(tmp_path / "qwen")
    w = make_workload("qwen2-0.5b", weights=str(tmp_path / "qwen"))
    w.setup()
    assert w.extra["load_source"].startswith("local weights")
    loaded = w.model.state_dict()
    for key, value in saved.state_dict().items():
        assert torch.equal(loaded[key], value), key
    wrong = make_workload("llama3-8b", weights=str(tmp_path / "qwen"))
    with pytest.raises(UserError, match="'qwen2' model"):
        wrong.setup()


def test_weights_must_be_a_directory():
    with pytest.raises(UserError, match="not a directory"):
        make_workload("qwen2-0.5b", weights="/nonexistent/weights")


@pytest.mark.parametrize("params, words", [
    ({"batch_sizes": [0]}, "batch_sizes"),
    ({"io_tokens": [[16]]}, "io_tokens"),
    ({"reference_point": {"batch": 3, "input_tokens": 16, "output_tokens": 8}}, "not a point"),
    ({"prompts": "cmrc2018"}, "needs `dataset`"),
    ({"memory_budget_bytes": -1}, "memory_budget_bytes"),
])
def test_bad_parameters_are_refused(params, words):
    with pytest.raises(UserError, match=words):
        make_workload("qwen2-0.5b", **params)


# -- the suite, end to end ------------------------------------------------------------------------
@pytest.mark.slow
def test_llm_suite_runs_and_validates(tmp_path):
    """The real suite file through the runner and the schema: one LLM and the ldm (the other
    LLMs differ only in their architecture, which the in-process tests run)."""
    proc = run_bench("run", "--suite", "llm", "--device", "cpu", "--out", str(tmp_path),
                     "--only", "glm4-9b-infer,ldm-infer", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check = run_bench("validate", str(tmp_path))
    assert check.returncode == 0, check.stdout + check.stderr
    for name in ("glm4-9b",):
        doc = json.loads((tmp_path / f"{name}-infer.json").read_text(encoding="utf-8"))
        assert doc["status"] == "ok" and doc["workload"]["group"] == "llm"
        m = doc["metrics"]
        assert m["model_load_s"]["value"] > 0 and m["model_load_s"]["n"] == 2
        assert {k for k in m if k.startswith("tier_")} == {
            "tier_max_tokens_per_s_0_500ms", "tier_max_tokens_per_s_500_1000ms",
            "tier_max_tokens_per_s_1000_3000ms", "tier_max_tokens_per_s_3000ms_inf"}
        assert all(v["value"] is not None or v["reason"].startswith("no grid point")
                   for k, v in m.items() if k.startswith("tier_"))
        assert len(doc["points"]) == 4
        for p in doc["points"]:
            pm = p["metrics"]
            assert p["status"] == "ok" and len(p["windows"]) == 2
            for key in ("ttft_s", "ttft_p99_s", "tpot_mean_s", "tpot_p90_s",
                        "output_tokens_per_s", "prompt_tokens_per_s", "peak_mem_bytes",
                        "throughput_items_per_s", "memory_estimate_bytes", "power_w_mean",
                        "device_util_pct", "energy_j"):
                assert key in pm, key
            assert pm["ttft_s"]["value"] < pm["generation_latency_mean_s"]["value"]
    ldm = json.loads((tmp_path / "ldm-infer.json").read_text(encoding="utf-8"))
    assert ldm["status"] == "ok" and len(ldm["points"]) == 4
    assert ldm["metrics"]["throughput_items_per_s"]["unit"] == "images/s"


def test_a_grid_result_records_the_output_length_and_the_prompt_variants(tmp_path):
    """Through the runner: two repeats of one point, aggregated and schema-valid, with what
    an auditor checks (the generated length next to the request, the varied prompts)."""
    suite = tmp_path / "llm.yaml"
    suite.write_text(
        "name: llm-audit\n"
        "rules: {warmup_iters: 1, min_iters: 2, min_duration_s: 0, repeats: 2, timeout_s: 300,"
        " input_variants: 2}\n"
        "telemetry: {interval_s: 0.05, idle_s: 0}\n"
        "entries:\n"
        "  - {workload: qwen2-0.5b, mode: infer, precision: fp32, params: {batch_sizes: [1],"
        " io_tokens: [[16, 8]]}}\n")
    proc = run_bench("run", "--suite", str(suite), "--device", "cpu", "--out", str(tmp_path),
                     "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "qwen2-0.5b-infer.json").read_text(encoding="utf-8"))
    from bench.schema import validation_errors

    assert doc["status"] == "ok" and validation_errors(doc, "result") == []
    assert doc["points"][0]["metrics"]["output_tokens_generated"] == {
        "value": 8, "unit": "tokens", "requested": 8, "max": 8, "n": 2, "per_repeat": [8, 8]}
    assert doc["workload"]["info"]["input_variants"] == {"requested": 2, "used": 2,
                                                         "attrs": ["input_ids"]}
    short = json.loads(json.dumps(doc))
    short["points"][0]["metrics"]["output_tokens_generated"].pop("requested")
    assert any(p.path == "$.points[0].metrics.output_tokens_generated" and p.rule == "required"
               for p in validation_errors(short, "result"))


def test_full_suite_holds_the_published_grid():
    from bench.config import load_suite

    suite = load_suite("llm-full")
    entries = {e.id: e for e in suite.entries}
    assert set(entries) == {"qwen2-0.5b-infer", "llama3-8b-infer", "glm4-9b-infer",
                            "ldm-infer"}
    llama = entries["llama3-8b-infer"]
    assert llama.precision == "bf16" and llama.params["architecture"] == "published"
    assert len(grid_points(llama.params)) == 35
    assert grid_points(llama.params)[0] == llama.params["reference_point"]
    assert entries["ldm-infer"].params["resolutions"] == [512, 640, 768]


def test_overhead_summary_by_hand():
    from bench.llm.overhead import summary, verdict

    s = summary([0.98, 1.0, 1.02, 0.99])
    assert s["median"] == pytest.approx(0.995) and s["overhead"] == pytest.approx(0.005)
    assert (s["min"], s["max"]) == (0.98, 1.02)
    # quartiles (exclusive method) 0.9825 and 1.015: half-width
    # 1.96 x 1.2533 x (0.0325 / 1.349) / sqrt(4) = 0.029590
    assert s["overhead_high"] - s["overhead"] == pytest.approx(0.029590, abs=1e-6)
    assert verdict(s) == "inconclusive for"
    assert verdict(summary([0.995, 0.996, 0.997, 0.998])) == "within"
    assert verdict(summary([0.90, 0.91, 0.92, 0.93])) == "OVER"


def test_overhead_command_prints_both_sides_and_the_verdict(capsys):
    from bench.llm.overhead import main

    threads = torch.get_num_threads()
    try:
        assert main(["--device", "cpu", "--rounds", "2", "--iterations", "1",
                     "--input-tokens", "8", "--output-tokens", "4", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert out.count("harness") >= 3 and "bare generate" in out
    assert "harness overhead:" in out and "95 % interval" in out and "2 % target" in out
