"""The models of the training workloads, as configurations (never fetched from a hub), and how
they are built, initialised and counted.

| model | architecture | parameters |
|---|---|---|
| ``llama3-8b`` | ``LlamaForCausalLM``, Meta-Llama-3-8B (as for inference) | 8,030,261,248 |
| ``internlm-7b`` | ``LlamaForCausalLM``, InternLM-7B's shape, biases on q/k/v/o | 7,321,948,160 |
| ``gpt3-1.3b`` | ``GPT2LMHeadModel``, GPT-3 XL: 24 x 2048, 16 heads, context 2048 | 1,315,723,264 |
| ``bert-base`` | ``BertForPreTraining``, bert-base-uncased (MLM + next sentence) | 110,106,428 |

**Initialisation** is the workload's own and deterministic: every parameter is drawn on the
host CPU from a generator seeded by (seed, parameter name), by the rule of its module
(transformers' rules: normal(0, initializer_range) for weight matrices and embeddings,
GPT-2's residual projections scaled by 1/sqrt(2 x layers), zero biases, unit norm weights,
zeroed padding rows; LoRA: A Kaiming-uniform as ``nn.Linear``, B zero). So the initial
weights are the same on every device and every world size (a sharded parameter gets its
shard of the same full tensor), and loss curves can be compared step by step. Models are
built on the ``meta`` device and materialised where they run (``to_empty``): an 8B model is
never built whole in host memory; non-persistent buffers (rotary frequencies, position ids)
are recomputed by transformers' own initialiser.
"""

from __future__ import annotations

import importlib
import math
import zlib
from dataclasses import dataclass
from typing import Any

from bench.llm.architectures import ARCHITECTURES, Architecture

_REDUCED = {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 4096, "bos_token_id": 1, "eos_token_id": 2,
            "pad_token_id": 0}


@dataclass(frozen=True)
class TrainModel:
    """A model of the training workloads: its architecture and how its objective reads data."""

    arch: Architecture
    objective: str  # "causal" (next token) or "bert" (masked LM + next sentence)
    layers_path: str  # attribute path of the transformer blocks (sharding, checkpointing)
    scaled_init: tuple[str, ...] = ()  # weight names scaled by 1/sqrt(2 layers) (GPT-2)

    @property
    def name(self) -> str:
        return self.arch.workload

    def config(self, scale: str) -> Any:
        return self.arch.build_config(scale)

    def build_meta(self, config: Any) -> Any:
        """The model on the meta device: shapes without memory."""
        import torch

        cls = getattr(importlib.import_module("transformers"), self.arch.model_class)
        with torch.device("meta"):
            return cls(config)

    def blocks(self, model: Any) -> Any:
        obj = model
        for part in self.layers_path.split("."):
            obj = getattr(obj, part)
        return obj


TRAIN_MODELS: dict[str, TrainModel] = {
    "llama3-8b": TrainModel(ARCHITECTURES["llama3-8b"], "causal", "model.layers"),
    "internlm-7b": TrainModel(
        Architecture(
            workload="internlm-7b", model_type="llama", config_class="LlamaConfig",
            model_class="LlamaForCausalLM",
            source="InternLM-7B's shape (internlm/internlm-7b config.json) in the Llama "
                   "architecture with attention biases",
            published={
                "vocab_size": 103168, "hidden_size": 4096, "intermediate_size": 11008,
                "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
                "hidden_act": "silu", "max_position_embeddings": 2048, "rope_theta": 10000.0,
                "rms_norm_eps": 1e-6, "tie_word_embeddings": False, "attention_bias": True,
                "mlp_bias": False, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
            },
            reduced={**_REDUCED, "num_key_value_heads": 4},
            reference_parameters=7_321_948_160,
            note="InternLM-7B has biases on q, k, v and o; LlamaConfig(attention_bias=True) "
                 "puts them on all four, so this is its architecture: 7,321,948,160 "
                 "parameters (32 x 4 x 4096 bias terms = 524,288 more than without biases)"),
        "causal", "model.layers"),
    "gpt3-1.3b": TrainModel(
        Architecture(
            workload="gpt3-1.3b", model_type="gpt2", config_class="GPT2Config",
            model_class="GPT2LMHeadModel",
            source="GPT-3 XL (Brown et al. 2020, table 2.1) in the GPT-2 architecture",
            published={
                "vocab_size": 50257, "n_positions": 2048, "n_embd": 2048, "n_layer": 24,
                "n_head": 16, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
                "initializer_range": 0.02, "tie_word_embeddings": True,
                "bos_token_id": 50256, "eos_token_id": 50256,
            },
            reduced={"vocab_size": 512, "n_positions": 4096, "n_embd": 64, "n_layer": 2,
                     "n_head": 4, "bos_token_id": 2, "eos_token_id": 2},
            reference_parameters=1_315_723_264,
            note="GPT-3 XL's dense attention (the paper alternates dense and sparse layers; "
                 "GPT-2's architecture has dense attention only); tied input and output "
                 "embeddings"),
        "causal", "transformer.h", scaled_init=("attn.c_proj.weight", "mlp.c_proj.weight")),
    "bert-base": TrainModel(
        Architecture(
            workload="bert-base", model_type="bert", config_class="BertConfig",
            model_class="BertForPreTraining", source="google-bert/bert-base-uncased config.json",
            published={
                "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
                "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
                "max_position_embeddings": 512, "type_vocab_size": 2,
                "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
            },
            reduced={"vocab_size": 2048, "hidden_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "intermediate_size": 128,
                     "max_position_embeddings": 512},
            reference_parameters=110_106_428),
        "bert", "bert.encoder.layer"),
}

# Which models the fine-tuning workload takes: Llama-architecture decoders.
FINETUNE_MODELS = ("llama3-8b", "internlm-7b")


