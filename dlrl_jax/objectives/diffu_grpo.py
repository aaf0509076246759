"""diffu-GRPO (d1), the baseline: per-token log-probs from one forward pass with the completion fully
masked and each real prompt token masked with probability p; token-level clipped ratio and k3 KL;
A = r - group mean. A fresh prompt mask per inner update (the key changes with the update)."""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp

from dlrl_jax import models
from dlrl_jax.objectives.logprobs import completion_logprobs
from dlrl_jax.objectives.surrogate import clipped_surrogate, k3


@dataclasses.dataclass(frozen=True)
class DiffuGRPOSettings:
    mask_id: int
    p_mask_prompt: float = 0.15
    eps: float = 0.5
    beta: float = 0.04
    token_mean: str = "row"  # "row": each row's token mean, rows averaged; "batch": d1's mean over all
    #                          completion tokens of the micro-batch (longer completions weigh more)


def group_mean_advantages(reward_B, group_size: int):
    """d1: A = r - group mean, float32 [B] (groups of `group_size` contiguous rows); jit-friendly."""
    reward_B = jnp.asarray(reward_B, jnp.float32)
    chex.assert_rank(reward_B, 1)
    r = reward_B.reshape(-1, group_size)
    return (r - r.mean(axis=1, keepdims=True)).reshape(-1)


def completion_mask(completion_BxG, eos_id: int):
    """True up to and including the first EOS (the tokens the policy chose); all True without EOS."""
    is_eos = completion_BxG == eos_id
    after_first = jnp.cumsum(is_eos, axis=1) - is_eos > 0
    return ~after_first


def draw_prompt_mask(key, prompt_mask, p_mask_prompt: float):
    """Which prompt tokens to mask [B, P] bool: each real prompt token with probability p_mask_prompt.
    (Its own function so that bench/official can substitute the official trainer's recorded draws.)"""
    return (jax.random.uniform(key, prompt_mask.shape) < p_mask_prompt) & prompt_mask.astype(bool)


def token_logprobs(graphdef, params, prompt_ids, prompt_mask, completion_ids, key, settings: DiffuGRPOSettings,
                   dropout_key=None):
    """log p(y_j | prompt partly masked, completion all masked) [B, G] from one forward pass."""
    B, G = completion_ids.shape
    drop = draw_prompt_mask(key, prompt_mask, settings.p_mask_prompt)
    ids = jnp.concatenate([jnp.where(drop, settings.mask_id, prompt_ids),
                           jnp.full((B, G), settings.mask_id, prompt_ids.dtype)], axis=1)
    attention = jnp.concatenate([prompt_mask.astype(bool), jnp.ones((B, G), bool)], axis=1)
    return completion_logprobs(graphdef, params, ids, attention, completion_ids, dropout_key)


def diffu_grpo_loss(graphdef, params, batch, settings: DiffuGRPOSettings, total_rows: int):
    """batch: prompt_ids, prompt_mask, completion_ids [B, G], completion_mask [B, G], advantage [B],
    old_logprob [B, G], ref_logprob [B, G], key, optionally row_weight [B]
    (algorithm.zero_variance_groups=drop; the metric sums unweighted). `token_mean` "row": per-row token mean, rows summed /
    total_rows; "batch": the micro-batch's token mean x B / total_rows, so that micro-batches average
    (d1's loss per micro-step, divided by the gradient-accumulation steps)."""
    lp = token_logprobs(graphdef, params, batch["prompt_ids"], batch["prompt_mask"], batch["completion_ids"],
                        batch["key"], settings, models.batch_dropout_key(batch))
    adv = batch["advantage"][:, None]
    real = batch["completion_mask"].astype(jnp.float32)
    ratio = jnp.exp(lp - batch["old_logprob"])
    surrogate, was_clipped = clipped_surrogate(ratio, adv, settings.eps, settings.eps)
    kl = k3(batch["ref_logprob"] - lp)
    per_token = (-surrogate + settings.beta * kl) * real
    weight = batch.get("row_weight")  # algorithm.zero_variance_groups=drop: 0 on a group without signal
    if settings.token_mean == "batch":
        # the token mean over the micro-batch's kept rows: their tokens in the denominator too
        counted = real if weight is None else real * (weight > 0)[:, None]
        kept = per_token if weight is None else per_token * counted
        loss = kept.sum() / jnp.maximum(counted.sum(), 1.0) * (real.shape[0] / total_rows)
    else:
        per_row = per_token.sum(axis=1) / jnp.maximum(real.sum(axis=1), 1.0)
        loss = (per_row if weight is None else per_row * weight).sum() / total_rows
    return loss, {
        "ratio": (ratio * real).sum(), "ratio_dev": (jnp.abs(ratio - 1.0) * real).sum(),
        "clip_fraction": (was_clipped * real).sum(),
        "kl": (kl * real).sum(), "count": real.sum()}
