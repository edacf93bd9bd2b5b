"""Text-to-image with the latent diffusion model (docs/llm.md): batch x resolution grid.

Per point (batch, resolution): latency of a whole generation (text encoder, the fixed DDIM
steps, VAE decoder) with its stages, images/s, peak memory; per result: model load time. The
result-level throughput and latency are those of the reference point (``reference_point``),
as for the LLM workloads (``bench.llm.grid``). The pipeline and its parameter count are in
``bench.llm.diffusion``.

With the run rule ``input_variants`` K > 1 each point's generations cycle through K prompt
batches: the point's prompt ids and K - 1 permutations of them (bench.data.variants); the
initial latents differ from one generation to the next in any case.
"""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path
from typing import Any

from bench.documents import Info, Metrics, Params, RepeatResult
from bench.errors import Unsupported, UserError
from bench.flops import WorkProbe
from bench.function.model import ModelProbe
from bench.llm import diffusion, prompts
from bench.llm.architectures import SCALES
from bench.llm.grid import PointResult, pick_reference, progress_note, run_point
from bench.stats import LATENCY_PERCENTILES, percentile
from bench.workload import Workload, register

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
_COMMON = {"weights": None, "prompts": None, "tokenizer": None}


def image_grid(params: Params) -> list[dict[str, int]]:
    return [{"batch": b, "resolution": r}
            for r in params["resolutions"] for b in params["batch_sizes"]]


def image_metrics(timings: list[diffusion.ImageTiming], batch: int, steps: int,
                  duration_s: float) -> Metrics:
    """Per-point metrics: whole-generation latency (mean, nearest-rank percentiles), its
    stages, and images/s over the timed window."""
    lat = [t.latency_s for t in timings]
    n = len(timings)

    def mean(values: list[float]) -> float:
        return math.fsum(values) / len(values)

    images_per_s = batch * n / duration_s
    out: Metrics = {
        "image_latency_mean_s": {"value": mean(lat), "unit": "s", "n": n},
        "text_encoder_s": {"value": mean([t.encoded_s - t.start_s for t in timings]),
                           "unit": "s"},
        "denoise_s": {"value": mean([t.denoised_s - t.encoded_s for t in timings]),
                      "unit": "s"},
        "denoise_step_mean_s": {"value": mean([t.denoised_s - t.encoded_s for t in timings])
                                / steps, "unit": "s"},
        "vae_decode_s": {"value": mean([t.end_s - t.denoised_s for t in timings]),
                         "unit": "s"},
        "images_per_s": {"value": images_per_s, "unit": "images/s"},
        "throughput_items_per_s": {"value": images_per_s, "unit": "images/s"},
    }
    for p in LATENCY_PERCENTILES:
        out[f"image_latency_p{p}_s"] = {"value": percentile(lat, p), "unit": "s"}
    return out


def validate_ldm_params(params: Params) -> None:
    scale = params["architecture"]
    if scale not in SCALES:
        raise UserError(f"architecture is {scale!r}.", f"Use one of: {', '.join(SCALES)}.")
    for key in ("batch_sizes", "resolutions"):
        v = params[key]
        if not (isinstance(v, list) and v and all(isinstance(x, int) and not isinstance(x, bool)
                                                  and x > 0 for x in v)):
            raise UserError(f"{key} must be a list of positive integers, got {v!r}.",
                            f"Write e.g. {key}: [1, 2].")
    factor = diffusion.spatial_factor(scale)
    bad = [r for r in params["resolutions"] if r % factor]
    if bad:
        raise UserError(f"resolutions {bad} are not multiples of {factor} (the VAE's and "
                        f"the UNet's downsampling of the {scale} architecture).",
                        f"Use multiples of {factor}, e.g. 512, 640, 768.")
    if not isinstance(params["steps"], int) or params["steps"] < 1:
        raise UserError(f"steps must be a positive integer, got {params['steps']!r}.",
                        "The protocol uses a fixed number of DDIM steps, e.g. 50.")
    if not isinstance(params["guidance_scale"], int | float) or params["guidance_scale"] < 1:
        raise UserError(f"guidance_scale must be a number >= 1, got "
                        f"{params['guidance_scale']!r}.", "Use 1 (no guidance) or e.g. 6.")
    if params["reference_point"] not in image_grid(params):
        raise UserError(f"reference_point {params['reference_point']!r} is not a point of "
                        "the grid.", "Choose one of the grid's {batch, resolution} points.")
    if params["weights"] is not None and not Path(params["weights"]).is_dir():
        raise UserError(f"weights {params['weights']!r} is not a directory.",
                        "Point `weights` at a local directory with unet/, vqvae/ and bert/ "
                        "(the diffusers layout of the LDM); nothing is ever downloaded.")
    if params["prompts"] is not None and not (params["tokenizer"] or params["weights"]):
        raise UserError("prompts need a tokenizer to turn text into tokens.",
                        "Set `tokenizer` (tokenizer.json or a directory) or `weights` (its "
                        "tokenizer/ folder is used).")


