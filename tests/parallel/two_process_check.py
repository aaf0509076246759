"""One EGSPO update over a (data 8) mesh built from 2 processes x 4 CPU devices (jax.distributed on
localhost), or from 1 process x 8 devices. Each process feeds its own rows. Prints the result."""

import functools
import json
import os
import sys

import numpy as np


def main(mode: str, port: str, process_id: int):
    import jax
    import jax.numpy as jnp
    import optax

    from dlrl_jax import models, parallel
    from dlrl_jax.objectives import stepwise
    from dlrl_jax.parallel import distributed
    from dlrl_jax.training.update import make_update

    if mode == "multi":
        distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process_id)
    assert len(jax.devices()) == 8, jax.devices()
    MASK, B, P, G, T, K = 31, 16, 4, 8, 4, 2
    cfg = models.preset("tiny", vocab_size=32, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_hidden=64,
                        mask_token_id=MASK)
    graphdef, params = models.split(models.init_model(cfg, seed=3))
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, MASK, (B, P + G)).astype(np.int32)
    prompt_mask = np.ones((B, P), bool)
    unmask_step = np.stack([rng.permutation(np.repeat(np.arange(T), G // T)) for _ in range(B)]).astype(np.int32)
    steps = np.stack([rng.permutation(T)[:K] for _ in range(B)]).astype(np.int32)
    adv = rng.normal(size=(B, K)).astype(np.float32)
    items = stepwise.column_items(tokens, prompt_mask, unmask_step, steps, np.ones((B, K), bool), adv,
                                  np.full((B, K), -3.0, np.float32), np.full((B, K), -3.0, np.float32))
    items = jax.tree.map(np.asarray, items)
    mesh = parallel.make_mesh(8, 1, 1)
    # Each process holds its own half of the rows (axis 1 of the [items, rows, ...] stack).
    half = B // jax.process_count()
    lo = jax.process_index() * half
    local = jax.tree.map(lambda x: x[:, lo:lo + half], items)
    global_items = jax.tree.map(lambda x: distributed.global_batch(x, mesh, batch_dim=1), local)
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    params = jax.device_put(params, replicated)
    loss_fn = functools.partial(stepwise.stepwise_loss, graphdef, total_rows=B,
                                settings=stepwise.StepwiseLossSettings(mask_id=MASK, tokens_per_step=G / T))
    tx = optax.sgd(0.1)
    update = make_update(loss_fn, tx)
    new_params, _, m = update(params, tx.init(params), global_items)
    checksum = float(sum(jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(new_params)))
    if distributed.is_lead_process():
        print(json.dumps({"loss": float(m["loss"]), "checksum": checksum, "processes": jax.process_count()}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "0", int(sys.argv[3]) if len(sys.argv) > 3 else 0)
