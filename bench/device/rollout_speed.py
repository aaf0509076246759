"""Phase rollout: the exact sampler (no KV cache, as the trainers sample) of a model with random weights
at the papers' decoding shapes, as completion tokens/s and as a share of bench/rollout_roofline.py's
roofline for this device. Compilation (ahead of time) is timed apart from the one timed rollout; a
batch whose rollout would not finish before the phase's deadline (from the previous batch's time) is
skipped with that reason."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from rollout_roofline import rollout_plan, roofline_seconds  # bench/rollout_roofline.py

import common


def run():
    from dlrl_jax import models, rollout

    s = common.shapes("rollout")
    cfg = models.preset(s["preset"], param_dtype=s["dtype"], dtype=s["dtype"])
    peak, bandwidth, source = common.device_peaks()
    t = time.perf_counter()
    graphdef, params = models.split(models.init_model(cfg, 0))
    jax.block_until_ready(params)
    init_s = time.perf_counter() - t
    settings = rollout.SamplerSettings(gen_length=s["gen"], block_length=s["block"], steps=s["steps"],
                                       mask_id=cfg.mask_token_id, temperature=0.9, noise_dtype="bfloat16")
    generate = jax.jit(lambda p, ids, mask, key: rollout.generate(graphdef, p, ids, mask, key, settings).tokens)
    previous = None  # (batch, compile s, run s) of the last batch measured
    for batch in s["batches"]:
        name = f"{s['preset']} {s['dtype']}, batch {batch}"
        if previous is not None:
            b0, compile0, run0 = previous
            needed = compile0 + run0 * batch / b0  # a compute-bound rollout scales with the rows
            if needed > common.remaining() - 10:
                common.skip("case", name, f"needs ~{needed:.0f} s (from batch {b0}), {common.remaining():.0f} s left")
                continue

        def one(batch=batch, name=name):
            nonlocal previous
            ids = jnp.asarray(np.random.default_rng(0).integers(3, cfg.vocab_size - 1, (batch, s["prompt"])), jnp.int32)
            mask = jnp.ones((batch, s["prompt"]), bool)
            t = time.perf_counter()
            compiled = generate.lower(params, ids, mask, jax.random.key(0)).compile()
            compile_s = time.perf_counter() - t
            t = time.perf_counter()
            tokens = np.asarray(compiled(params, ids, mask, jax.random.key(1)))
            seconds = time.perf_counter() - t
            assert (tokens[:, s["prompt"]:] != cfg.mask_token_id).all(), "the rollout left masked positions"
            plan = rollout_plan(cfg, batch, s["prompt"], s["gen"], s["block"], s["steps"], "none",
                                jnp.dtype(s["dtype"]).itemsize)
            roof = roofline_seconds(plan, peak, bandwidth)
            previous = (batch, compile_s, seconds)
            common.emit(case=name, params_B=models.param_count(params) / 1e9, prompt=s["prompt"], gen=s["gen"],
                        block=s["block"], steps=s["steps"], init_s=init_s, compile_s=compile_s, rollout_s=seconds,
                        tokens_per_s=batch * s["gen"] / seconds, roofline_s=roof, roofline_fraction=roof / seconds,
                        peak_memory_gib=common.peak_memory_gib(), note=f"roofline peaks: {source}")
        common.guarded("case", name, one)


if __name__ == "__main__":
    run()
