"""Update step time on the tiny demo model against the work knobs: EGSPO's K selected steps and ESPO's
M ELBO samples (coupled: two passes per sample). Expected linear in both.

    python bench/update_time.py
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlrl_jax import models
from dlrl_jax.objectives import espo, stepwise
from dlrl_jax.training.optimizer import OptimizerSettings, make_optimizer
from dlrl_jax.training.update import make_update

B, P, G, T = 64, 16, 16, 16


def timed(update, params, opt_state, items, repeats=5):
    params, opt_state, m = update(params, opt_state, items)
    jax.block_until_ready(m)
    t = time.perf_counter()
    for _ in range(repeats):
        params, opt_state, m = update(params, opt_state, items)
    jax.block_until_ready(m)
    return (time.perf_counter() - t) / repeats, params, opt_state


def main():
    cfg = models.preset("tiny")
    mask = cfg.mask_token_id
    graphdef, params = models.split(models.init_model(cfg))
    tx = make_optimizer(OptimizerSettings())
    opt_state = tx.init(params)
    rng = np.random.default_rng(0)
    tokens = rng.integers(7, 17, (B, P + G)).astype(np.int32)
    prompt_mask = np.ones((B, P), bool)
    unmask = np.stack([rng.permutation(T) for _ in range(B)]).astype(np.int32)
    rows = []
    for k in (1, 2, 4, 8):
        steps = np.stack([rng.permutation(T)[:k] for _ in range(B)]).astype(np.int32)
        f = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
        items = stepwise.column_items(tokens, prompt_mask, unmask, steps, np.ones((B, k), bool), f(B, k),
                                      -2 + f(B, k), -2 + f(B, k))
        loss = functools.partial(stepwise.stepwise_loss, graphdef, total_rows=B,
                                 settings=stepwise.StepwiseLossSettings(mask_id=mask, tokens_per_step=G / T))
        seconds, params, opt_state = timed(make_update(loss, tx), params, opt_state, items)
        rows.append(("egspo", f"K={k}", k, seconds))
    for coupled in (False, True):
        for m in (1, 2, 4):
            settings = espo.ESPOSettings(mask_id=mask, num_samples=m, coupled=coupled)
            item = {"prompt_ids": tokens[:, :P], "prompt_mask": prompt_mask, "completion_ids": tokens[:, P:],
                    "advantage": rng.normal(size=B).astype(np.float32),
                    "old_elbo": np.full(B, -30.0, np.float32), "ref_elbo": np.full(B, -30.0, np.float32),
                    "key": jax.random.key_data(jax.random.key(0))}

            def loss(p, it, settings=settings):
                return espo.espo_loss(graphdef, p, dict(it, key=jax.random.wrap_key_data(it["key"])), settings, B)
            items = jax.tree.map(lambda x: jnp.asarray(x)[None], item)
            seconds, params, opt_state = timed(make_update(loss, tx), params, opt_state, items)
            rows.append(("espo", f"M={m} {'coupled' if coupled else 'single'}", m * (2 if coupled else 1), seconds))
    print(f"tiny model ({models.param_count(params) / 1e6:.1f}M), {B} rows, prompt {P}, completion {G}; "
          f"jax {jax.__version__} on {jax.devices()[0].platform}")
    print("| objective | setting | forward+backward passes | s / update | s / pass |")
    print("|---|---|---|---|---|")
    for name, setting, passes, seconds in rows:
        print(f"| {name} | {setting} | {passes} | {seconds:.3f} | {seconds / passes:.3f} |")


if __name__ == "__main__":
    main()
