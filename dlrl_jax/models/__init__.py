"""Bidirectional masked-diffusion transformers (LLaDA, Dream, Llama/Qwen2 ports) and their IO.

`from_pretrained(path, dtype=...)` -> model; `model(input_ids [B, L] int32, attention_mask [B, L]
bool | None)` -> float32 logits [B, L, V] where position j predicts token j.
"""

from dlrl_jax.models.config import PRESETS, ConfigError, ModelConfig, from_hf_dict, preset, to_hf_dict
from dlrl_jax.models.pure import (abstract_model, batch_dropout_key, forward, hidden, hidden_and_cache,
                                  hidden_window, init_model, param_count, split, unembed)
from dlrl_jax.models.transformer import Transformer

__all__ = [
    "CheckpointError", "ConfigError", "ModelConfig", "PRESETS", "Transformer", "abstract_model",
    "batch_dropout_key", "forward", "from_hf_dict", "from_pretrained", "hidden", "hidden_and_cache",
    "hidden_window", "init_model", "load_adapter", "param_count", "preset",
    "save_adapter", "save_pretrained", "split", "to_hf_dict", "unembed",
]


def __getattr__(name):
    # The HF IO lives in dlrl_jax.checkpoints, which itself imports this package: resolve lazily.
    if name in ("CheckpointError", "from_pretrained", "save_pretrained"):
        from dlrl_jax.checkpoints import hf
        return getattr(hf, name)
    if name in ("load_adapter", "save_adapter"):  # PEFT LoRA adapter folders
        from dlrl_jax.checkpoints import peft
        return getattr(peft, name)
    raise AttributeError(f"module 'dlrl_jax.models' has no attribute {name!r}")
