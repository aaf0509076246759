"""ESPO: sequence-level clipped policy optimisation with the ELBO as the log-likelihood (§4).

rho_i = exp((L_theta(y_i) - L_old(y_i)) / G) (a per-token normalised sequence ratio), the clipped
surrogate, and the k2 KL 0.5 (L_theta - L_ref)^2 / G. Advantages are leave-one-out within a group.
"""

from __future__ import annotations

import dataclasses

import chex
import jax.numpy as jnp

from dlrl_jax import models
from dlrl_jax.objectives.elbo import estimate_pure
from dlrl_jax.objectives.surrogate import clipped_surrogate, k2


@dataclasses.dataclass(frozen=True)
class ESPOSettings:
    mask_id: int
    num_samples: int = 2
    coupled: bool = True
    eps: float = 0.2
    beta: float = 1e-3
    remat: bool = True  # recompute each ELBO pass in the backward: one pass's activations in memory
    strata: int = 0     # rows per stratified mask-count group (ESPO's per-device batch); 0: the micro-batch


def leave_one_out_advantages(reward_B, group_size: int):
    """A_i = r_i - mean_{j != i} r_j within each group of `group_size` contiguous rows; no std scaling.
    float32 [B]; jit-friendly."""
    if group_size < 2:
        raise ValueError("leave-one-out advantages need group_size >= 2")
    reward_B = jnp.asarray(reward_B, jnp.float32)
    chex.assert_rank(reward_B, 1)
    r = reward_B.reshape(-1, group_size)
    return (r - (r.sum(axis=1, keepdims=True) - r) / (group_size - 1)).reshape(-1)


def elbos(graphdef, params, batch, key, settings: ESPOSettings):
    """ELBO estimates [B] of the batch's completions with the masks drawn from `key`."""
    return estimate_pure(graphdef, params, batch["prompt_ids"], batch["prompt_mask"], batch["completion_ids"], key,
                         num_samples=settings.num_samples, coupled=settings.coupled, stratified=True,
                         mask_id=settings.mask_id, remat=settings.remat, dropout_key=models.batch_dropout_key(batch),
                         strata=settings.strata, row_offset=batch.get("row_offset", 0))


def espo_loss(graphdef, params, batch, settings: ESPOSettings, total_rows: int):
    """batch: prompt_ids [B, P], prompt_mask, completion_ids [B, G], advantage [B], old_elbo [B],
    ref_elbo [B], key (the draw shared with old/ref), optionally row_weight [B] (each row's term times it;
    the metric sums unweighted). Returns (sum over rows / total_rows, metric sums)."""
    G = batch["completion_ids"].shape[1]
    elbo = elbos(graphdef, params, batch, batch["key"], settings)
    adv = batch["advantage"]
    ratio = jnp.exp((elbo - batch["old_elbo"]) / G)
    surrogate, was_clipped = clipped_surrogate(ratio, adv, settings.eps, settings.eps)
    kl = k2(elbo - batch["ref_elbo"]) / G
    per_row = -surrogate + settings.beta * kl
    if "row_weight" in batch:  # algorithm.zero_variance_groups=drop: 0 on a group without signal
        per_row = per_row * batch["row_weight"]
    loss = per_row.sum() / total_rows
    return loss, {"ratio": ratio.sum(), "ratio_dev": jnp.abs(ratio - 1.0).sum(), "clip_fraction": was_clipped.sum().astype(jnp.float32),
                  "kl": kl.sum(), "count": jnp.float32(ratio.shape[0])}
