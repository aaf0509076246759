"""The completion log-probs every objective takes: one forward pass over a canvas, logits formed on the
completion positions only ([B, G, V], never [B, L, V] for long prompts; the final layer itself runs
on those positions alone where model.prune_last_layer allows), the log-prob of each given
completion token."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from dlrl_jax import models


def completion_logprobs(graphdef, params, ids_BxL, attention_BxL, completion_BxG, dropout_key=None):
    """log p(completion_BxG[b, j] | canvas ids_BxL) [B, G] float32 at the last G positions of the canvas.

    ids_BxL int32 [B, P + G]: prompt then completion canvas (masked where the estimator masks);
    attention_BxL bool [B, P + G]; completion_BxG int32 [B, G]: the tokens whose log-probs are read;
    dropout_key: the LoRA dropout key of a training forward, or None."""
    chex.assert_rank([ids_BxL, completion_BxG], 2)  # shapes only: checked while tracing
    chex.assert_equal_shape([ids_BxL, attention_BxL])
    G = completion_BxG.shape[1]
    h_BxGxD = models.hidden(graphdef, params, ids_BxL, attention_BxL, dropout_key, last=G)
    logp_BxGxV = jax.nn.log_softmax(models.unembed(graphdef, params, h_BxGxD), axis=-1)
    return jnp.take_along_axis(logp_BxGxV, completion_BxG[..., None], axis=-1)[..., 0]