@dataclass(frozen=True)
class ModelShape:
    """What the FLOP count and the memory estimate need from a built model."""

    parameters: int
    trainable: int
    matmul_params: int  # weights of every matrix product (Linear, GPT-2's Conv1D, tied head)
    frozen_matmul_params: int
    layers: int
    hidden: int
    attention_width: int  # heads x head dim
    vocab: int


def model_shape(model: Any, config: Any) -> ModelShape:
    """Counts of a (meta or real) model: matrix-product weights by walking its modules, so
    LoRA adapters and a tied output head are counted as the products they are."""
    import torch
    from transformers.pytorch_utils import Conv1D

    matmul = frozen = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear | Conv1D):
            n = module.weight.numel()
            matmul += n
            if not module.weight.requires_grad:
                frozen += n
    seen: set[int] = set()
    params = trainable = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        params += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    hidden = int(getattr(config, "hidden_size", None) or config.n_embd)
    heads = int(getattr(config, "num_attention_heads", None) or config.n_head)
    head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
    layers = int(getattr(config, "num_hidden_layers", None) or config.n_layer)
    return ModelShape(parameters=params, trainable=trainable, matmul_params=matmul,
                      frozen_matmul_params=frozen, layers=layers, hidden=hidden,
                      attention_width=heads * head_dim, vocab=int(config.vocab_size))


# -- deterministic initialisation ---------------------------------------------------------------
def param_seed(seed: int, name: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**63 - 1)


def init_rule(module: Any, local_name: str, full_name: str, config: Any,
              model: TrainModel) -> tuple[str, float]:
    """(rule, std) of one parameter: ``normal``, ``zeros``, ``ones`` or ``kaiming``."""
    import torch
    from transformers.pytorch_utils import Conv1D

    std = float(getattr(config, "initializer_range", 0.02) or 0.02)
    cls = type(module).__name__
    if "lora_B" in full_name:
        return "zeros", 0.0
    if "lora_A" in full_name:
        return "kaiming", 0.0
    if "Norm" in cls or "LayerNorm" in cls:
        return ("ones", 0.0) if local_name == "weight" else ("zeros", 0.0)
    if local_name == "bias":
        return "zeros", 0.0
    if isinstance(module, torch.nn.Embedding | torch.nn.Linear | Conv1D):
        if any(full_name.endswith(s) for s in model.scaled_init):
            layers = int(getattr(config, "n_layer", None) or config.num_hidden_layers)
            return "normal", std / math.sqrt(2 * layers)
        return "normal", std
    raise ValueError(f"no initialisation rule for parameter {full_name} of {cls}")


def full_init_tensor(shape: tuple[int, ...], rule: str, std: float, seed: int,
                     padding_idx: int | None = None) -> Any:
    """The parameter's full value on the host, from its own seeded generator (float32)."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(seed)
    if rule == "zeros":
        return torch.zeros(shape)
    if rule == "ones":
        return torch.ones(shape)
    if rule == "kaiming":
        t = torch.empty(shape)
        fan_in = shape[1] if len(shape) > 1 else shape[0]
        bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) as nn.Linear
        return t.uniform_(-bound, bound, generator=gen)
    t = torch.empty(shape).normal_(0.0, std, generator=gen)
    if padding_idx is not None:
        t[padding_idx] = 0
    return t


def initialise(model: Any, config: Any, spec: TrainModel, seed: int,
               only_trainable: bool = False) -> int:
    """Give every parameter (or only the trainable ones) its deterministic initial value, in
    place, wherever it lives (a device, or its shard of a DTensor). Returns how many
    parameters were set."""
    import torch

    try:
        from torch.distributed.tensor import DTensor, distribute_tensor
    except ImportError:  # torch < 2.4: no FSDP2, so no sharded parameters either
        DTensor = distribute_tensor = None
    seen: set[int] = set()
    count = 0
    with torch.no_grad():
        for mod_name, module in model.named_modules():
            for local, param in module.named_parameters(recurse=False):
                if id(param) in seen or (only_trainable and not param.requires_grad):
                    continue
                seen.add(id(param))
                full_name = f"{mod_name}.{local}" if mod_name else local
                rule, std = init_rule(module, local, full_name, config, spec)
                pad = getattr(module, "padding_idx", None) if isinstance(
                    module, torch.nn.Embedding) else None
                full = full_init_tensor(tuple(param.shape), rule, std,
                                        param_seed(seed, _canonical(full_name)), pad)
                if DTensor is not None and isinstance(param, DTensor):
                    value = distribute_tensor(full.to(param.device_mesh.device_type),
                                              param.device_mesh, param.placements,
                                              src_data_rank=None)
                    param.copy_(value.to(param.dtype))
                else:
                    param.copy_(full.to(device=param.device, dtype=param.dtype))
                count += param.numel()
    return count


def _canonical(name: str) -> str:
    """The parameter's name without wrapper prefixes (peft's ``base_model.model.``,
    activation checkpointing's ``_checkpoint_wrapped_module.``), so the same weight gets the
    same seed however the model is wrapped."""
    for prefix in ("base_model.model.",):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name.replace("_checkpoint_wrapped_module.", "").replace(".base_layer.", ".")


def recompute_buffers(model: Any) -> None:
    """Recompute non-persistent buffers (rotary frequencies, position ids) after
    ``to_empty``: transformers' initialiser sets them for modules that own buffers but no
    parameters."""
    import torch
    from transformers import PreTrainedModel

    base = next(m for m in model.modules() if isinstance(m, PreTrainedModel))
    with torch.no_grad():
        for module in model.modules():
            if any(True for _ in module.buffers(recurse=False)) and not any(
                    True for _ in module.parameters(recurse=False)):
                base._init_weights(module)
