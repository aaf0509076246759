"""wd1 after the rewards (objectives/wd1.py has the loss): the group-softmax weights and the prompt-mask
keys of every item. wd1 needs no old-policy or reference pass. This module is the whole of what adding
an objective to the loop takes: `make(context) -> Algorithm` and one line in `ALGORITHMS`.

The keys are those of diffu-GRPO (the same seed stream, fold_in(key, global update index) then the
micro-batch), so a resumed run draws the same prompt masks and the two methods see the same masks
for the same seed. Official schedule (wd1/trainers/rev_grpo_trainer.py `_prepare_inputs`): one rollout
reused for num_iterations (mu) optimizer steps, a fresh prompt mask for each.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlrl_jax.objectives import diffu_grpo, wd1
from dlrl_jax.training.algorithms.common import Algorithm, row_weights_or_none, split_rows
from dlrl_jax.training.items import WD1Item
from dlrl_jax.training.key_streams import DROPOUT_STREAM, MASK_STREAM


def make(context) -> Algorithm:
    a = context.algorithm
    settings = wd1.WD1Settings(mask_id=context.mask_id, p_mask_prompt=a.p_mask_prompt,
                               negative_term=a.wd1_negative_term)
    num_groups = context.rows // a.group_size

    def loss(params, item):
        return wd1.wd1_loss(context.graphdef, params, dict(item, key=jax.random.wrap_key_data(item["key"])),
                            settings, num_groups)

    def prepare(params, ref_params, batch, reward_B, selection, update_index, k, seed=None):
        """Items [mu, micro_batches, rows / micro_batches, ...] and the weights' metric (the largest
        positive weight, mean over groups)."""
        M = a.micro_batches
        advantage_B = diffu_grpo.group_mean_advantages(reward_B, a.group_size)
        weight_B = wd1.sample_weights(advantage_B, a.group_size, a.wd1_negative_term)
        row_weight = row_weights_or_none(a, reward_B, a.group_size)
        if row_weight is not None:  # algorithm.zero_variance_groups=drop: the loss's mean over kept groups
            weight_B = weight_B * row_weight
        fields = split_rows({"prompt_ids": batch.tokens[:, :batch.prompt_length], "prompt_mask": batch.prompt_mask,
                             "completion_ids": batch.completion,
                             "completion_mask": diffu_grpo.completion_mask(batch.completion, context.eos_id),
                             "weight": weight_B}, M)
        base_key = jax.random.fold_in(jax.random.key(context.seed if seed is None else seed), MASK_STREAM)  # diffu-GRPO's mask stream
        keys = [[jax.random.fold_in(jax.random.fold_in(base_key, update_index + i), m) for m in range(M)]
                for i in range(a.mu)]
        stacked = jax.tree.map(lambda x: jnp.broadcast_to(x, (a.mu, *x.shape)), fields)
        stacked["key"] = jnp.stack([jnp.stack([jax.random.key_data(key) for key in row]) for row in keys])
        if context.lora_dropout:
            stacked["dropout_key"] = jnp.stack([jnp.stack([jax.random.key_data(jax.random.fold_in(key, DROPOUT_STREAM))
                                                           for key in row]) for row in keys])
        positive_B = jax.nn.softmax(advantage_B.reshape(-1, a.group_size), axis=1)
        return WD1Item(**stacked), {"weight_max": positive_B.max(axis=1).mean()}

    return Algorithm(loss=loss, prepare=prepare, settings=settings)
