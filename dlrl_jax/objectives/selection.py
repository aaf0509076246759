"""Which denoising steps to train on (EGSPO): top-K by entropy, random, uniform, adaptive K.

The paper bounds the gradient error of skipping the steps outside the chosen set S by
B * sum_{s not in S} H_s, so keeping the K highest-entropy steps minimises that bound.
Steps that committed no token (count 0: padding, or unused steps of threshold decoding) are never
chosen; when fewer than K steps are usable the surplus slots come back with `valid` False.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

MODES = ("top_k_entropy", "random", "uniform")


@functools.partial(jax.jit, static_argnames=("k", "mode"))
def select_steps(step_entropy_BxT, step_count_BxT, key, *, k: int, mode: str = "top_k_entropy"):
    """Chooses k steps per row. Returns (steps [B, k] int32, valid [B, k] bool).

    top_k_entropy: the k largest entropies, ties to the earlier step, listed by decreasing entropy.
    random: the last usable step plus k-1 distinct others uniformly at random.
    uniform: k evenly spaced usable steps ending with the last usable one.
    """
    if mode not in MODES:
        raise ValueError(f"step selection mode {mode!r} is unknown; use one of {MODES}")
    chex.assert_rank(step_entropy_BxT, 2)  # shapes only: checked while tracing
    chex.assert_equal_shape([step_entropy_BxT, step_count_BxT])
    B, T = step_entropy_BxT.shape
    usable = step_count_BxT > 0
    n_usable = usable.sum(axis=1)
    if mode == "top_k_entropy":
        score = jnp.where(usable, step_entropy_BxT, -jnp.inf)
        # stable argsort of -score keeps the earlier step first among equal entropies
        order = jnp.argsort(-score, axis=1, stable=True)[:, :k]
    else:
        # Rank the usable steps 0..n-1 in time order; pick ranks, then map ranks back to steps.
        rank_of_step = jnp.cumsum(usable, axis=1) - 1
        slot = jnp.arange(k)[None, :]
        n = n_usable[:, None]
        if mode == "uniform":
            # ranks n-1 - floor((k-1-j) n / k): distinct when n >= k, evenly spaced, ending at n-1
            spaced = n - 1 - jnp.floor((k - 1 - slot) * n / k).astype(jnp.int32)
            ranks = jnp.where(n >= k, spaced, slot)
        else:
            noise = jax.random.uniform(key, (B, T))
            last = rank_of_step == (n - 1)
            score = jnp.where(usable, jnp.where(last, 2.0, noise), -1.0)
            chosen = jnp.argsort(-score, axis=1, stable=True)[:, :k]
            chosen_usable = jnp.take_along_axis(usable, chosen, axis=1)
            ranks = jnp.where(chosen_usable, jnp.take_along_axis(rank_of_step, chosen, axis=1), T + slot)
            ranks = jnp.sort(ranks, axis=1)  # time order; unusable picks (only when n < k) sort last
        step_of_rank = jnp.argsort(jnp.where(usable, rank_of_step, T + jnp.arange(T)), axis=1, stable=True)
        order = jnp.take_along_axis(step_of_rank, jnp.clip(ranks, 0, T - 1), axis=1)
    valid = jnp.arange(k)[None, :] < jnp.minimum(n_usable, k)[:, None]
    return order.astype(jnp.int32), valid


def adaptive_k(step_entropy_BxT, step_count_BxT, alpha: float, k_max: int | None = None) -> int:
    """Smallest K whose top-K entropies reach `alpha` of each row's total, maximised over the batch.

    Runs on the host (K sets a shape); callers round it up to a bucket to bound recompiles."""
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"adaptive step selection alpha must be in (0, 1], got {alpha}")
    entropy = np.where(np.asarray(step_count_BxT) > 0, np.asarray(step_entropy_BxT, np.float64), 0.0)
    ranked = -np.sort(-entropy, axis=1)
    total = ranked.sum(axis=1, keepdims=True)
    reached = np.cumsum(ranked, axis=1) >= alpha * total - 1e-12
    k_rows = reached.argmax(axis=1) + 1
    k = int(k_rows.max())
    return min(k, k_max) if k_max else k
