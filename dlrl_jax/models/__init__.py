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
    "to_hf_dict", "unembed", "from_pretrained", "save_pretrained",
]


# DESIGN.md's contract: `dlrl_jax.models.from_pretrained` / `save_pretrained`. The Hugging Face IO lives in
# dlrl_jax.checkpoints, which builds on this package, so these import it on call, not at load time.
def from_pretrained(path, dtype=None, **kwargs):
    """The model of a Hugging Face folder (config.json + safetensors): `dlrl_jax.checkpoints.from_pretrained`."""
    from dlrl_jax.checkpoints import from_pretrained as load
    return load(path, dtype=dtype, **kwargs)


def save_pretrained(model, path, **kwargs):
    """Writes `model` as a Hugging Face folder: `dlrl_jax.checkpoints.save_pretrained`."""
    from dlrl_jax.checkpoints import save_pretrained as save
    return save(model, path, **kwargs)
