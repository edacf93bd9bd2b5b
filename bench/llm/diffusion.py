"""The latent-diffusion text-to-image pipeline (docs/llm.md), built from its configuration.

The published evaluation's LDM has 1,537,948,389 parameters: exactly CompVis' LDM-KL-8-G
text-to-image model as diffusers packages it (``CompVis/ldm-text2im-large-256``):

    UNet2DConditionModel (320/640/1280/1280 channels, cross-attention to 1280)  872,300,484
    AutoencoderKL (KL-f8, 128/256/512/512 channels, 4 latent channels)             83,653,863
    LDMBertModel (32 layers, d_model 1280, 8 heads of 64, vocabulary 30522,
                  77 positions, with its to_logits head)                          581,994,042
                                                                                -------------
                                                                                1,537,948,389

We build those three models from the values below with ``diffusers`` (random weights unless
``weights`` points at a local directory in that layout: ``unet/``, ``vqvae/``, ``bert/``), and
run our own loop: text encoding, a fixed number of DDIM steps with classifier-free guidance,
VAE decoding. The timestamps between the stages are taken after a device sync.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.errors import Unsupported

PUBLISHED_PARAMETERS = 1_537_948_389
TEXT_TOKENS = 77  # LDMBert's max_position_embeddings: prompts are padded to it

UNET = {
    "published": {
        "sample_size": 32, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
        "block_out_channels": (320, 640, 1280, 1280), "cross_attention_dim": 1280,
        "attention_head_dim": 8, "norm_num_groups": 32,
        "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                             "CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                           "CrossAttnUpBlock2D"),
    },
    "reduced": {
        "sample_size": 8, "in_channels": 4, "out_channels": 4, "layers_per_block": 1,
        "block_out_channels": (32, 64), "cross_attention_dim": 32, "attention_head_dim": 4,
        "norm_num_groups": 8,
        "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    },
}
VAE = {
    "published": {
        "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
        "block_out_channels": (128, 256, 512, 512), "norm_num_groups": 32,
        "sample_size": 256, "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
    },
    "reduced": {
        "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 1,
        "block_out_channels": (8, 8, 16, 16), "norm_num_groups": 8, "sample_size": 64,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
    },
}
TEXT_ENCODER = {
    "published": {"vocab_size": 30522, "max_position_embeddings": TEXT_TOKENS,
                  "encoder_layers": 32, "encoder_ffn_dim": 5120, "encoder_attention_heads": 8,
                  "head_dim": 64, "d_model": 1280},
    "reduced": {"vocab_size": 512, "max_position_embeddings": TEXT_TOKENS, "encoder_layers": 2,
                "encoder_ffn_dim": 64, "encoder_attention_heads": 2, "head_dim": 16,
                "d_model": 32},
}
# The LDM's noise schedule (scaled linear, 1000 training steps), DDIM sampling.
SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
             "beta_schedule": "scaled_linear", "clip_sample": False, "set_alpha_to_one": False}


def diffusers_module() -> Any:
    """diffusers, or ``Unsupported`` in an image that lacks it (recorded, not a crash)."""
    try:
        return importlib.import_module("diffusers")
    except ImportError as exc:
        raise Unsupported(f"the ldm workload needs the diffusers package ({exc})") from exc


def ldm_bert_classes() -> tuple[Any, Any]:
    diffusers_module()
    mod = importlib.import_module(
        "diffusers.pipelines.latent_diffusion.pipeline_latent_diffusion")
    return mod.LDMBertConfig, mod.LDMBertModel


def spatial_factor(scale: str) -> int:
    """Image pixels per latent pixel times the UNet's downsampling: sizes must divide by it."""
    vae = 2 ** (len(VAE[scale]["block_out_channels"]) - 1)
    unet = 2 ** (len(UNET[scale]["block_out_channels"]) - 1)
    return vae * unet


@dataclass
class Pipeline:
    unet: Any
    vae: Any
    text_encoder: Any
    scheduler: Any

    def parameter_counts(self) -> dict[str, int]:
        def n(m: Any) -> int:
            return sum(p.numel() for p in m.parameters())

        counts = {"unet": n(self.unet), "vae": n(self.vae), "text_encoder": n(self.text_encoder)}
        counts["total"] = sum(counts.values())
        return counts


