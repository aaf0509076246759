"""Bidirectional masked-diffusion transformers (LLaDA, Dream, Llama/Qwen2 ports).

`model(input_ids [B, L] int32, attention_mask [B, L] bool | None)` -> float32 logits [B, L, V] where
position j predicts token j. Reading and writing Hugging Face folders and PEFT adapters is
`dlrl_jax.checkpoints` (`from_pretrained`, `save_pretrained`, `load_adapter`, `save_adapter`), which
builds on this package.
"""

from dlrl_jax.models.config import PRESETS, ConfigError, ModelConfig, from_hf_dict, preset, to_hf_dict
from dlrl_jax.models.pure import (abstract_model, batch_dropout_key, forward, hidden, hidden_and_cache,
                                  hidden_window, init_model, param_count, split, unembed)
from dlrl_jax.models.transformer import Transformer

__all__ = [
    "ConfigError", "ModelConfig", "PRESETS", "Transformer", "abstract_model", "batch_dropout_key", "forward",
    "from_hf_dict", "hidden", "hidden_and_cache", "hidden_window", "init_model", "param_count", "preset", "split",
    "to_hf_dict", "unembed",
]
