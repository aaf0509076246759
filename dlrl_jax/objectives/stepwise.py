"""EGSPO / EGSPO-SA: the stepwise policy gradient over selected denoising steps (ALGORITHMS.md §3).

The log-prob of step s is one forward pass at the real state before s (rebuilt from the final tokens
and `unmask_step`), summing (or averaging) log softmax at the positions committed at s. Which
positions were chosen (the remasking) is not part of it.

Shapes: B rows (prompts x group), P prompt, G completion, L = P + G, K selected steps, V vocab.
"""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp

from dlrl_jax import models
from dlrl_jax.objectives.logprobs import completion_logprobs
from dlrl_jax.objectives.surrogate import clipped_surrogate, k3
from dlrl_jax.rollout.trajectory import canvas_before

AGGREGATIONS = ("sum", "mean")


def step_logprob(graphdef, params, tokens_BxL, prompt_mask_BxP, unmask_step_BxG, step_B, *, mask_id,
                 aggregation="sum", dropout_key=None):
    """(log pi(step s | state before s) [B], tokens committed at s [B]) with one forward pass.

    Logits are formed on the completion only ([B, G, V], never [B, L, V] for long prompts)."""
    B, G = unmask_step_BxG.shape
    P = tokens_BxL.shape[1] - G
    canvas = canvas_before(tokens_BxL, unmask_step_BxG, step_B, mask_id)
    attention = jnp.concatenate([prompt_mask_BxP.astype(bool), jnp.ones((B, G), bool)], axis=1)
    token_logp_BxG = completion_logprobs(graphdef, params, canvas, attention, tokens_BxL[:, P:], dropout_key)
    committed = unmask_step_BxG == step_B[:, None]
    count = committed.sum(axis=1)
    total = jnp.where(committed, token_logp_BxG, 0.0).sum(axis=1)
    if aggregation == "mean":
        total = total / jnp.maximum(count, 1)
    return total, count


def selected_step_logprobs(graphdef, params, tokens_BxL, prompt_mask_BxP, unmask_step_BxG, steps_BxK, *,
                           mask_id, aggregation="sum"):
    """Log-probs [B, K] of the selected steps, one forward per column (lax.map bounds the memory)."""
    def column(step_B):
        return step_logprob(graphdef, params, tokens_BxL, prompt_mask_BxP, unmask_step_BxG, step_B,
                            mask_id=mask_id, aggregation=aggregation)[0]
    return jax.lax.map(column, steps_BxK.T).T


def stepwise_advantages(reward_B, greedy_reward_BxK, valid_BxK, group_size: int, lam: float):
    """A[b, k] = R~ - mean of R~ over the group's valid rows in column k, R~ = (R + lam (R - r^)) / (1 + lam).

    lam = 0 is plain EGSPO (A = R - group mean, the same in every column). No std normalisation.
    float32 [B, K]; jit-friendly (the shapes are checked at trace time)."""
    reward_B = jnp.asarray(reward_B, jnp.float32)
    greedy_reward_BxK = jnp.asarray(greedy_reward_BxK, jnp.float32)
    chex.assert_rank(greedy_reward_BxK, 2)
    B, K = greedy_reward_BxK.shape
    chex.assert_shape(reward_B, (B,))
    valid_BxK = jnp.asarray(valid_BxK, bool)
    chex.assert_shape(valid_BxK, (B, K))
    if B % group_size:
        raise ValueError(f"batch of {B} rows is not a whole number of groups of {group_size}")
    shaped = (reward_B[:, None] + lam * (reward_B[:, None] - greedy_reward_BxK)) / (1.0 + lam)
    valid = valid_BxK.reshape(-1, group_size, K)
    grouped = shaped.reshape(-1, group_size, K)
    mean = (grouped * valid).sum(axis=1, keepdims=True) / jnp.maximum(valid.sum(axis=1, keepdims=True), 1)
    return jnp.where(valid, grouped - mean, 0.0).reshape(B, K)


