"""Rollout throughput: completion tokens/s of `rollout.generate` against the number of steps, for a
tiny and a ~100M-parameter model with random weights, plus the effective model FLOP/s (2 x params x
tokens per forward pass, attention included) against the machine's measured matmul peak.

    python bench/rollout.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlrl_jax import models, rollout


def matmul_peak(n=4096, reps=5) -> float:
    """The best of `reps` timed fp32 n x n matmuls (the machine's practical peak through JAX)."""
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def forward_flops(cfg, batch, length) -> float:
    non_embed = cfg.num_params() - cfg.vocab_size * cfg.d_model * (1 if cfg.tie_embeddings else 2)
    dense = 2 * batch * length * (non_embed + cfg.vocab_size * cfg.d_model)  # + the output head
    attention = 4 * batch * cfg.n_layers * length * length * cfg.n_heads * cfg.resolved_head_dim
    return dense + attention


def bench(name, cfg, batch, prompt, gen, block, steps_list, repeats):
    graphdef, params = models.split(models.init_model(cfg))
    ids = jnp.asarray(np.random.default_rng(0).integers(3, cfg.vocab_size - 1, (batch, prompt)), jnp.int32)
    mask = jnp.ones((batch, prompt), bool)
    rows = []
    for steps in steps_list:
        settings = rollout.SamplerSettings(gen_length=gen, block_length=block, steps=steps, temperature=0.9,
                                           mask_id=cfg.vocab_size - 1)
        t = time.perf_counter()
        rollout.generate(graphdef, params, ids, mask, jax.random.key(0), settings).tokens.block_until_ready()
        compile_s = time.perf_counter() - t
        t = time.perf_counter()
        for r in range(repeats):
            rollout.generate(graphdef, params, ids, mask, jax.random.key(r + 1), settings).tokens.block_until_ready()
        seconds = (time.perf_counter() - t) / repeats
        flops = steps * forward_flops(cfg, batch, prompt + gen)
        rows.append((name, models.param_count(params), batch, prompt, gen, block, steps, compile_s, seconds,
                     batch * gen / seconds, flops / seconds))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="tiny model only")
    args = parser.parse_args()
    peak = matmul_peak()
    tiny = models.preset("tiny")
    mid = models.ModelConfig(family="llada", vocab_size=8192, d_model=768, n_layers=12, n_heads=12, n_kv_heads=12,
                             mlp_hidden=2048, mask_token_id=8191)
    rows = bench("tiny", tiny, 64, 16, 16, 16, [4, 8, 16], 5)
    if not args.quick:
        rows += bench("~100M", mid, 4, 32, 64, 32, [8, 16, 32], 2)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, "
          f"{jax.devices()[0].platform}; measured fp32 matmul peak {peak / 1e9:.0f} GFLOP/s")
    print("| model | params | batch | prompt | gen | block | steps | compile s | s/rollout | tokens/s | "
          "GFLOP/s | % of peak |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, n, b, p, g, bl, s, c, sec, tps, fl in rows:
        print(f"| {name} | {n / 1e6:.1f}M | {b} | {p} | {g} | {bl} | {s} | {c:.1f} | {sec:.3f} | {tps:.0f} | "
              f"{fl / 1e9:.0f} | {100 * fl / peak:.0f}% |")


if __name__ == "__main__":
    main()
