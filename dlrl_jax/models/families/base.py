"""The record of a model family: everything that differs between LLaDA, Dream, Llama and Qwen2 (and the
next family) in one frozen value, so the code that loads, names, tokenizes and samples reads it instead
of comparing family names. The registry of the families is `dlrl_jax.models.families`."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Mapping

from dlrl_jax.models.errors import ConfigError

if TYPE_CHECKING:
    from dlrl_jax.models.config import ModelConfig

SAMPLERS = ("blocks", "dream")  # the schedules of dlrl_jax.rollout (settings.SCHEDULES)


@dataclasses.dataclass(frozen=True)
class WeightLayout:
    """Where each of our parameters lives in the family's Hugging Face safetensors.

    `layer` maps our per-layer parameter (dlrl_jax.models.layer_params) to its name after
    `layer_prefix.format(i=layer)`. PEFT names an adapter after the module it sits on, the weight's
    name without `.weight`, so this is also the family's PEFT module layout (checkpoints/peft.py).
    """

    embed: str
    final_norm: str
    lm_head: str
    layer_prefix: str  # with {i}, the layer index
    layer: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Family:
    """One model family.

    name: ModelConfig.family.
    model_types: the config.json `model_type` values (lower-cased) that are this family.
    config_from_hf(raw config.json dict, source file for messages) -> the ModelConfig fields other
      than `family`; config_to_hf(ModelConfig) -> the config.json that config_from_hf reads back.
    weights: the safetensors names (and PEFT module paths) of each parameter.
    shift_logits: the layer variant of Dream, an AR heritage: the state of position j-1 predicts token j
      (the transformer shifts, so position j predicts j for every family).
    mask_tokens: the tokenizer's mask token(s), found by text when config.json has no mask_token_id.
    remote_tokenizers: tokenizer classes published only as remote code -> the transformers class that
      reads the same files to the same ids (and chat template) without running that code.
    sampler: the schedule the family's models were published with, which `sampler.schedule auto`
      picks when no block_length is given: "blocks" (LLaDA's) or "dream" (Dream's diffusion_generate);
      with "dream" a paper protocol's evaluation also uses its Dream remasking.
    """

    name: str
    model_types: tuple[str, ...]
    config_from_hf: Callable[[dict[str, Any], str], dict[str, Any]]
    config_to_hf: Callable[["ModelConfig"], dict[str, Any]]
    weights: WeightLayout
    shift_logits: bool = False
    mask_tokens: tuple[str, ...] = ()
    remote_tokenizers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    sampler: str = "blocks"

    def __post_init__(self):
        if not self.name or not self.model_types:
            raise ConfigError(f"model family {self.name!r}: a family needs a name and at least one model_type")
        if any(t != t.lower() for t in self.model_types):
            raise ConfigError(f"model family {self.name!r}: model_types {self.model_types} must be lower case "
                              "(config.json's model_type is compared lower-cased)")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"model family {self.name!r}: sampler {self.sampler!r} is not one of {SAMPLERS}")


# Helpers of the config mappings: the fields every family's config.json spells alike.

def require(raw: dict, key: str, source: str):
    if key not in raw:
        raise ConfigError(f"{source}: field {key!r} is missing from config.json")
    return raw[key]


def first_id(value):
    """eos_token_id may be a list (generation configs of chat models): the first is the model's."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def special_ids_from_hf(raw: dict) -> dict[str, Any]:
    return dict(mask_token_id=raw.get("mask_token_id"), eos_token_id=first_id(raw.get("eos_token_id")),
                pad_token_id=raw.get("pad_token_id"))


def special_ids_to_hf(cfg: "ModelConfig") -> dict[str, int]:
    """The set ones only (a config.json without an id reads back as None)."""
    return {k: v for k, v in dict(mask_token_id=cfg.mask_token_id, eos_token_id=cfg.eos_token_id,
                                  pad_token_id=cfg.pad_token_id).items() if v is not None}
