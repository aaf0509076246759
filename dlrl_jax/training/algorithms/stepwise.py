"""EGSPO / EGSPO-SA after the rewards (objectives/stepwise.py has the loss): step selection, stepwise
advantages, the rollout's and the reference's log-probs of the selected steps, and the items of every
optimizer step, under the plain schedule (every selected column in each of mu steps) or the official
trainer's (`official_column_order`).

Keys: the selection splits the run's key (`Selection` via `select`); LoRA dropout keys are
fold_in(key(seed), DROPOUT_STREAM) folded with the global update index, so a resumed run draws the same.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dlrl_jax.config_error import ConfigError
from dlrl_jax.objectives import stepwise
from dlrl_jax.objectives.selection import adaptive_k, select_steps
from dlrl_jax.training.algorithms.common import Algorithm, Selection, row_weights_or_none
from dlrl_jax.training.items import StepwiseItem
from dlrl_jax.training.key_streams import DROPOUT_STREAM


def official_column_order(k: int, columns: int, passes: int, micro_batches: int) -> list[np.ndarray]:
    """The items of each optimizer step under the official EGSPO trainer's schedule.

    There, micro-step j after a rollout (j = 0 .. passes * k - 1) trains the single selected-step column
    (j + 1) % k over the whole batch (its step counter is incremented before the loss reads it), and
    gradient accumulation joins `columns` consecutive micro-steps into one optimizer step: k / columns
    optimizer steps per pass over the columns. `column_items` stacks items as (micro-batch, column), so
    column c of micro-batch m is item m * k + c; each returned index array lists one optimizer step's
    items."""
    if k % columns:
        raise ValueError(f"algorithm.k = {k} selected steps do not split into optimizer steps of "
                         f"algorithm.columns_per_update = {columns} columns; use a divisor of k")
    order = [(j + 1) % k for j in range(passes * k)]
    return [np.array([m * k + c for m in range(micro_batches) for c in order[o:o + columns]])
            for o in range(0, len(order), columns)]


def schedule(k: int, columns: int, mu: int, micro_batches: int) -> np.ndarray:
    """[optimizer steps, items per step] indices into `column_items`' stack: mu steps of every item, or
    the official column order."""
    if not columns:
        return np.tile(np.arange(micro_batches * k), (mu, 1))
    try:
        return np.stack(official_column_order(k, columns, mu, micro_batches))
    except ValueError as e:
        raise ConfigError(str(e)) from None


def make(context) -> Algorithm:
    a = context.algorithm
    lam = a.lam if a.name == "egspo_sa" else 0.0
    columns = a.columns_per_update  # 0: every selected column in one step, summed
    settings = stepwise.StepwiseLossSettings(
        mask_id=context.mask_id, tokens_per_step=context.gen_length / context.steps, eps_low=a.eps_low,
        eps_high=a.eps_high, beta=a.beta, aggregation=a.aggregation,
        column_weight=1.0 / columns if columns else 1.0)
    loss = functools.partial(stepwise.stepwise_loss, context.graphdef, settings=settings, total_rows=context.rows)
    mode = "top_k_entropy" if a.selection == "adaptive" else a.selection

    def select(key, batch, k: int) -> Selection:
        steps, valid = select_steps(batch.step_entropy, batch.step_count, key, k=k, mode=mode)
        return Selection(steps=steps, valid=valid, greedy_reward=jnp.zeros(steps.shape, jnp.float32))

    def host_k(step_entropy, step_count, num_steps: int) -> int:
        """Adaptive K on the host (a shape), in whole optimizer steps under the official schedule."""
        k = adaptive_k(step_entropy, step_count, a.adaptive_alpha, k_max=num_steps)
        if columns:
            k = min(-(-k // columns) * columns, num_steps // columns * columns)
        return k

    def prepare(params, ref_params, batch, reward_B, selection: Selection, update_index, k: int, seed=None):
        steps, valid = selection.steps, selection.valid
        adv = stepwise.stepwise_advantages(reward_B, selection.greedy_reward, valid, a.group_size, lam)
        old = jnp.take_along_axis(batch.step_logprob, steps, axis=1)  # the rollout's sums
        if a.aggregation == "mean":  # the loss's log-prob is then a mean over the step's tokens: so is old
            old = old / jnp.maximum(jnp.take_along_axis(batch.step_count, steps, axis=1), 1)
        ref = stepwise.selected_step_logprobs(context.ref_graphdef, context.base_params(ref_params), batch.tokens,
                                              batch.prompt_mask, batch.unmask_step, steps, mask_id=context.mask_id,
                                              aggregation=a.aggregation) if a.beta > 0 else old
        stack = stepwise.column_items(batch.tokens, batch.prompt_mask, batch.unmask_step, steps, valid, adv, old,
                                      ref, micro_batches=a.micro_batches,
                                      row_weight_B=row_weights_or_none(a, reward_B, a.group_size))
        order = schedule(k, columns, a.mu, a.micro_batches)
        fields = jax.tree.map(lambda x: x[order], stack)  # [optimizer steps, items per step, ...]
        if context.lora_dropout:  # a fresh dropout draw for every item of every optimizer step
            base = jax.random.fold_in(jax.random.key(context.seed if seed is None else seed), DROPOUT_STREAM)
            keys = [jax.random.fold_in(base, update_index + i) if not columns else
                    jax.random.fold_in(jax.random.fold_in(base, update_index), i) for i in range(order.shape[0])]
            fields["dropout_key"] = jnp.stack([jax.random.key_data(jax.random.split(key, order.shape[1]))
                                               for key in keys])
        T = batch.step_entropy.shape[1]
        histogram = jnp.zeros(T, jnp.int32).at[steps.reshape(-1)].add(valid.reshape(-1).astype(jnp.int32))
        return StepwiseItem(**fields), {"selected_histogram": histogram}

    return Algorithm(loss=loss, prepare=prepare, settings=settings, select=select,
                     host_k=host_k if a.selection == "adaptive" else None, record_greedy=lam > 0)
