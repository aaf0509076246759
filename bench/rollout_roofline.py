"""The rollout's roofline: the fastest a denoising step can run on a device, from its model FLOPs and
the bytes it must move, against the step time measured here (when `--measure` and the model fits).

Per step of the exact sampler, every row runs the whole sequence (prompt + completion) through the
layers and forms logits for the active block only:
  FLOPs  = 2 * layer params * B * L  +  4 * n_layers * B * L^2 * d_attn  +  2 * d * V * B * block
  bytes  = every weight once (the step reads them all)  +  the activations of one layer kept in HBM
           (B * L * (4 d + 2 F) values, read and written once per layer)
With the dual cache, the block's later steps run only `block` positions against the cached keys and
values (L per layer per row read once more). The roofline time of a step is max(FLOPs / peak,
bytes / bandwidth); "% of roofline" is roofline time / measured time.

    python bench/rollout_roofline.py                      # the table for LLaDA-8B on H100 / H200 peaks
    python bench/rollout_roofline.py --measure --device-peak auto --preset llada-8b --batch 8
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlrl_jax import models, rollout

# Dense bf16 tensor-core peaks and HBM bandwidths from the vendors' data sheets (SXM parts).
DEVICES = {"H100 SXM": (989e12, 3.35e12), "H200 SXM": (989e12, 4.8e12)}


def step_cost(cfg, batch, prompt, gen, block, cached_window: bool, dtype_bytes=2):
    """(FLOPs, bytes) of one denoising step: the full sequence, or (dual cache) just the block."""
    L = prompt + gen
    q_tokens = block if cached_window else L
    D, F, V = cfg.d_model, cfg.mlp_hidden, cfg.vocab_size
    attn_width = cfg.n_heads * cfg.resolved_head_dim
    kv_width = cfg.n_kv_heads * cfg.resolved_head_dim
    layer_params = cfg.n_layers * (D * attn_width * 2 + D * kv_width * 2 + 3 * D * F)
    flops = (2 * layer_params * batch * q_tokens + 4 * cfg.n_layers * batch * q_tokens * L * attn_width
             + 2 * D * V * batch * block)
    weights = (layer_params + 2 * V * D) * dtype_bytes
    activations = 2 * cfg.n_layers * batch * q_tokens * (4 * D + 2 * F) * dtype_bytes
    kv_reads = 2 * cfg.n_layers * batch * L * kv_width * dtype_bytes if cached_window else 0
    return flops, weights + activations + kv_reads


def rollout_plan(cfg, batch, prompt, gen, block, steps, cache, dtype_bytes=2):
    """[((FLOPs, bytes) of one step, number of such steps)] of one rollout: every step full, or (dual
    cache) each block's first step full and the rest windowed."""
    full = step_cost(cfg, batch, prompt, gen, block, False, dtype_bytes)
    if cache == "none":
        return [(full, steps)]
    blocks = gen // block
    return [(full, blocks), (step_cost(cfg, batch, prompt, gen, block, True, dtype_bytes), steps - blocks)]


def roofline_seconds(plan, peak, bandwidth) -> float:
    """The fastest a rollout of `plan` can run on a device of `peak` FLOP/s and `bandwidth` bytes/s."""
    return sum(max(f / peak, b / bandwidth) * n for (f, b), n in plan)


def measure(cfg, batch, prompt, gen, block, steps, cache, repeats=2):
    graphdef, params = models.split(models.init_model(cfg, 0))
    ids = jnp.asarray(np.random.default_rng(0).integers(3, cfg.vocab_size - 1, (batch, prompt)), jnp.int32)
    mask = jnp.ones((batch, prompt), bool)
    settings = rollout.SamplerSettings(gen_length=gen, block_length=block, steps=steps, mask_id=cfg.mask_token_id,
                                       temperature=0.9, cache=cache)

    def run():
        return rollout.generate(graphdef, params, ids, mask, jax.random.key(0), settings).tokens.block_until_ready()

    run()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="llada-8b")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 48])
    ap.add_argument("--prompt", type=int, default=200)
    ap.add_argument("--gen", type=int, default=256)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--measure", action="store_true", help="also time the rollout here (random weights)")
    ap.add_argument("--device-peak", default=None,
                    help="FLOP/s,bytes/s of this device for the measured rows, or 'auto' (H100 if the GPU says so)")
    args = ap.parse_args()
    cfg = models.preset(args.preset, param_dtype=args.dtype, dtype=args.dtype)
    spb = args.steps // (args.gen // args.block)
    devices = dict(DEVICES)
    here = None
    if args.measure:
        kind = jax.devices()[0].device_kind
        if args.device_peak == "auto":
            here = next((v for k, v in DEVICES.items() if k.split()[0] in kind), None)
        elif args.device_peak:
            here = tuple(float(x) for x in args.device_peak.split(","))
        print(f"measuring on {kind} ({jax.devices()[0].platform}), jax {jax.__version__}")
    print(f"{args.preset}: {models.param_count(models.split(models.abstract_model(cfg))[1]) / 1e9:.2f}B params, "
          f"{args.dtype}, prompt {args.prompt} + gen {args.gen}, block {args.block}, {args.steps} steps "
          f"({spb} per block)")
    print("| device | batch | cache | GFLOP/step | GB/step | FLOP/byte | bound | roofline s/rollout "
          "| roofline tok/s | measured s | % of roofline |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for batch in args.batch:
        for cache in ("none", "dual"):
            plan = rollout_plan(cfg, batch, args.prompt, args.gen, args.block, args.steps, cache,
                                jnp.dtype(args.dtype).itemsize)
            flops = sum(f * n for (f, _), n in plan)
            nbytes = sum(b * n for (_, b), n in plan)
            measured = None
            if args.measure:
                measured = measure(cfg, batch, args.prompt, args.gen, args.block, args.steps, cache)
            for name, (peak, bandwidth) in (list(devices.items()) + ([("this device", here)] if here else [])):
                if measured is not None and name != "this device" and here is not None:
                    continue
                roof = roofline_seconds(plan, peak, bandwidth)
                bound = "compute" if flops / nbytes > peak / bandwidth else "memory"
                share = f"{roof / measured:.0%}" if measured is not None and name == "this device" else ""
                print(f"| {name} | {batch} | {cache} | {flops / args.steps / 1e9:.4g} | {nbytes / args.steps / 1e9:.3g} "
                      f"| {flops / nbytes:.0f} | {bound} | {roof:.2f} | {batch * args.gen / roof:.0f} | "
                      f"{'' if measured is None else f'{measured:.2f}'} | {share} |", flush=True)


if __name__ == "__main__":
    main()