@dataclasses.dataclass(frozen=True)
class StepwiseLossSettings:
    """Hyperparameters of the clipped stepwise objective (defaults: the EGSPO code)."""

    mask_id: int
    tokens_per_step: float  # gen_length / steps: the loss is per token, as in the reference code
    eps_low: float = 0.2
    eps_high: float = 0.5
    beta: float = 0.04
    aggregation: str = "sum"
    column_weight: float = 1.0  # each column's loss x this: 1 / columns per optimizer step (the official GA scaling)


def stepwise_loss(graphdef, params, batch, settings: StepwiseLossSettings, total_rows: int):
    """Clipped surrogate + beta * k3 KL for one column of selected steps over (a micro-batch of) rows.

    batch: tokens [B, L], prompt_mask [B, P], unmask_step [B, G], step [B], valid [B], advantage [B],
    old_logprob [B], ref_logprob [B], optionally dropout_key (LoRA dropout) and row_weight [B]
    (algorithm.zero_variance_groups=drop: each row's term times it; the metric sums unweighted). Rows are summed and
    divided by `total_rows` (the whole batch), so micro-batches and columns add up to: mean over rows, summed over selected steps, per token.
    Returns (loss, metrics sums)."""
    logp, _ = step_logprob(graphdef, params, batch["tokens"], batch["prompt_mask"], batch["unmask_step"],
                           batch["step"], mask_id=settings.mask_id, aggregation=settings.aggregation,
                           dropout_key=models.batch_dropout_key(batch))
    adv, valid = batch["advantage"], batch["valid"].astype(jnp.float32)
    ratio = jnp.exp(logp - batch["old_logprob"])
    surrogate, was_clipped = clipped_surrogate(ratio, adv, settings.eps_low, settings.eps_high)
    kl = k3(batch["ref_logprob"] - logp)
    per_row = -surrogate + settings.beta * kl
    if "row_weight" in batch:  # algorithm.zero_variance_groups=drop: 0 on a group without signal
        per_row = per_row * batch["row_weight"]
    scale = settings.column_weight / settings.tokens_per_step if settings.aggregation == "sum" \
        else settings.column_weight
    loss = (valid * per_row).sum() * scale / total_rows
    metrics = {
        "ratio": (valid * ratio).sum(),
        "ratio_dev": (valid * jnp.abs(ratio - 1.0)).sum(),  # (its first optimizer step's: the rollout/trainer mismatch)
        "clip_fraction": (valid * was_clipped).sum(),
        "kl": (valid * kl).sum(),
        "count": valid.sum(),
    }
    return loss, metrics


def column_items(tokens_BxL, prompt_mask_BxP, unmask_step_BxG, steps_BxK, valid_BxK, advantage_BxK,
                 old_logprob_BxK, ref_logprob_BxK, micro_batches: int = 1, row_weight_B=None):
    """Stacks the update's items: one per (micro-batch, selected-step column), leading axis
    micro_batches * K, each with the `stepwise_loss` batch fields for mb = B / micro_batches rows."""
    B, K = steps_BxK.shape
    if B % micro_batches:
        raise ValueError(f"batch of {B} rows does not split into {micro_batches} micro-batches")
    n, mb = micro_batches, B // micro_batches

    def rows(x):  # [B, ...] -> [n * K, mb, ...], the same rows for every column
        x = jnp.asarray(x).reshape(n, 1, mb, *x.shape[1:])
        return jnp.broadcast_to(x, (n, K, mb, *x.shape[3:])).reshape(n * K, mb, *x.shape[3:])

    def columns(x):  # [B, K] -> [n * K, mb]
        return jnp.asarray(x).reshape(n, mb, K).transpose(0, 2, 1).reshape(n * K, mb)

    out = {
        "tokens": rows(tokens_BxL), "prompt_mask": rows(prompt_mask_BxP),
        "unmask_step": rows(unmask_step_BxG), "step": columns(steps_BxK), "valid": columns(valid_BxK),
        "advantage": columns(advantage_BxK), "old_logprob": columns(old_logprob_BxK),
        "ref_logprob": columns(ref_logprob_BxK),
    }
    if row_weight_B is not None:  # the same weight in every column of a row
        out["row_weight"] = columns(jnp.broadcast_to(jnp.asarray(row_weight_B)[:, None], (B, K)))
    return out
