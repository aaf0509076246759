"""Memory of the compiled EGSPO update, from XLA's memory analysis: the tiny demo model (real arrays)
and the LLaDA-8B shape (abstract arrays only: nothing is allocated, the update is only compiled).

    python bench/update_memory.py [--skip-8b]
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp

from dlrl_jax import models
from dlrl_jax.objectives import stepwise
from dlrl_jax.training.optimizer import OptimizerSettings, make_optimizer
from dlrl_jax.training.update import make_update


def abstract_egspo_items(n, mb, prompt, gen, sharding=None):
    """Abstract EGSPO update items: n accumulated items of mb rows; `sharding(ndim)` places them."""
    i32, f32, b = jnp.int32, jnp.float32, jnp.bool_

    def spec(shape, dtype):
        return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding(len(shape)) if sharding else None)
    return {"tokens": spec((n, mb, prompt + gen), i32), "prompt_mask": spec((n, mb, prompt), b),
            "unmask_step": spec((n, mb, gen), i32), "step": spec((n, mb), i32), "valid": spec((n, mb), b),
            **{f: spec((n, mb), f32) for f in ("advantage", "old_logprob", "ref_logprob")}}


def analyse(name, cfg, rows, prompt, gen, steps, k, micro_batches):
    abstract = models.abstract_model(cfg)
    graphdef, params = models.split(abstract)
    tx = make_optimizer(OptimizerSettings())
    opt_state = jax.eval_shape(tx.init, params)
    items = abstract_egspo_items(micro_batches * k, rows // micro_batches, prompt, gen)
    settings = stepwise.StepwiseLossSettings(mask_id=cfg.mask_token_id, tokens_per_step=gen / steps)
    update = make_update(functools.partial(stepwise.stepwise_loss, graphdef, settings=settings, total_rows=rows), tx)
    t = time.perf_counter()
    compiled = update.lower(params, opt_state, items).compile()
    seconds = time.perf_counter() - t
    mem = compiled.memory_analysis()
    gib = 2.0**30
    return (name, models.param_count(params) / 1e9, cfg.param_dtype, cfg.remat, rows, micro_batches, prompt + gen, k,
            mem.argument_size_in_bytes / gib, mem.output_size_in_bytes / gib, mem.temp_size_in_bytes / gib, seconds)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-8b", action="store_true")
    args = parser.parse_args()
    rows = [analyse("tiny demo", models.preset("tiny"), 64, 16, 16, 16, 4, 1)]
    if not args.skip_8b:
        llada = models.preset("llada-8b", remat="full")
        rows.append(analyse("LLaDA-8B", llada, 48, 200, 256, 128, 8, 48))
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; sizes in GiB, one device, full fine-tune, AdamW")
    print("| model | params (B) | dtype | remat | rows | micro-batches | L | K | arguments | outputs | temporaries "
          "| compile s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.3f} | {r[2]} | {r[3]} | {r[4]} | {r[5]} | {r[6]} | {r[7]} | {r[8]:.3f} | "
              f"{r[9]:.3f} | {r[10]:.3f} | {r[11]:.1f} |")


if __name__ == "__main__":
    main()
