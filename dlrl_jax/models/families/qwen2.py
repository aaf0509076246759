"""Qwen2 (a Qwen2 config.json run bidirectionally): Llama's layout with q/k/v biases by default."""

from __future__ import annotations

from dlrl_jax.models.families.base import Family
from dlrl_jax.models.families.llama import WEIGHTS, transformers_config_from_hf, transformers_config_to_hf

FAMILY = Family(
    name="qwen2", model_types=("qwen2",),
    config_from_hf=lambda raw, source: transformers_config_from_hf(raw, source, qkv_bias=True),
    config_to_hf=lambda cfg: transformers_config_to_hf(cfg, "qwen2", "Qwen2ForCausalLM"),
    weights=WEIGHTS)
