"""LoRA adapters on the stacked projections (the papers: rank 128, alpha 64 on q,k,v,o,gate,up,down).

The adapter factors are ordinary parameters named `lora_a_<weight>` / `lora_b_<weight>` inside the
stacked layers, so the model stays one pytree and every jitted path works unchanged. Training
updates only them (`trainable_mask`); the reference policy is the same parameters with the adapter
off (`adapter_off`: zero factors, sharing the base weights instead of copying them); `merge_lora` folds
the adapter into the base weights for export as plain Hugging Face safetensors.

LoRA dropout (PEFT's: on each adapted projection's input, a fresh mask per projection, layer and
forward) applies in the forwards that are given a dropout key: the training losses, whose update
items carry one. Rollouts, old/reference log-probs and evaluation run without it.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from dlrl_jax.models.config import LORA_TARGETS, ConfigError
from dlrl_jax.models.quantize import dequantize_base
from dlrl_jax.models.transformer import Transformer, init_lora_factors


@dataclasses.dataclass(frozen=True)
class LoRASettings:
    rank: int = 128
    alpha: float = 64.0
    targets: tuple[str, ...] = tuple(LORA_TARGETS)
    dropout: float = 0.0


def _is_lora(path) -> bool:
    return any(str(getattr(k, "key", getattr(k, "name", ""))).startswith("lora_") for k in path)


def trainable_mask(params):
    """A pytree of bools: True on LoRA factors, False on the base weights."""
    return jax.tree_util.tree_map_with_path(lambda path, _: _is_lora(path), params)


def has_lora(params) -> bool:
    return any(jax.tree.leaves(trainable_mask(params)))


def adapter_off(params):
    """The same parameters with zero adapter factors: the base model's function. The base arrays are
    shared, not copied; the factors are new arrays, so donating the trained ones never touches these."""
    return jax.tree_util.tree_map_with_path(lambda path, x: jnp.zeros_like(x) if _is_lora(path) else x, params)


def add_lora(model: Transformer, settings: LoRASettings, seed: int = 0) -> Transformer:
    """`model` with fresh adapters (A random, B zero): its function is unchanged until trained."""
    if settings.rank <= 0:
        raise ConfigError(f"LoRA rank must be positive, got {settings.rank}")
    if model.cfg.lora_rank:
        raise ConfigError("the model already has LoRA adapters; merge_lora first to add new ones")
    c = model.cfg
    widest = max(c.d_model, c.mlp_hidden, c.n_heads * (c.head_dim or c.d_model // c.n_heads))
    if settings.rank > widest:  # (a huge rank would only allocate factors until memory runs out, with a traceback)
        raise ConfigError(f"model.lora_rank {settings.rank} exceeds every dimension of the adapted projections (the "
                          f"widest is {widest}), so A B cannot use it; set model.lora_rank <= {widest} (the papers: "
                          "128)")
    cfg = model.cfg.replace(lora_rank=settings.rank, lora_alpha=float(settings.alpha),
                            lora_targets=tuple(settings.targets), lora_dropout=float(settings.dropout))
    fresh = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(params=seed)))
    graphdef, state = nnx.split(fresh)
    values = nnx.to_pure_dict(nnx.state(model))
    values["layers"].update({name: param[...] for name, param in
                             init_lora_factors(cfg, nnx.Rngs(params=seed)).items()})
    nnx.replace_by_pure_dict(state, values)
    return nnx.merge(graphdef, state)


def merge_lora(model: Transformer) -> Transformer:
    """A plain model whose weights include the adapter: W + (alpha / rank) A B (in float32). A
    quantized base (QLoRA) is dequantized first: W is the quantized base the adapter trained on."""
    model = dequantize_base(model)
    cfg = model.cfg
    if not cfg.lora_rank:
        return model
    values = nnx.to_pure_dict(nnx.state(model))
    layers = values["layers"]
    for name in [n[len("lora_a_"):] for n in list(layers) if n.startswith("lora_a_")]:
        a, b = layers.pop(f"lora_a_{name}"), layers.pop(f"lora_b_{name}")
        w = layers[name]  # a: [layers, *in, r], b: [layers, r, *out]
        delta = jax.vmap(lambda a1, b1: jnp.tensordot(a1.astype(jnp.float32), b1.astype(jnp.float32), axes=1))(a, b)
        layers[name] = (w.astype(jnp.float32) + cfg.lora_scale * delta).astype(w.dtype)
    base_cfg = cfg.replace(lora_rank=0, lora_alpha=0.0, lora_targets=(), lora_dropout=0.0)
    graphdef, state = nnx.split(nnx.eval_shape(lambda: Transformer(base_cfg, rngs=nnx.Rngs(params=0))))
    nnx.replace_by_pure_dict(state, values)
    return nnx.merge(graphdef, state)
