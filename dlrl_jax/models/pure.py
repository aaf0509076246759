"""Pure-function use of the NNX model: split once outside jit, merge inside (as MaxText and tunix do)."""

from __future__ import annotations

import jax
from flax import nnx

from dlrl_jax.models.config import ModelConfig
from dlrl_jax.models.transformer import Transformer


def init_model(cfg: ModelConfig, seed: int = 0) -> Transformer:
    """A randomly initialised model (normal(0.02) weights, unit norms, zero biases)."""
    return Transformer(cfg, rngs=nnx.Rngs(params=seed))


def abstract_model(cfg: ModelConfig) -> Transformer:
    """The model with ShapeDtypeStruct leaves: shapes and parameter counts without any weights."""
    return nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(params=0)))


def split(model: Transformer):
    """(graphdef, params): the static structure and the pytree of parameters."""
    return nnx.split(model)


def forward(graphdef, params, input_ids, attention_mask=None):
    """Pure forward: float32 logits [B, L, V]; usable under jit, grad, vmap and scan."""
    return nnx.merge(graphdef, params)(input_ids, attention_mask)


def hidden(graphdef, params, input_ids, attention_mask=None, dropout_key=None, last: int | None = None):
    """Pure final hidden states [B, L, D] (compute dtype), for logits at chosen positions only.
    `dropout_key` turns on LoRA dropout (cfg.lora_dropout) for a training forward; `last` = n: the
    states of the last n positions only, [B, n, D], with the final layer computed for those alone."""
    return nnx.merge(graphdef, params).hidden(input_ids, attention_mask, dropout_key, last)


def batch_dropout_key(batch: dict):
    """The LoRA dropout key an update item carries (raw key data under "dropout_key"), or None."""
    return jax.random.wrap_key_data(batch["dropout_key"]) if "dropout_key" in batch else None


def hidden_and_cache(graphdef, params, input_ids, attention_mask=None):
    """Pure (unshifted final states [B, L, D], KV cache ([layers, B, L, K, Hd] keys, values))."""
    return nnx.merge(graphdef, params).hidden_and_cache(input_ids, attention_mask)


def hidden_window(graphdef, params, window_ids, attention_mask, cache, start):
    """Pure unshifted final states [B, W, D] of positions start..start+W-1 against a KV cache."""
    return nnx.merge(graphdef, params).hidden_window(window_ids, attention_mask, cache, start)


def unembed(graphdef, params, h):
    """Pure output head: float32 logits [..., V] from (gathered) hidden states [..., D]."""
    return nnx.merge(graphdef, params).unembed(h)


def param_count(params) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(params))
