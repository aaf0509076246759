"""The RL objectives as the loop sees them: a registry of small modules of pure functions.

    spec = ALGORITHMS[cfg.algorithm.name]          # an AlgorithmSpec
    functions = spec.make(context)                 # an Algorithm: pure functions of this run

An `Algorithm` is what one iteration needs after the rewards, all of it traceable (the loop runs it
inside ONE jitted function, `training.iteration.Iteration`):

- `loss(params, item) -> (loss, metric sums)`: one update item's loss, already divided by the whole
  batch (items add up to the objective).
- `prepare(params, ref_params, batch, reward_B, selection, update_index, k, seed=None) -> (items,
  metrics)`: the
  advantages, the old-policy and reference terms (taken before any of the iteration's optimizer
  steps) and the items of every optimizer step, stacked [optimizer steps, items per step, ...] (a
  typed item struct of `training.items`); `update_index` = iteration x mu (traced) seeds the mask and
  dropout draws, so a resumed run draws the same; `seed` (default context.seed) may be traced (the vmapped
  seeds of app/seeded.py share these functions).
- `select(key, batch, k) -> Selection` (EGSPO only): which denoising steps to train on. EGSPO-SA
  scores the greedy completions of the selected steps on the host, so the loop runs `select` first
  (its own small jitted call), decodes and scores, and hands the `Selection` to the iteration.
- `host_k(batch) -> K` (adaptive selection only): K from the host's entropies (K is a static shape).

Adding an objective is one module with a `make(context) -> Algorithm` (and, if it has settings of its
own, a frozen dataclass of them named in its spec) and one line in ALGORITHMS (wd1.py is such a
module; tests/training/test_registered_objective.py registers one with settings from outside).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from dlrl_jax.training.algorithms import sequence, stepwise, wd1
from dlrl_jax.training.algorithms.common import Algorithm, Selection, reference_model
from dlrl_jax.training.algorithms.stepwise import official_column_order


@dataclasses.dataclass(frozen=True)
class AlgorithmSpec:
    """make(context) -> Algorithm; summary: one line for listings; settings: None, or the objective's
    own frozen dataclass of settings (every field with a default): the config's `algorithm.settings`
    mapping is validated into it (one-line errors naming `algorithm.settings.<field>`), and `make`
    reads it as `context.algorithm.settings`."""

    make: Callable
    summary: str
    settings: type | None = None


ALGORITHMS: dict[str, AlgorithmSpec] = {
    "egspo": AlgorithmSpec(stepwise.make, "EGSPO: clipped stepwise policy gradient on the top-K entropy steps"),
    "egspo_sa": AlgorithmSpec(stepwise.make, "EGSPO-SA: EGSPO with greedy-completion step advantages"),
    "espo": AlgorithmSpec(sequence.make_espo, "ESPO: sequence-level clipped objective with the ELBO as likelihood"),
    "diffu_grpo": AlgorithmSpec(sequence.make_diffu_grpo, "diffu-GRPO (d1): one-step token log-probs, token-level clipping"),
    "wd1": AlgorithmSpec(wd1.make, "wd1: ratio-free group-softmax weighted log-likelihood"),
}

__all__ = ["ALGORITHMS", "Algorithm", "AlgorithmSpec", "Selection", "official_column_order", "reference_model"]
