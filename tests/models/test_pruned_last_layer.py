"""`hidden(..., last=n)` (issue 19): the final layer runs its queries, attention output and MLP on the
last n positions only. Oracle: the full forward's states at those positions (the full forward is itself
checked against transformers' Llama/Qwen2 in test_parity.py) -- values and LoRA gradients, for LLaDA
and for Dream's one-position shift, with LoRA dropout (the masks must be the full forward's), grouped
heads and left padding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dlrl_jax import models
from dlrl_jax.models.lora import trainable_mask
from dlrl_jax.models.transformer import PRUNE_AUTO_BYTES


def _model(family, prune, dropout=0.1):
    cfg = models.preset("tiny", d_model=32, n_layers=3, n_heads=4, n_kv_heads=2, mlp_hidden=48, vocab_size=40,
                        family=family, lora_rank=8, lora_alpha=16.0,
                        lora_targets=("q", "v", "o", "up", "down"), lora_dropout=dropout, prune_last_layer=prune)
    graphdef, params = models.split(models.init_model(cfg, seed=3))
    # non-zero adapters, so that their gradients and the dropout masks matter
    params = jax.tree.map(lambda x, m: x + 0.05 * jax.random.normal(jax.random.key(7), x.shape, x.dtype) if m else x,
                          params, trainable_mask(params))
    return graphdef, params


def _batch(L=13):
    ids = jax.random.randint(jax.random.key(1), (3, L), 0, 39)
    attention = jnp.arange(L)[None] >= jnp.array([0, 4, 9])[:, None]  # left padding
    return ids, attention


@pytest.mark.parametrize("family,last", [pytest.param("llada", 5, marks=pytest.mark.slow),
                                         pytest.param("dream", 1, marks=pytest.mark.slow),
                                         ("dream", 12)])
def test_last_positions_equal_the_full_forward(family, last):
    ids, attention = _batch()
    dropout_key = jax.random.key(11)
    pruned_graph, params = _model(family, True)
    full_graph, _ = _model(family, False)

    def value_and_grad(graphdef, n):
        def f(p):
            logits = models.unembed(graphdef, p, models.hidden(graphdef, p, ids, attention, dropout_key, last=n))
            logits = logits[:, -last:]
            return (jax.nn.log_softmax(logits, axis=-1)[..., 0] * jnp.arange(last)[None, :]).sum(), logits
        return jax.jit(jax.value_and_grad(f, has_aux=True))(params)

    (_, pruned), pruned_grads = value_and_grad(pruned_graph, last)
    (_, full), full_grads = value_and_grad(full_graph, None)
    assert pruned.shape == (3, last, 40)
    np.testing.assert_allclose(np.asarray(pruned), np.asarray(full), rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(pruned_grads), jax.tree.leaves(full_grads)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6 * max(1.0, float(jnp.abs(b).max())))


def test_auto_prunes_small_layer_stacks_only():
    small_graph, params = _model("llada", "auto", dropout=0.0)
    assert nnx.merge(small_graph, params)._prunes_last_layer()
    # 8 layers of d 1024, ff 4096 in float32: 4 * 8 * (4 * 1024^2 + 3 * 1024 * 4096) bytes = 512 MiB
    big = models.pure.abstract_model(models.preset("tiny", d_model=1024, n_layers=8, n_heads=8, n_kv_heads=8,
                                                   mlp_hidden=4096, prune_last_layer="auto"))
    assert 4 * 8 * (4 * 1024**2 + 3 * 1024 * 4096) > PRUNE_AUTO_BYTES and not big._prunes_last_layer()