def build_pipeline(scale: str, weights: str | None, dtype: Any, device: Any,
                   load_weights: bool = True) -> Pipeline:
    """The three models on ``device`` in ``dtype``: from the configuration or local weights
    (``load_weights=False``: only the local configurations, e.g. on the meta device to count
    FLOPs without reading gigabytes)."""
    import torch

    diffusers = diffusers_module()
    # Its "modules to keep in float32: []" notice on every cast is noise in the result's log.
    diffusers.utils.logging.set_verbosity_error()
    bert_config_cls, bert_cls = ldm_bert_classes()
    scheduler = diffusers.DDIMScheduler(**SCHEDULER)
    common = {"local_files_only": True}
    if weights is not None:
        from bench.llm.prompts import offline

        offline()
    if weights is None:
        with torch.device(device):
            unet = diffusers.UNet2DConditionModel(**UNET[scale])
            vae = diffusers.AutoencoderKL(**VAE[scale])
            bert = bert_cls(bert_config_cls(**TEXT_ENCODER[scale]))
    elif not load_weights:
        with torch.device(device):
            unet = diffusers.UNet2DConditionModel.from_config(
                diffusers.UNet2DConditionModel.load_config(weights, subfolder="unet", **common))
            vae = diffusers.AutoencoderKL.from_config(
                diffusers.AutoencoderKL.load_config(weights, subfolder="vqvae", **common))
            bert = bert_cls(bert_config_cls.from_pretrained(weights, subfolder="bert", **common))
    else:
        unet = diffusers.UNet2DConditionModel.from_pretrained(weights, subfolder="unet",
                                                              **common)
        vae = diffusers.AutoencoderKL.from_pretrained(weights, subfolder="vqvae", **common)
        bert = bert_cls.from_pretrained(weights, subfolder="bert", **common)
    return Pipeline(unet=unet.to(device, dtype).eval(), vae=vae.to(device, dtype).eval(),
                    text_encoder=bert.to(device, dtype).eval(), scheduler=scheduler)


@dataclass
class ImageTiming:
    """Stage boundaries of one text-to-image generation (monotonic seconds)."""

    start_s: float
    encoded_s: float
    denoised_s: float
    end_s: float

    @property
    def latency_s(self) -> float:
        return self.end_s - self.start_s


def generate_images(pipe: Pipeline, prompt_ids: Any, uncond_ids: Any, resolution: int,
                    steps: int, guidance_scale: float, generator: Any,
                    synchronize: Callable[[], None],
                    clock: Callable[[], float] = time.monotonic) -> tuple[Any, ImageTiming]:
    """Text encoder, ``steps`` DDIM steps (classifier-free guidance when the scale is not 1),
    VAE decoder; returns the images and the stage timestamps."""
    import torch

    batch = prompt_ids.shape[0]
    dtype = next(pipe.unet.parameters()).dtype
    device = prompt_ids.device
    vae_factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    guided = guidance_scale != 1.0
    synchronize()
    start = clock()
    with torch.inference_mode():
        context = pipe.text_encoder(prompt_ids)[0]
        if guided:
            context = torch.cat([pipe.text_encoder(uncond_ids)[0], context])
        synchronize()
        encoded = clock()
        side = resolution // vae_factor
        latents = torch.randn((batch, pipe.unet.config.in_channels, side, side),
                              generator=generator, device="cpu").to(device, dtype)
        pipe.scheduler.set_timesteps(steps)
        for t in pipe.scheduler.timesteps:
            model_in = torch.cat([latents] * 2) if guided else latents
            noise = pipe.unet(model_in, t, encoder_hidden_states=context).sample
            if guided:
                uncond, cond = noise.chunk(2)
                noise = uncond + guidance_scale * (cond - uncond)
            latents = pipe.scheduler.step(noise, t, latents).prev_sample
        synchronize()
        denoised = clock()
        images = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
        synchronize()
    return images, ImageTiming(start, encoded, denoised, clock())
