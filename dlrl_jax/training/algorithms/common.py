"""What the algorithm modules share: the `Algorithm` record, EGSPO's `Selection`, the reference
policy's graph, group advantages in JAX, the per-item keys, and the groups that carry no signal
(`zero_variance_groups`, `signal_row_weights`: algorithm.zero_variance_groups)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx, struct

from dlrl_jax import models


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """One run's pure functions of an objective (see the package docstring for the signatures)."""

    loss: Callable
    prepare: Callable
    settings: Any = None
    select: Callable | None = None
    host_k: Callable | None = None
    record_greedy: bool = False


@struct.dataclass
class Selection:
    """EGSPO's selected steps: steps [B, K] int32, valid [B, K] bool, greedy_reward [B, K] float32 (the
    rewards of the selected steps' greedy completions; zeros for plain EGSPO)."""

    steps: jax.Array
    valid: jax.Array
    greedy_reward: jax.Array


def reference_model(graphdef, params):
    """(graphdef, params -> params) for the reference policy's forwards. With LoRA the reference is the
    base model (every adapter factor zero), and x W + s (x 0) 0 is x W exactly, so the reference
    forwards run on a graph without the adapters, fed the policy's base leaves: the same numbers
    without the adapter's matmuls, and no copy to store. Without LoRA: the run's graph and the
    reference parameters as they are."""
    cfg = nnx.merge(graphdef, params).cfg
    if not cfg.lora_rank:
        return graphdef, lambda ref_params: ref_params
    base_cfg = cfg.replace(lora_rank=0, lora_alpha=0.0, lora_targets=(), lora_dropout=0.0)

    base_graphdef, abstract = nnx.split(nnx.eval_shape(lambda: models.Transformer(base_cfg, rngs=nnx.Rngs(params=0))))

    def strip(ref_params):
        values = nnx.to_pure_dict(ref_params)
        values["layers"] = {k: v for k, v in values["layers"].items() if not k.startswith("lora_")}
        state = jax.tree.map(lambda x: x, abstract)  # a new container each time: filled below
        nnx.replace_by_pure_dict(state, values)
        return state

    return base_graphdef, strip


def split_rows(tree, micro_batches: int):
    """[B, ...] leaves -> [micro_batches, B / micro_batches, ...]."""
    return jax.tree.map(lambda x: x.reshape(micro_batches, x.shape[0] // micro_batches, *x.shape[1:]), tree)


def raw(key):
    return jax.random.key_data(key)


def zero_variance_groups(reward_B, group_size: int):
    """bool [B / group_size]: the groups (contiguous rows) whose rewards are all equal, exactly (DAPO's
    dynamic-sampling filter keeps a group when its reward std > 0). d1's logged zero_std_ratio counts
    std < 1e-6 instead; for rewards on a grid such as Sudoku's fractions of blanks the two agree."""
    r = jnp.asarray(reward_B, jnp.float32).reshape(-1, group_size)
    return r.max(axis=1) == r.min(axis=1)


def zero_variance_fraction(reward_B, group_size: int):
    """float32 []: the fraction of groups whose rewards are all equal (the metric zero_variance_fraction)."""
    return zero_variance_groups(reward_B, group_size).astype(jnp.float32).mean()


def signal_row_weights(reward_B, group_size: int):
    """float32 [B]: algorithm.zero_variance_groups=drop's row weights. 0 on the rows of a zero-variance
    group; n_groups / n_kept on the others, so that a loss summed over rows and divided by all the rows
    becomes the mean over the kept rows (the batch keeps its shape: DAPO's dynamic sampling without
    drawing more prompts). When every group has zero variance every weight is 0 and the loss, and so
    the gradient, is zero."""
    zero = zero_variance_groups(reward_B, group_size)
    kept = (~zero).sum()
    weight = jnp.where(zero, 0.0, zero.shape[0] / jnp.maximum(kept, 1).astype(jnp.float32))
    return jnp.repeat(weight, group_size)


def row_weights_or_none(settings, reward_B, group_size: int):
    """`signal_row_weights` under algorithm.zero_variance_groups=drop (`settings`: the algorithm's
    settings); None under keep (the items then carry no weight field and the losses are today's)."""
    return signal_row_weights(reward_B, group_size) if settings.zero_variance_groups == "drop" else None
