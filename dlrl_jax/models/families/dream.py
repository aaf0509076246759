"""Dream (Dream-org/Dream-v0-*-7B; DreamLM/Dream): the Qwen2.5 architecture and layout (q/k/v biases),
config.json model_type "Dream", with two differences the rest of the code reads from here: its logits
are shifted by one position (the state of position j-1 predicts token j), and its own sampler
(`diffusion_generate`, dlrl_jax/rollout/dream.py) is the one `sampler.schedule auto` picks."""

from __future__ import annotations

from dlrl_jax.models.families.base import Family
from dlrl_jax.models.families.llama import WEIGHTS, transformers_config_from_hf, transformers_config_to_hf

FAMILY = Family(
    name="dream", model_types=("dream",),
    config_from_hf=lambda raw, source: transformers_config_from_hf(raw, source, qkv_bias=True),
    config_to_hf=lambda cfg: transformers_config_to_hf(cfg, "Dream", "DreamModel"),
    weights=WEIGHTS, shift_logits=True, mask_tokens=("<|mask|>",),
    # DreamTokenizer is Qwen2's byte-level BPE (vocab.json + merges.txt + added_tokens.json):
    # transformers' Qwen2Tokenizer gives its ids and chat template without its remote code.
    remote_tokenizers={"DreamTokenizer": "Qwen2Tokenizer"}, sampler="dream")
