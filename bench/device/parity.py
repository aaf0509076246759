"""Phase parity: the device computes what the CPU computes. The test suite ties the CPU to independent
oracles (transformers for the logits, numpy loops for the sampler, enumeration for the ELBO); this
phase ties the device to the CPU, with the suite's own oracles where they need no PyTorch.

- logits of a LLaDA- and a Dream-layout model (GQA, q/k/v biases, a left-padded row) against the CPU's
  float32 logits of the same weights, in float32 at full matmul precision, in float32 at the default
  precision (TF32 on recent NVIDIA GPUs) and in bfloat16;
- the sampler at temperature 0 in float32: token for token against the suite's numpy loop
  (tests/rollout/test_sampler.py) and against the CPU's tokens;
- the ELBO estimator: unbiased against the exact ELBO by enumeration, and the coupled estimate's
  lower variance (tests/objectives/test_elbo.py).

Tolerances (max |device - CPU float32| over all logits, relative to the largest |logit|):
- float32, full precision: 1e-5. Both sides round to float32 (unit 6e-8); only the order of the sums
  differs, which moves these logits by ~1e-7 relative.
- float32 default precision and bfloat16: 2^-5 (3%). TF32 keeps 10 mantissa bits and bfloat16 7 (unit
  2^-11 and 2^-8): every weight and activation is rounded once per layer, and the errors add over the
  layers' sums. On this model (its random init, logits up to ~0.7) the CPU's bfloat16 logits are 0.5%
  off; a device is reported beside the CPU's bfloat16 (whose compiler runs bf16 dots in float32 and so
  rounds less): a few times the CPU's error is rounding, a wrong kernel or mask is O(1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import common

FULL, REDUCED = 1e-5, 2.0**-5


def _logits_model(family: str):
    from dlrl_jax import models

    cfg = models.preset("tiny", family=family, vocab_size=97, d_model=64, n_layers=2, n_heads=4,
                        n_kv_heads=2 if family == "dream" else 4, mlp_hidden=128, qkv_bias=family == "dream",
                        mask_token_id=96, eos_token_id=95, pad_token_id=0)
    cpu = jax.devices("cpu")[0]
    with jax.default_device(cpu):
        return cfg, models.split(models.init_model(cfg, seed=3))[1]


def _forward(cfg, params, ids, mask, device, dtype, precision):
    from dlrl_jax import models

    cfg = cfg.replace(param_dtype=dtype, dtype=dtype)
    graphdef = models.split(models.abstract_model(cfg))[0]
    params = jax.device_put(jax.tree.map(lambda w: w.astype(dtype), params), device)
    with jax.default_matmul_precision(precision):
        out = jax.jit(models.forward, static_argnums=0)(graphdef, params, jax.device_put(ids, device),
                                                         jax.device_put(mask, device))
    return np.asarray(out, np.float64)


def check_logits():
    cpu, here = jax.devices("cpu")[0], jax.devices()[0]
    rng = np.random.default_rng(5)
    ids = rng.integers(3, 95, (3, 33)).astype(np.int32)
    mask = np.ones(ids.shape, bool)
    mask[1, :7] = False  # a left-padded row
    ids[~mask] = 0
    for family in common.shapes("parity")["families"]:
        cfg, params = _logits_model(family)
        want = _forward(cfg, params, ids, mask, cpu, "float32", "highest")[mask]
        scale = float(np.abs(want).max())
        cases = [("float32, highest precision", here, "float32", "highest", FULL),
                 ("bfloat16", here, "bfloat16", "default", REDUCED)]
        if here.platform != "cpu":  # on the CPU these are the rows above again
            cases += [("float32, default precision", here, "float32", "default", REDUCED),
                      ("bfloat16 on the CPU (baseline)", cpu, "bfloat16", "default", REDUCED)]
        for label, device, dtype, precision, tol in cases:
            def one(label=label, device=device, dtype=dtype, precision=precision, tol=tol):
                got = _forward(cfg, params, ids, mask, device, dtype, precision)[mask]
                rel = float(np.abs(got - want).max()) / scale
                common.emit(check=f"logits {family}: {label}", device=device.platform, value=rel, tolerance=tol,
                            status="ok" if rel <= tol else "fail",
                            note=f"max |logit| {scale:.2f}; max |diff| / max |logit|")
            common.guarded("check", f"logits {family}: {label}", one)


def check_sampler():
    from dlrl_jax import rollout
    from tests.rollout import test_sampler as oracle

    cpu = jax.devices("cpu")[0]
    graphdef, params = oracle.sampler_model()
    ids, mask = oracle._prompts(pad_rows=[(1, 2)])
    for G, block, steps in common.shapes("parity")["sampler_cases"]:
        def one(G=G, block=block, steps=steps):
            settings = rollout.SamplerSettings(gen_length=G, block_length=block, steps=steps, mask_id=oracle.MASK)
            with jax.default_matmul_precision("highest"):
                got = np.asarray(rollout.generate(graphdef, params, ids, mask, jax.random.key(0), settings).tokens)
                want = oracle.reference(graphdef, params, ids, mask, G, block, steps)
                on_cpu = [jax.device_put(x, cpu) for x in (params, ids, mask)]
                cpu_tokens = np.asarray(rollout.generate(graphdef, *on_cpu, jax.random.key(0), settings).tokens)
            loop_diff, cpu_diff = int((got != want).sum()), int((got != cpu_tokens).sum())
            common.emit(check=f"sampler T=0 float32, gen {G} block {block} steps {steps}", value=loop_diff,
                        tolerance=0, status="ok" if loop_diff == 0 and cpu_diff == 0 else "fail",
                        note=f"tokens differing from the numpy loop: {loop_diff}, from the CPU's: {cpu_diff} "
                             f"(of {got.size})")
        common.guarded("check", f"sampler gen {G} block {block} steps {steps}", one)


def check_elbo():
    from tests.objectives import test_elbo as oracle

    _, graphdef, params, prompt, prompt_mask, completion = oracle.elbo_setup()
    with jax.default_matmul_precision("highest"):
        exact = oracle.exact_elbo(graphdef, params, prompt, prompt_mask, completion)
    for stratified in common.shapes("parity")["elbo_stratified"]:
        def one(stratified=stratified):
            variance, worst = {}, 0.0
            with jax.default_matmul_precision("highest"):
                for coupled in (False, True):
                    draws = oracle._draws(graphdef, params, prompt, prompt_mask, completion, coupled, stratified)
                    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
                    worst = max(worst, float(np.max(np.abs(draws.mean(axis=0) - exact) / se)))
                    variance[coupled] = draws.var(axis=0)
            ratio = float(np.max(variance[True] / variance[False]))
            common.emit(check=f"ELBO estimate, {'stratified' if stratified else 'uniform'} counts", value=worst,
                        tolerance=3.0, status="ok" if worst < 3.0 and ratio < 0.8 else "fail",
                        note=f"max |mean - exact| / standard error over {oracle.N_DRAWS} draws; coupled / "
                             f"independent variance {ratio:.2f} (< 0.8)")
        common.guarded("check", f"ELBO {'stratified' if stratified else 'uniform'}", one)


def run():
    check_logits()
    check_sampler()
    check_elbo()


if __name__ == "__main__":
    run()