@register
class LdmWorkload(Workload):
    name = "ldm"
    description = ("latent diffusion text-to-image (LDM-KL-8-G, 1,537,948,389 parameters: "
                   "LDMBert + UNet + KL-f8 VAE), fixed DDIM steps; batch x resolution grid")
    group = "llm"
    modes = ("infer",)
    item_unit = "images"
    varies_inputs = True  # its own measure() cycles input_variants copies
    default_precision = "fp16"
    configs = {
        "small": {"architecture": "reduced", "batch_sizes": [1, 2], "resolutions": [16, 32],
                  "steps": 2, "guidance_scale": 6.0,
                  "reference_point": {"batch": 1, "resolution": 16}, **_COMMON},
        "full": {"architecture": "published", "batch_sizes": [1, 2],
                 "resolutions": [512, 640, 768], "steps": 50, "guidance_scale": 6.0,
                 "reference_point": {"batch": 1, "resolution": 512}, **_COMMON},
    }

    @classmethod
    def validate_params(cls, params: Params) -> None:
        validate_ldm_params(params)

    def setup(self) -> None:
        import torch

        from bench.devices.base import PRECISION_DTYPES

        validate_ldm_params(self.params)
        backend = self.ctx.backend
        requested = self.ctx.precision
        if requested not in PRECISIONS:
            raise Unsupported(f"precision {requested} is not implemented for text-to-image")
        if not backend.supports_precision(requested):
            fallback = next((p for p in ("bf16", "fp16", "fp32")
                             if backend.supports_precision(p)), None)
            if fallback is None:
                raise Unsupported(f"the device supports none of {', '.join(PRECISIONS)}")
            self.precision_used = fallback
            self.precision_reason = (f"the device does not support {requested}: fell back to "
                                     f"{fallback}")
        self.dtype = PRECISION_DTYPES[self.precision_used]
        self.extra["tf32"] = backend.set_tf32(self.precision_used == "tf32")
        scale = self.params["architecture"]
        torch.manual_seed(self.ctx.seed)
        backend.synchronize()
        t0 = time.monotonic()
        self.pipe = diffusion.build_pipeline(scale, self.params["weights"], self.dtype,
                                             self.ctx.device)
        backend.synchronize()
        self.model_load_s = time.monotonic() - t0
        counts = self.pipe.parameter_counts()
        self.extra.update({
            "parameters": counts["total"], "parameters_by_model": counts,
            "reference_parameters": diffusion.PUBLISHED_PARAMETERS,
            "architecture": scale,
            "load_source": (f"local weights {self.params['weights']}" if self.params["weights"]
                            else "random initialisation on the device"),
            "scheduler": "DDIM", "steps": self.params["steps"],
            "guidance_scale": self.params["guidance_scale"],
            "reference_point": self.params["reference_point"],
        })
        self.prompt_rows = self.make_prompts()

    @classmethod
    def work_probe(cls, mode: str, params: Params, precision: str,
                   info: Info) -> WorkProbe:
        """The reference point's generation, per image: the text encoder (twice with
        guidance), the denoiser once per step (on the doubled batch with guidance) and the
        VAE decoder, as ``diffusion.generate_images`` runs them."""
        import torch

        pipe = diffusion.build_pipeline(params["architecture"], params["weights"],
                                        torch.float32, "meta", load_weights=False)
        point = info.get("reference_point_used") or params["reference_point"]
        batch, resolution = point["batch"], point["resolution"]
        guided = float(params["guidance_scale"]) != 1.0
        ids = torch.zeros(batch, diffusion.TEXT_TOKENS, dtype=torch.long)
        side = resolution // 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        latents = torch.empty(batch * (2 if guided else 1), pipe.unet.config.in_channels,
                              side, side)
        context = torch.empty(latents.shape[0], diffusion.TEXT_TOKENS,
                              pipe.text_encoder.config.hidden_size)
        t = torch.tensor(1)

        def encode_and_decode() -> None:
            for _ in range(2 if guided else 1):
                pipe.text_encoder(ids)
            pipe.vae.decode(latents[:batch])

        return WorkProbe(encode_and_decode, batch, backward=False,
                         repeated=((lambda: pipe.unet(latents, t,
                                                      encoder_hidden_states=context).sample,
                                    params["steps"]),),
                         what=f"text encoder, {params['steps']} denoiser steps and VAE decoder "
                              f"at the reference point {point}",
                         parameters=pipe.parameter_counts()["total"])

    def make_prompts(self) -> list[list[int]]:
        """Token ids, ``TEXT_TOKENS`` long, one row per image of the largest batch."""
        rows = max(self.params["batch_sizes"])
        vocab = self.pipe.text_encoder.config.vocab_size
        pad = self.pipe.text_encoder.config.pad_token_id or 0
        if self.params["prompts"] is None:
            return prompts.synthetic_prompt_ids(rows, diffusion.TEXT_TOKENS, vocab,
                                                self.ctx.seed)
        path = Path(self.params["prompts"])
        try:
            lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
                     if ln.strip()]
        except OSError as exc:
            raise UserError(f"Prompts file {path} cannot be read: {exc}.",
                            "Give a text file with one prompt per line.") from exc
        if not lines:
            raise UserError(f"Prompts file {path} holds no prompt.",
                            "Give a text file with one prompt per line.")
        tok_path = self.params["tokenizer"] or str(Path(self.params["weights"]) / "tokenizer")
        tokenizer = prompts.load_tokenizer(tok_path)
        out = []
        for i in range(rows):
            ids = list(tokenizer.encode(lines[i % len(lines)]))[:diffusion.TEXT_TOKENS]
            out.append(ids + [pad] * (diffusion.TEXT_TOKENS - len(ids)))
        prompts.check_vocab(out, vocab, f"tokenizer {tok_path}")
        self.extra["prompts"] = {"source": str(path), "count": len(lines)}
        return out

    def function_probe(self) -> ModelProbe:
        """One denoising step and one decode at the reference point: the text encoder's
        output, the UNet's noise prediction and the VAE's image, against the CPU reference."""
        import torch
        from torch import nn

        res = self.params["reference_point"]["resolution"]
        device = self.ctx.device
        dtype = next(self.pipe.unet.parameters()).dtype
        factor = 2 ** (len(self.pipe.vae.config.block_out_channels) - 1)
        gen = torch.Generator(device="cpu").manual_seed(self.ctx.seed)
        latents = torch.randn((1, self.pipe.unet.config.in_channels, res // factor,
                               res // factor), generator=gen).to(device, dtype)
        ids = torch.tensor(self.prompt_rows[:1], dtype=torch.long, device=device)
        t = torch.tensor(self.pipe.scheduler.config.num_train_timesteps // 2, device=device)
        scaling = self.pipe.vae.config.scaling_factor
        module = nn.ModuleDict({"text_encoder": self.pipe.text_encoder,
                                "unet": self.pipe.unet, "vae": self.pipe.vae})

        def forward(m: Any, x: dict[str, Any]) -> dict[str, Any]:
            context = m["text_encoder"](x["prompt_ids"])[0]
            noise = m["unet"](x["latents"], x["timestep"],
                              encoder_hidden_states=context).sample
            image = m["vae"].decode(x["latents"] / scaling).sample
            return {"text_embeddings": context, "noise_pred": noise, "image": image}

        return ModelProbe(module, {"prompt_ids": ids, "latents": latents, "timestep": t},
                          forward=forward,
                          notes=["one UNet step at the middle timestep and one VAE decode "
                                 "of the same latents"])

    def run_grid_point(self, point: dict[str, int]) -> PointResult:
        import torch

        b, res = point["batch"], point["resolution"]
        device = self.ctx.device
        ids = torch.tensor(self.prompt_rows[:b], dtype=torch.long, device=device)
        uncond = torch.zeros_like(ids)
        prompt_batches = itertools.cycle(self.make_input_variants(ids))
        gen = torch.Generator(device="cpu").manual_seed(self.ctx.seed)
        steps, scale = self.params["steps"], float(self.params["guidance_scale"])
        timings: list[diffusion.ImageTiming] = []

        def step() -> int:
            _, timing = diffusion.generate_images(self.pipe, next(prompt_batches), uncond, res,
                                                  steps, scale, gen,
                                                  self.ctx.backend.synchronize)
            timings.append(timing)
            return b

        def metrics(loop: RepeatResult) -> Metrics:
            return image_metrics(timings[-loop["iterations"]:], b, steps,
                                 loop["window"]["duration_s"])

        return run_point(self.ctx, point, step, metrics, item_unit=self.item_unit)

    def compile_model(self) -> list[str]:
        """The denoiser: it runs once per step and holds nearly all the arithmetic."""
        import torch

        name = type(self.pipe.unet).__name__
        self.pipe.unet = torch.compile(self.pipe.unet)
        return [name]

    def measure(self) -> RepeatResult:
        grid = image_grid(self.params)
        self.record_input_variants(["prompt_ids"])
        results = []
        for i, point in enumerate(grid):
            progress_note(self.ctx.progress, i, len(grid), point)
            results.append(self.run_grid_point(point))
            self.ctx.save_points([r.as_point() for r in results])
        ref, note = pick_reference(results, self.params["reference_point"])
        if ref is None or ref.loop is None:
            raise MemoryError("no grid point ran: " + "; ".join(
                f"{r.params}: {(r.error or {}).get('message', r.status)}" for r in results))
        self.extra["reference_point_used"] = ref.params
        if note:
            self.extra["reference_point_note"] = note
        metrics = {"model_load_s": {"value": self.model_load_s, "unit": "s"}}
        return {**ref.loop, "metrics": metrics, "headline": dict(ref.params),
                "points": [r.as_point() for r in results]}
