"""The published decoder configurations, written down as data (never fetched from a hub).

Each entry holds the keyword arguments of the transformers configuration class with the values
of the model's public ``config.json``, and a reduced variant (same code and architecture
features, a few layers and a small vocabulary) that runs on a CPU in seconds.
``decoder_parameter_count`` derives the parameter count from a configuration without building
the model, for the memory estimate; the tests check it against the model on the meta device.

GLM-4-9B: the public GLM-4-9B configuration (``THUDM/glm-4-9b-hf``, ``GlmForCausalLM``, two
key/value groups) has 9,399,951,360 parameters and is what we build. The published evaluation
reports 9,483,857,920: exactly the same architecture with four key/value groups
(``multi_query_group_num: 4``, as in GLM-4-9B-Chat-1M's configuration): 40 layers x 2 extra
KV heads x (2 x 4096 x 128 weights + 2 x 128 biases) = 83,906,560 more.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

SCALES = ("published", "reduced")

# Token ids of the reduced variants: the small vocabulary must contain them.
_REDUCED_TOKENS = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}


@dataclass(frozen=True)
class Architecture:
    """One model family's published configuration and its reduced variant."""

    workload: str
    model_type: str  # config.model_type of the weights this workload accepts
    config_class: str  # transformers class names (resolved lazily)
    model_class: str
    source: str  # where the published values come from
    published: dict[str, Any]
    reduced: dict[str, Any] = field(default_factory=dict)
    reference_parameters: int = 0  # the count docs/workloads.md requires
    note: str | None = None

    def config_kwargs(self, scale: str) -> dict[str, Any]:
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        return dict(self.published) if scale == "published" else {**self.published,
                                                                   **self.reduced}

    def build_config(self, scale: str) -> Any:
        """The transformers configuration object (imports transformers)."""
        transformers = importlib.import_module("transformers")
        return getattr(transformers, self.config_class)(**self.config_kwargs(scale))

    def model_type_class(self) -> Any:
        transformers = importlib.import_module("transformers")
        return getattr(transformers, self.model_class)


ARCHITECTURES: dict[str, Architecture] = {
    "qwen2-0.5b": Architecture(
        workload="qwen2-0.5b", model_type="qwen2", config_class="Qwen2Config",
        model_class="Qwen2ForCausalLM", source="Qwen/Qwen2-0.5B config.json",
        published={
            "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
            "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
            "hidden_act": "silu", "max_position_embeddings": 131072, "rope_theta": 1000000.0,
            "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "use_sliding_window": False,
            "sliding_window": 131072, "max_window_layers": 24, "bos_token_id": 151643,
            "eos_token_id": 151643,
        },
        reduced={"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128,
                 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                 "max_position_embeddings": 4096, "sliding_window": 4096,
                 "max_window_layers": 2, **_REDUCED_TOKENS},
        reference_parameters=494_032_768,
    ),
    "llama3-8b": Architecture(
        workload="llama3-8b", model_type="llama", config_class="LlamaConfig",
        model_class="LlamaForCausalLM", source="meta-llama/Meta-Llama-3-8B config.json",
        published={
            "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
            "hidden_act": "silu", "max_position_embeddings": 8192, "rope_theta": 500000.0,
            "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "attention_bias": False,
            "mlp_bias": False, "bos_token_id": 128000, "eos_token_id": 128001,
        },
        reduced={"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128,
                 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                 "max_position_embeddings": 4096, **_REDUCED_TOKENS},
        reference_parameters=8_030_261_248,
    ),
    "glm4-9b": Architecture(
        workload="glm4-9b", model_type="glm", config_class="GlmConfig",
        model_class="GlmForCausalLM", source="THUDM/glm-4-9b-hf config.json",
        published={
            "vocab_size": 151552, "hidden_size": 4096, "intermediate_size": 13696,
            "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 2,
            "head_dim": 128, "partial_rotary_factor": 0.5, "hidden_act": "silu",
            "max_position_embeddings": 131072, "rope_theta": 10000.0,
            "rms_norm_eps": 1.5625e-07, "attention_bias": True, "tie_word_embeddings": False,
            "pad_token_id": 151329, "eos_token_id": [151329, 151336, 151338],
        },
        reduced={"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128,
                 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                 "head_dim": 16, "max_position_embeddings": 4096, **_REDUCED_TOKENS},
        reference_parameters=9_399_951_360,
        note="the published evaluation reports 9,483,857,920 parameters: the same architecture "
             "with 4 key/value groups (GLM-4-9B-Chat-1M); we build the public GLM-4-9B "
             "configuration (2 groups), 9,399,951,360 parameters",
    ),
}


@dataclass(frozen=True)
class DecoderShape:
    """What the parameter count and the memory estimate need from a decoder configuration."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool
    qkv_bias: bool
    o_bias: bool = False
    mlp_bias: bool = False

    @classmethod
    def from_config(cls, config: Any) -> DecoderShape:
        """From a transformers configuration of the llama / qwen2 / glm families."""
        heads = int(config.num_attention_heads)
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        model_type = getattr(config, "model_type", "")
        attention_bias = bool(getattr(config, "attention_bias", False))
        qkv_bias = True if model_type == "qwen2" else attention_bias
        o_bias = attention_bias if model_type == "llama" else False
        return cls(
            layers=int(config.num_hidden_layers), hidden=int(config.hidden_size),
            intermediate=int(config.intermediate_size), heads=heads,
            kv_heads=int(getattr(config, "num_key_value_heads", None) or heads),
            head_dim=int(head_dim), vocab=int(config.vocab_size),
            tied_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
            qkv_bias=qkv_bias, o_bias=o_bias,
            mlp_bias=bool(getattr(config, "mlp_bias", False)) if model_type == "llama"
            else False)


def decoder_parameter_count(s: DecoderShape) -> int:
    """Parameters of a pre-norm decoder with grouped-query attention and a gated MLP.

    Per layer: q (hidden x heads*head_dim), k and v (hidden x kv_heads*head_dim each), o
    (heads*head_dim x hidden), gate/up/down (3 x hidden x intermediate), two RMSNorm weights;
    plus the embedding, the final norm and the LM head unless it shares the embedding.
    """
    q_dim, kv_dim = s.heads * s.head_dim, s.kv_heads * s.head_dim
    attention = s.hidden * q_dim + 2 * s.hidden * kv_dim + q_dim * s.hidden
    if s.qkv_bias:
        attention += q_dim + 2 * kv_dim
    if s.o_bias:
        attention += s.hidden
    mlp = 3 * s.hidden * s.intermediate + (2 * s.intermediate + s.hidden if s.mlp_bias else 0)
    per_layer = attention + mlp + 2 * s.hidden
    embedding = s.vocab * s.hidden
    head = 0 if s.tied_embeddings else s.vocab * s.hidden
    return s.layers * per_layer + embedding + head + s.hidden


def dtype_kwargs(dtype: Any) -> dict[str, Any]:
    """The ``from_pretrained`` / ``from_config`` argument that sets the weights' dtype:
    transformers 5 names it ``dtype``; 4.x (older vendor images) ``torch_dtype``."""
    transformers = importlib.import_module("transformers")
    return {"dtype": dtype} if int(transformers.__version__.split(".")[0]) >= 5 \
        else {"torch_dtype": dtype}
