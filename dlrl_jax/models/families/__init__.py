"""The model families: one module each (llada, dream, llama, qwen2), each a `Family` record
(families/base.py) of its config.json mapping, weight names (HF and PEFT), tokenizer conventions,
sampler default and layer variant, and this registry of them.

Adding a family is one module and one line here (`register(<name>.FAMILY)`); from outside the package,
`register(Family(...))` at run time, `unregister(name)` to take it back (tests/models/test_families.py).
The HF loading (dlrl_jax/models/hf.py), ModelConfig, the tokenizer and the sampler's `auto` schedule
then take the new family from here; MODEL_FAMILIES.md outlines what a block-diffusion family would add.
"""

from __future__ import annotations

from typing import Any

from dlrl_jax.models.errors import ConfigError
from dlrl_jax.models.families import dream, llada, llama, qwen2
from dlrl_jax.models.families.base import Family, WeightLayout

FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Adds `family` under its name; a second family of the same name, or one claiming a config.json
    model_type another family reads, is an error."""
    if family.name in FAMILIES:
        raise ConfigError(f"model family {family.name!r} is registered twice; give the new family another name")
    claimed = {t: f.name for f in FAMILIES.values() for t in f.model_types}
    taken = [f"{t} ({claimed[t]})" for t in family.model_types if t in claimed]
    if taken:
        raise ConfigError(f"model family {family.name!r}: model_type {', '.join(taken)} is read by another family; "
                          "give the new family its own model_type")
    FAMILIES[family.name] = family
    return family


def unregister(name: str) -> Family:
    """Removes the family called `name` (one registered from outside, after its use)."""
    return FAMILIES.pop(get(name).name)


def names() -> tuple[str, ...]:
    """The registered family names, in registration order."""
    return tuple(FAMILIES)


def get(name: str) -> Family:
    """The family called `name` (ModelConfig.family); an unknown name is a ConfigError naming the known ones."""
    family = FAMILIES.get(name)
    if family is None:
        raise ConfigError(f"model family {name!r} is not supported; use one of {names()}")
    return family


def model_types() -> tuple[str, ...]:
    return tuple(t for f in FAMILIES.values() for t in f.model_types)


def family_of(raw: dict[str, Any], source: str = "config.json") -> Family:
    """The family of a Hugging Face config.json dict, by its model_type (compared lower-cased)."""
    model_type = raw.get("model_type")
    if model_type is None:
        raise ConfigError(f"{source}: field 'model_type' is missing; expected one of {model_types()}")
    for family in FAMILIES.values():
        if str(model_type).lower() in family.model_types:
            return family
    raise ConfigError(f"{source}: model_type {model_type!r} is not supported; expected one of {model_types()}")


def mask_tokens() -> tuple[str, ...]:
    """Every family's mask token text, in registration order (a tokenizer holds one of them)."""
    return tuple(t for f in FAMILIES.values() for t in f.mask_tokens)


def remote_tokenizers() -> dict[str, str]:
    """Remote-code tokenizer class -> the built-in class that reads its files, over every family."""
    return {k: v for f in FAMILIES.values() for k, v in f.remote_tokenizers.items()}


for _module in (llada, dream, llama, qwen2):
    register(_module.FAMILY)

__all__ = ["FAMILIES", "Family", "WeightLayout", "family_of", "get", "mask_tokens", "model_types", "names",
           "register", "remote_tokenizers", "unregister"]
