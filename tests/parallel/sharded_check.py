"""Run in a fresh process with 8 fake CPU devices: one update of each objective on several meshes,
compared with the same update on one device. Prints one JSON line of max relative differences.

    python -m tests.parallel.sharded_check 8,1,1 2,2,2    # the meshes (data, fsdp, tensor) to run"""

import functools
import json
import os
import sys

os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from dlrl_jax import models, parallel  # noqa: E402
from dlrl_jax.objectives import diffu_grpo, espo, stepwise  # noqa: E402
import optax  # noqa: E402

from dlrl_jax.training.update import make_update  # noqa: E402

MASK, V, B, P, G, T, K = 31, 32, 16, 4, 8, 4, 2


def problems(graphdef):
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, MASK, (B, P + G)).astype(np.int32)
    prompt_mask = np.ones((B, P), bool)
    prompt_mask[3, :2] = False
    unmask_step = np.stack([rng.permutation(np.repeat(np.arange(T), G // T)) for _ in range(B)]).astype(np.int32)
    steps = np.stack([rng.permutation(T)[:K] for _ in range(B)]).astype(np.int32)
    f32 = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    egspo_items = stepwise.column_items(tokens, prompt_mask, unmask_step, steps, np.ones((B, K), bool), f32(B, K),
                                        -3 + f32(B, K), -3 + f32(B, K), micro_batches=2)
    egspo_loss = functools.partial(stepwise.stepwise_loss, graphdef, total_rows=B,
                                   settings=stepwise.StepwiseLossSettings(mask_id=MASK, tokens_per_step=G / T))
    base = {"prompt_ids": tokens[:, :P], "prompt_mask": prompt_mask, "completion_ids": tokens[:, P:]}
    espo_item = dict(base, advantage=f32(B), old_elbo=-20 + f32(B), ref_elbo=-20 + f32(B),
                     key=jax.random.key_data(jax.random.key(1)))
    espo_loss = functools.partial(
        lambda settings, p, item: espo.espo_loss(graphdef, p, dict(item, key=jax.random.wrap_key_data(item["key"])),
                                                 settings, B), espo.ESPOSettings(mask_id=MASK, num_samples=1))
    grpo_item = dict(base, completion_mask=np.ones((B, G), bool), advantage=f32(B), old_logprob=-3 + f32(B, G),
                     ref_logprob=-3 + f32(B, G), key=jax.random.key_data(jax.random.key(2)))
    grpo_loss = functools.partial(
        lambda settings, p, item: diffu_grpo.diffu_grpo_loss(
            graphdef, p, dict(item, key=jax.random.wrap_key_data(item["key"])), settings, B),
        diffu_grpo.DiffuGRPOSettings(mask_id=MASK))
    one = lambda item: jax.tree.map(lambda x: np.asarray(x)[None], item)  # noqa: E731
    return {"egspo": (egspo_loss, egspo_items), "espo": (espo_loss, one(espo_item)),
            "diffu_grpo": (grpo_loss, one(grpo_item))}


def main(meshes):
    cfg = models.preset("tiny", vocab_size=V, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_hidden=64,
                        mask_token_id=MASK)
    graphdef, params = models.split(models.init_model(cfg, seed=3))
    # Plain SGD: Adam's first step is lr * sign(g), which turns reduction-order noise in near-zero
    # gradient entries into lr-sized parameter differences; SGD keeps the comparison linear.
    tx = optax.sgd(0.1)
    out = {}
    for name, (loss_fn, items) in problems(graphdef).items():
        update = make_update(loss_fn, tx)
        ref_params, _, ref_m = update(jax.tree.map(jnp.copy, params), tx.init(params), items)
        ref_leaves = [np.asarray(x) for x in jax.tree.leaves(ref_params)]
        for shape in meshes:
            mesh = parallel.make_mesh(*shape)
            shardings = parallel.param_shardings(params, mesh)
            p = jax.device_put(jax.tree.map(jnp.copy, params), shardings)
            batch_dim = 1  # items stack [n_items, rows, ...]
            sharded_items = jax.tree.map(
                lambda x: jax.device_put(x, parallel.batch_sharding(mesh, np.ndim(x), batch_dim))
                if np.ndim(x) > 1 and np.shape(x)[1] in (B, B // 2) else jax.device_put(x), items)
            with jax.set_mesh(mesh):  # as training runs: activations pinned to rows (constrain_rows)
                new_p, _, m = update(p, tx.init(p), sharded_items)
            diff = max(float(np.max(np.abs(np.asarray(a) - b)) / (np.max(np.abs(b)) + 1e-12))
                       for a, b in zip(jax.tree.leaves(new_p), ref_leaves))
            loss_diff = abs(float(m["loss"]) - float(ref_m["loss"])) / (abs(float(ref_m["loss"])) + 1e-12)
            out[f"{name} {shape}"] = {"params": diff, "loss": loss_diff,
                                      "sharded": any(not s.is_fully_replicated for s in jax.tree.leaves(shardings))}
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main([tuple(int(n) for n in arg.split(",")) for arg in sys.argv[1:]]))
