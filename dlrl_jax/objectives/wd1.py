"""wd1 (Tang, Dolga, Yoon, Bogunovic 2025, arXiv 2507.08838): ratio-free weighted log-likelihood.

No old-policy or reference likelihood and no ratio: each completion's sequence log-likelihood under
the current policy is weighted by a softmax of its group's advantages, pushed up by the positive
weight and down by the negative one:

    loss = (1 / num_groups) sum_i (w-_i - w+_i) L_theta(y_i | q),
    w+ = softmax_group(A),  w- = softmax_group(-A),  A_i = r_i - mean_group(r)   (no std scaling),
    L_theta(y_i | q) = sum_{j <= first EOS} log p_theta(y_ij | q partly masked, y all masked)

Official code: xiaohangt/wd1 @0898985, wd1/trainers/rev_grpo_trainer.py (trainer_type wll_d1_neg):
`compute_loss` (the weights `torch.softmax(advantages, dim=0)` and `torch.softmax(-advantages, dim=0)`,
the loss `ce_loss + min_likeli_loss` with per-row sums of `per_token_logps * completion_mask`),
`_get_per_token_logps` / `forward_process` (d1's one-step estimator: completion fully masked, prompt
tokens masked with p_mask_prompt) and `_generate_and_score_completions` (A = r - group mean; the
completion mask up to and including the first EOS). `wll_d1_pos_only`
(wd1/trainers/rev_grpo_trainer_psr.py) drops the negative term. Differences: FIDELITY.md.
"""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp

from dlrl_jax import models
from dlrl_jax.objectives.diffu_grpo import token_logprobs


@dataclasses.dataclass(frozen=True)
class WD1Settings:
    mask_id: int
    p_mask_prompt: float = 0.15   # wd1/train.yaml p_mask_prompt (d1's estimator)
    negative_term: bool = True    # wll_d1_neg; False: wll_d1_pos_only (positive weights only)


def sample_weights(advantage_B, group_size: int, negative_term: bool = True):
    """Per-row net weight w+ - w- [B] float32 from advantages [B] (groups of `group_size` contiguous rows).

    w+ = softmax(A) and w- = softmax(-A) over each group (rev_grpo_trainer.py compute_loss: softmax over
    the device micro-batch, which the official scripts make exactly one group: 6 rows of one prompt).
    Each group's w+ and w- sum to 1, so the net weights of a group sum to 0 (to 1 without w-)."""
    advantage_B = jnp.asarray(advantage_B, jnp.float32)
    chex.assert_rank(advantage_B, 1)
    a_PxG = advantage_B.reshape(-1, group_size)
    w = jax.nn.softmax(a_PxG, axis=1)
    if negative_term:
        w = w - jax.nn.softmax(-a_PxG, axis=1)
    return w.reshape(-1)


def weighted_likelihood_loss(token_logprob_BxG, completion_mask_BxG, weight_B, num_groups: int):
    """-(1 / num_groups) sum_i weight_i sum_j mask_ij logp_ij: the wd1 loss of these rows.

    token_logprob_BxG float32 [B, G], completion_mask_BxG bool [B, G], weight_B [B] (`sample_weights`).
    The official loss of one device micro-batch (one group) is the inner sum; gradient accumulation
    (loss / GA) and the data-parallel mean average it over the groups of an optimizer step."""
    token_logprob_BxG, completion_mask_BxG, weight_B = map(jnp.asarray, (token_logprob_BxG, completion_mask_BxG, weight_B))
    chex.assert_rank(token_logprob_BxG, 2)
    chex.assert_equal_shape([token_logprob_BxG, completion_mask_BxG])
    chex.assert_shape(weight_B, (token_logprob_BxG.shape[0],))
    sequence_logprob_B = (token_logprob_BxG * completion_mask_BxG.astype(jnp.float32)).sum(axis=1)
    return -(weight_B * sequence_logprob_B).sum() / num_groups


def wd1_loss(graphdef, params, batch, settings: WD1Settings, num_groups: int):
    """(loss, metric sums) of one item. batch: prompt_ids [B, P] int32, prompt_mask [B, P] bool,
    completion_ids [B, G] int32, completion_mask [B, G] bool, weight [B] float32 (`sample_weights` of
    the whole batch, so a group may span micro-batches), key (the prompt-mask draw), optional
    dropout_key. `num_groups`: prompts in the whole batch, so that summed items give the mean over
    groups. Sums: "logprob" (of the counted completion tokens) and "count" (those tokens)."""
    lp_BxG = token_logprobs(graphdef, params, batch["prompt_ids"], batch["prompt_mask"], batch["completion_ids"],
                            batch["key"], settings, models.batch_dropout_key(batch))
    real_BxG = batch["completion_mask"]
    loss = weighted_likelihood_loss(lp_BxG, real_BxG, batch["weight"], num_groups)
    real = real_BxG.astype(jnp.float32)
    return loss, {"logprob": (lp_BxG * real).sum(), "count": real.sum()}
