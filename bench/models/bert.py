"""BERT configurations for extractive question answering, built locally (no hub download).

``BertForQuestionAnswering`` comes from transformers (a library that imports beside every
torch build we run on); only the configurations are ours, copied field by field from the
published config.json files, so the parameter counts are the published models':
bert-base-cased 107,721,218 and google/bert_uncased_L-2_H-128_A-2 (BERT-tiny) 4,369,666.
"""

from __future__ import annotations

from typing import Any

BERT_CONFIGS: dict[str, dict[str, Any]] = {
    "bert-base-cased": {
        "vocab_size": 28996, "hidden_size": 768, "num_hidden_layers": 12,
        "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "pad_token_id": 0,
    },
    "bert-tiny": {
        "vocab_size": 30522, "hidden_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 512, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "pad_token_id": 0,
    },
}
# Whether the configuration's vocabulary is lower-cased (for the fallback tokeniser).
LOWERCASE = {"bert-base-cased": False, "bert-tiny": True}


def bert_for_qa(config_name: str) -> Any:
    """A randomly initialised ``BertForQuestionAnswering`` of the named configuration."""
    from transformers import BertConfig, BertForQuestionAnswering

    return BertForQuestionAnswering(BertConfig(**BERT_CONFIGS[config_name]))
