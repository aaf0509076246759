"""Run in a fresh process with 8 fake CPU devices: a QLoRA (NF4 base) tiny model laid out on a
(2, 2, 2) mesh, its forward and one SFT update there against the same on one device. Prints one JSON
line of facts for tests/models/test_qlora.py to check."""

import json
import os

os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from dlrl_jax import models, parallel  # noqa: E402
from dlrl_jax.models.lora import LoRASettings, add_lora, trainable_mask  # noqa: E402
from dlrl_jax.models.quantize import quantize_base  # noqa: E402
from dlrl_jax.objectives.sft import sft_loss  # noqa: E402
from dlrl_jax.training.optimizer import OptimizerSettings, make_optimizer  # noqa: E402
from dlrl_jax.training.update import ParamPartition, init_opt_state, make_update  # noqa: E402

cfg = models.preset("tiny")
model = add_lora(quantize_base(models.init_model(cfg, seed=0), "nf4"), LoRASettings(rank=4, alpha=8.0), seed=1)
graphdef, params = models.split(model)
ids = jax.random.randint(jax.random.key(1), (8, 24), 3, cfg.vocab_size)
rows = 8
item = {"prompt_ids": ids[None, :, :8], "prompt_mask": jnp.ones((1, rows, 8), bool),
        "completion_ids": ids[None, :, 8:], "completion_mask": jnp.ones((1, rows, 16), bool),
        "key": jax.random.key(5)[None]}
tx = make_optimizer(OptimizerSettings(learning_rate=1e-2, warmup_steps=0, weight_decay=0.0, grad_clip=1.0))


def loss_fn(p, it):
    return sft_loss(graphdef, p, it, it["key"], mask_id=cfg.mask_token_id, total_rows=rows)


def train_once(params, mesh):
    partition = ParamPartition(params, trainable_mask(params))
    opt_state = parallel.onto_mesh(init_opt_state(tx, params, partition), mesh)
    placed = dict(parallel.shard_rows({k: v for k, v in item.items() if k != "key"}, mesh, batch_dim=1),
                  key=parallel.onto_mesh(item["key"], mesh))
    return make_update(loss_fn, tx, partition)(params, opt_state, placed)[0]


def host(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


before = host(params)  # (the updates donate their inputs)
one = parallel.make_mesh(1, 1, 1, devices=jax.devices()[:1])
mesh = parallel.make_mesh(2, 2, 2)
facts = {"devices": jax.device_count()}
single = parallel.place_params(params, one)
sharded = parallel.place_params(params, mesh)
facts["wq_spec"] = list(sharded["layers"]["wq"].value.sharding.spec)
facts["wq_scale_spec"] = list(sharded["layers"]["wq_scale"].value.sharding.spec)
with jax.set_mesh(one):
    logits_one = np.asarray(jax.jit(models.forward, static_argnums=0)(graphdef, single, ids))
    trained_one = train_once(single, one)
with jax.set_mesh(mesh):
    logits_mesh = np.asarray(jax.jit(models.forward, static_argnums=0)(graphdef, sharded, ids))
    trained_mesh = train_once(sharded, mesh)
facts["logits_max_diff"] = float(np.abs(logits_one - logits_mesh).max())
mask = jax.tree.leaves(trainable_mask(params))
after_one, after_mesh = host(trained_one), host(trained_mesh)
facts["base_unchanged"] = all(np.array_equal(a, b) for a, b, m in zip(before, after_mesh, mask) if not m)
# (one step from B = 0 moves only the B factors: A's gradient is x^T (g B^T) = 0)
facts["adapters_changed"] = any(not np.array_equal(a, b) for a, b, m in zip(before, after_mesh, mask) if m)
facts["adapter_max_diff"] = max(float(np.abs(a - b).max()) for a, b, m in zip(after_one, after_mesh, mask) if m)
print(json.dumps(facts))
