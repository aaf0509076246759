"""Update step time and model FLOPs utilisation of each algorithm's jitted update (gradient
accumulation + AdamW), for the tiny demo model and a ~100M-parameter Llama-shaped model with random
weights, against the machine's measured matmul peak.

Model FLOPs per forward+backward pass = 3 x the forward FLOPs of the whole sequence (2 x parameters x
tokens, output head over every position, attention included), so computing logits only where the
objective needs them counts as speed, as in bench/rollout.py.

    python bench/update_mfu.py [--skip-100m]
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from rollout import forward_flops, matmul_peak  # bench/rollout.py

from dlrl_jax import models
from dlrl_jax.objectives import diffu_grpo, espo, sft, stepwise
from dlrl_jax.training.optimizer import OptimizerSettings, make_optimizer
from dlrl_jax.training.update import make_update


def timed(update, params, opt_state, items, repeats):
    params, opt_state, m = update(params, opt_state, items)  # compile
    jax.block_until_ready(m)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        params, opt_state, m = update(params, opt_state, items)
        jax.block_until_ready(m)
        best = min(best, time.perf_counter() - t)
    return best, params, opt_state


def update_cases(cfg, graphdef, B, P, G, T, K, M, micro_batches=1):
    """[(label, forward+backward passes per row, stacked items, loss)] for random data of B rows of
    prompt P + completion G (T denoising steps): EGSPO (K selected-step columns), ESPO (M coupled
    samples, with and without remat), diffu-GRPO and SFT, each split into `micro_batches` items."""
    mask = cfg.mask_token_id
    rng = np.random.default_rng(0)
    tokens = rng.integers(7, cfg.vocab_size - 1, (B, P + G)).astype(np.int32)  # never the mask id
    prompt_mask = np.ones((B, P), bool)
    unmask = np.stack([rng.permutation(np.repeat(np.arange(T), G // T)) for _ in range(B)]).astype(np.int32)
    f = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    key = jax.random.key_data(jax.random.key(0))
    base = {"prompt_ids": tokens[:, :P], "prompt_mask": prompt_mask, "completion_ids": tokens[:, P:]}

    def split(item):  # [B, ...] -> [micro_batches, B / micro_batches, ...]; one (the same) key per item
        rows = {k: jnp.asarray(v).reshape(micro_batches, B // micro_batches, *v.shape[1:])
                for k, v in item.items() if k != "key"}
        return dict(rows, key=jnp.broadcast_to(key, (micro_batches, *key.shape))) if "key" in item else rows

    cases = []
    steps = np.stack([rng.permutation(T)[:K] for _ in range(B)]).astype(np.int32)
    cases.append((f"egspo K={K}", K, stepwise.column_items(
        tokens, prompt_mask, unmask, steps, np.ones((B, K), bool), f(B, K), -2 + f(B, K), -2 + f(B, K),
        micro_batches=micro_batches),
        functools.partial(stepwise.stepwise_loss, graphdef, total_rows=B,
                          settings=stepwise.StepwiseLossSettings(mask_id=mask, tokens_per_step=G / T))))
    for remat in (True, False):  # algorithm.elbo_remat: memory of one pass vs no recomputation
        espo_settings = espo.ESPOSettings(mask_id=mask, num_samples=M, coupled=True, remat=remat)
        cases.append((f"espo M={M} coupled{'' if remat else ', no remat'}", 2 * M,
                      split(dict(base, advantage=f(B), old_elbo=np.full(B, -30.0, np.float32),
                                 ref_elbo=np.full(B, -30.0, np.float32), key=key)),
                      lambda p, it, s=espo_settings: espo.espo_loss(
                          graphdef, p, dict(it, key=jax.random.wrap_key_data(it["key"])), s, B)))
    grpo_settings = diffu_grpo.DiffuGRPOSettings(mask_id=mask)
    cases.append(("diffu_grpo", 1,
                  split(dict(base, completion_mask=np.ones((B, G), bool), advantage=f(B), old_logprob=-2 + f(B, G),
                             ref_logprob=-2 + f(B, G), key=key)),
                  lambda p, it: diffu_grpo.diffu_grpo_loss(graphdef, p, dict(it, key=jax.random.wrap_key_data(it["key"])),
                                                           grpo_settings, B)))
    cases.append(("sft", 1, split(dict(base, completion_mask=np.ones((B, G), bool), key=key)),
                  lambda p, it: sft.sft_loss(graphdef, p, it, jax.random.wrap_key_data(it["key"]), mask_id=mask,
                                             total_rows=B)))
    return cases


def bench(name, cfg, B, P, G, T, K, M, repeats):
    graphdef, params = models.split(models.init_model(cfg))
    tx = make_optimizer(OptimizerSettings())
    opt_state = tx.init(params)
    rows = []
    for label, passes, items, loss in update_cases(cfg, graphdef, B, P, G, T, K, M):
        seconds, params, opt_state = timed(make_update(loss, tx), params, opt_state, items, repeats)
        flops = passes * 3 * forward_flops(cfg, B, P + G)
        rows.append((name, models.param_count(params), label, passes, B, P + G, seconds, flops / seconds))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-100m", action="store_true")
    args = ap.parse_args()
    peak = matmul_peak()
    rows = bench("tiny", models.preset("tiny"), 64, 16, 16, 16, 4, 2, 5)
    if not args.skip_100m:
        cfg = models.preset("tiny", vocab_size=32000, d_model=768, n_layers=12, n_heads=12, n_kv_heads=12,
                            mlp_hidden=2048, mask_token_id=31999)
        rows += bench("~100M", cfg, 8, 64, 64, 32, 4, 2, 2)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; measured matmul peak {peak / 1e9:.0f} GFLOP/s")
    print("| model | params | update | fwd+bwd passes | rows | tokens | s / update | GFLOP/s | MFU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, n, label, passes, B, L, seconds, flops in rows:
        print(f"| {name} | {n / 1e6:.1f}M | {label} | {passes} | {B} | {L} | {seconds:.3f} | {flops / 1e9:.0f} | "
              f"{flops / peak:.0%} |")


if __name__ == "__main__":
    main()
