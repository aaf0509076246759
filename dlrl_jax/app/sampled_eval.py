"""The held-out evaluation by sampling (`run.eval_samples`): N completions per held-out record at the
rollout temperature, reported as the solved rate per sample and pass@k with k = algorithm.group_size
(the chance that a group of that size holds a solved completion: the room RL has to learn from).

pass@k is the unbiased estimator of Chen et al. 2021 (eq. 1): with c of n samples correct,
pass@k = 1 - C(n - c, k) / C(n, k), computed as 1 - prod_{i = n-c+1}^{n} (1 - k / i), which never forms
the binomials. (Branch eval-sweep adds the same estimator as dlrl_jax/app/pass_at_k.py with pass@k at
every evaluation; once it is on main this module's estimator should be replaced by it.)"""

from __future__ import annotations

import jax
import numpy as np

from dlrl_jax import rollout
from dlrl_jax.app.evaluation import completions_in_batches
from dlrl_jax.training import loop
from dlrl_jax.training.key_streams import EVAL_STREAM

SAMPLES_STREAM = 0x5A3B  # folded into the evaluation key: the greedy evaluation's and training's draws stay


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one record with `c` of `n` samples correct (1 <= k <= n)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:  # every k of the n hold a correct one
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def sampled_held_out(run: loop.Run, params, records: list[dict], batch_size: int, samples: int, k: int,
                     step: int = 0, stop=lambda: None) -> dict:
    """{"sampled_solved": solved rate per sample, "pass@k": mean pass@k} over `records`, `samples`
    completions each at sampler.temperature (a completion counts as solved when its reward is 1, as the
    greedy evaluation's "solved"). Keys: the evaluation stream of (seed, step) folded with SAMPLES_STREAM."""
    settings = run.sampler(run.cfg.sampler.temperature)
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(run.cfg.seed ^ EVAL_STREAM), step), SAMPLES_STREAM)
    owner = [i for i in range(len(records)) for _ in range(samples)]  # a record's samples side by side
    solved = np.zeros(len(records), np.int64)
    for index, texts in completions_in_batches(
            list(range(len(owner))), batch_size, encode=lambda rows: run.encode([records[owner[r]] for r in rows]),
            generate=lambda ids, mask, batch_key: rollout.generate(run.graphdef, params, ids, mask, batch_key, settings),
            decode=run.decode, key_for=lambda first: jax.random.fold_in(key, first), before_batch=stop):
        rows = [owner[r] for r in index]
        np.add.at(solved, rows, (run.task.score(texts, [records[i] for i in rows]) >= 1.0 - 1e-6).astype(np.int64))
    return {"sampled_solved": float(solved.sum() / (samples * len(records))),
            f"pass@{k}": float(np.mean([pass_at_k(samples, int(c), k) for c in solved]))}
