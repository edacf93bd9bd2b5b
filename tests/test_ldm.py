"""The latent-diffusion text-to-image workload (docs/llm.md)."""

from __future__ import annotations

import pytest
import torch

from bench.devices import get_backend
from bench.errors import UserError
from bench.llm import diffusion
from bench.rules import RunRules
from bench.workloads import WorkloadContext, get_workload
from bench.workloads.ldm import image_metrics

FIXTURES = __import__("pathlib").Path(__file__).resolve().parent / "fixtures" / "llm"
QUICK = RunRules(warmup_iters=0, min_iters=1, min_duration_s=0.0, repeats=1)


def test_published_pipeline_has_the_reported_parameter_count():
    pipe = diffusion.build_pipeline("published", None, torch.float16, torch.device("meta"))
    assert pipe.parameter_counts() == {"unet": 872_300_484, "vae": 83_653_863,
                                       "text_encoder": 581_994_042,
                                       "total": 1_537_948_389}
    assert diffusion.PUBLISHED_PARAMETERS == 1_537_948_389


def test_image_metrics_by_hand():
    timings = [diffusion.ImageTiming(0.0, 0.1, 0.9, 1.0),
               diffusion.ImageTiming(2.0, 2.1, 3.1, 3.2)]
    m = image_metrics(timings, batch=2, steps=4, duration_s=2.5)
    assert m["image_latency_mean_s"]["value"] == pytest.approx(1.1)
    assert m["image_latency_p50_s"]["value"] == pytest.approx(1.0)
    assert m["image_latency_p99_s"]["value"] == pytest.approx(1.2)
    assert m["text_encoder_s"]["value"] == pytest.approx(0.1)
    assert m["denoise_s"]["value"] == pytest.approx(0.9)
    assert m["denoise_step_mean_s"]["value"] == pytest.approx(0.225)
    assert m["vae_decode_s"]["value"] == pytest.approx(0.1)
    assert m["images_per_s"]["value"] == pytest.approx(1.6)  # 2 x 2 images / 2.5 s
    assert m["throughput_items_per_s"] == m["images_per_s"]


def make(precision: str = "fp32", **params):
    cls = get_workload("ldm")
    merged = {**cls.configs["small"], **params}
    cls.validate_params(merged)
    return cls(WorkloadContext(backend=get_backend("cpu"), mode="infer", params=merged,
                               precision=precision, seed=0, rules=QUICK))


@pytest.mark.parametrize("params, words", [
    ({"resolutions": [40]}, "not multiples of 16"),
    ({"steps": 0}, "steps"),
    ({"guidance_scale": 0.5}, "guidance_scale"),
    ({"reference_point": {"batch": 3, "resolution": 16}}, "not a point"),
    ({"weights": "/nonexistent"}, "not a directory"),
    ({"prompts": "p.txt"}, "need a tokenizer"),
])
def test_bad_parameters_are_refused(params, words):
    with pytest.raises(UserError, match=words):
        make(**params)


def test_full_grid_resolutions_fit_the_published_downsampling():
    cls = get_workload("ldm")
    cls.validate_params(cls.configs["full"])
    assert diffusion.spatial_factor("published") == 64


def test_small_grid_runs_every_point_with_its_stages():
    w = make()
    w.setup()
    assert w.extra["parameters"] == sum(p.numel() for m in (w.pipe.unet, w.pipe.vae,
                                                             w.pipe.text_encoder)
                                        for p in m.parameters())
    out = w.measure()
    assert [p["params"] for p in out["points"]] == [
        {"batch": 1, "resolution": 16}, {"batch": 2, "resolution": 16},
        {"batch": 1, "resolution": 32}, {"batch": 2, "resolution": 32}]
    for p in out["points"]:
        m = p["metrics"]
        assert p["status"] == "ok"
        stages = m["text_encoder_s"]["value"] + m["denoise_s"]["value"] + \
            m["vae_decode_s"]["value"]
        assert stages == pytest.approx(m["image_latency_mean_s"]["value"])
    assert out["items"] == out["iterations"] * 1  # reference point: batch 1
    assert out["metrics"]["model_load_s"]["value"] > 0


def test_input_variants_cycle_permuted_prompt_batches(monkeypatch):
    from bench.workloads import ldm as ldm_workload

    seen = []
    real = diffusion.generate_images

    def recording(pipe, ids, *args, **kwargs):
        seen.append(ids)
        return real(pipe, ids, *args, **kwargs)

    monkeypatch.setattr(ldm_workload.diffusion, "generate_images", recording)
    w = make(batch_sizes=[1], resolutions=[16])
    w.ctx.rules = RunRules(warmup_iters=0, min_iters=4, min_duration_s=0.0, repeats=1,
                           input_variants=3)
    w.setup()
    w.measure()
    assert [id(ids) for ids in seen] == [id(seen[0]), id(seen[1]), id(seen[2]), id(seen[0])]
    assert not torch.equal(seen[1], seen[0]) and not torch.equal(seen[2], seen[1])
    assert w.info()["input_variants"] == {"requested": 3, "used": 3, "attrs": ["prompt_ids"]}


def test_local_weights_in_the_diffusers_layout_are_loaded(tmp_path):
    torch.manual_seed(7)
    saved = diffusion.build_pipeline("reduced", None, torch.float32, torch.device("cpu"))
    saved.unet.save_pretrained(tmp_path / "unet")
    saved.vae.save_pretrained(tmp_path / "vqvae")
    saved.text_encoder.save_pretrained(tmp_path / "bert")
    w = make(weights=str(tmp_path))
    w.setup()
    assert w.extra["load_source"] == f"local weights {tmp_path}"
    for mine, theirs in ((w.pipe.unet, saved.unet), (w.pipe.vae, saved.vae),
                         (w.pipe.text_encoder, saved.text_encoder)):
        ref = theirs.state_dict()
        for key, value in mine.state_dict().items():
            assert torch.equal(value, ref[key]), key
    # FLOPs per image are counted from the local configurations alone (nothing loaded)
    from bench.flops import count_work

    counted = [count_work(lambda p=p: type(w).work_probe("infer", p, "fp32", {}))
               for p in (w.params, {**w.params, "weights": None})]
    assert counted[0].reason is None and counted[0].flop_per_item == counted[1].flop_per_item


def test_text_prompts_are_tokenized_to_the_encoder_length():
    w = make(prompts=str(FIXTURES / "prompts.txt"),
             tokenizer=str(FIXTURES / "tokenizer-tiny.json"))
    w.setup()
    rows = w.prompt_rows
    assert len(rows) == 2 and all(len(r) == diffusion.TEXT_TOKENS for r in rows)
    assert rows[0] != rows[1] and rows[0][-1] == 0  # padded with the pad id
    assert w.extra["prompts"]["count"] == 3
