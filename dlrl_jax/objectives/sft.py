"""Masked-diffusion SFT (LLaDA's loss): t ~ U(eps, 1) per row, each completion token masked with
probability t, cross-entropy on the masked tokens weighted 1/t, per row divided by the completion
length, mean over rows. Used to warm-start tiny models and for users' SFT."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlrl_jax import models
from dlrl_jax.objectives.logprobs import completion_logprobs


def sft_loss(graphdef, params, batch, key, *, mask_id: int, total_rows: int, eps: float = 1e-3):
    """batch: prompt_ids [B, P], prompt_mask [B, P], completion_ids [B, G], completion_mask [B, G]
    (False on padding after EOS, if any). Returns (loss summed over rows / total_rows, metric sums)."""
    prompt_ids, completion = batch["prompt_ids"], batch["completion_ids"]
    real = batch["completion_mask"].astype(bool)
    B, G = completion.shape
    t_key, m_key = jax.random.split(key)
    p_mask_B = (1.0 - eps) * jax.random.uniform(t_key, (B,)) + eps
    masked = (jax.random.uniform(m_key, (B, G)) < p_mask_B[:, None]) & real
    noisy = jnp.where(masked, mask_id, completion)
    ids = jnp.concatenate([prompt_ids, noisy], axis=1)
    attention = jnp.concatenate([batch["prompt_mask"].astype(bool), jnp.ones((B, G), bool)], axis=1)
    nll_BxG = -completion_logprobs(graphdef, params, ids, attention, completion, models.batch_dropout_key(batch))
    weighted = jnp.where(masked, nll_BxG / p_mask_B[:, None], 0.0).sum(axis=1)
    per_row = weighted / jnp.maximum(real.sum(axis=1), 1)
    loss = per_row.sum() / total_rows
    return loss, {"masked_tokens": masked.sum().astype(jnp.float32),
                  "masked_nll": jnp.where(masked, nll_BxG, 0.0).sum()}
