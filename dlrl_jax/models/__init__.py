"""Bidirectional masked-diffusion transformers (LLaDA, Dream, Llama/Qwen2 ports).

`model(input_ids [B, L] int32, attention_mask [B, L] bool | None)` -> float32 logits [B, L, V] where
position j predicts token j. What differs between model families is one record per family
(`dlrl_jax.models.families`); Hugging Face folders of any of them are read and written here
(`from_pretrained`, `save_pretrained`: dlrl_jax/models/hf.py). PEFT adapters and Orbax training
checkpoints are `dlrl_jax.checkpoints`, which builds on this package.
"""

from dlrl_jax.models import families
from dlrl_jax.models.config import PRESETS, ConfigError, ModelConfig, from_hf_dict, preset, to_hf_dict
from dlrl_jax.models.hf import from_pretrained, read_config, save_pretrained
from dlrl_jax.models.pure import (abstract_model, batch_dropout_key, forward, hidden, hidden_and_cache,
                                  hidden_window, init_model, param_count, split, unembed)
from dlrl_jax.models.transformer import Transformer

__all__ = [
    "ConfigError", "ModelConfig", "PRESETS", "Transformer", "abstract_model", "batch_dropout_key", "families",
    "forward", "from_hf_dict", "hidden", "hidden_and_cache", "hidden_window", "init_model", "param_count", "preset",
    "read_config", "split", "to_hf_dict", "unembed", "from_pretrained", "save_pretrained",
]
