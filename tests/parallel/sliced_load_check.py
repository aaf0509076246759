"""Run in a fresh process with 8 fake CPU devices: a checkpoint loaded onto a mesh (each shard read
from its own block of the safetensors) equals the plain load, bit for bit, for LLaDA and Dream
(biases) layouts and several meshes. Prints one JSON line."""

import json
import os
import tempfile

os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8"

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from dlrl_jax import checkpoints, models, parallel  # noqa: E402
from dlrl_jax.models.config import ModelConfig  # noqa: E402

from dlrl_jax.models import hf  # noqa: E402

reads = []  # (our name, elements read) of every block taken from the files
_original = hf._read_ours_slice


def _recording(f, key, name, bounds, cfg):
    block = _original(f, key, name, bounds, cfg)
    reads.append((name, block.size))
    return block


hf._read_ours_slice = _recording
facts = {}
for family, bias in (("llada", False), ("dream", True)):
    cfg = ModelConfig(family=family, vocab_size=96, d_model=64, n_layers=3, n_heads=4, n_kv_heads=2, mlp_hidden=96,
                      qkv_bias=bias, mask_token_id=95)
    model = models.init_model(cfg, seed=1)
    graphdef, params = models.split(model)  # biases and norms start constant: make them random too
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(2), len(leaves))
    params = jax.tree.unflatten(treedef, [x + 0.1 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
    path = tempfile.mkdtemp()
    checkpoints.save_pretrained(nnx.merge(graphdef, params), path)
    plain = [np.asarray(x) for x in jax.tree.leaves(models.split(checkpoints.from_pretrained(path))[1])]
    for shape in ((2, 2, 2), (1, 8, 1), (1, 2, 4)):
        mesh = parallel.make_mesh(*shape)
        reads.clear()
        loaded = jax.tree.leaves(models.split(checkpoints.from_pretrained(path, mesh=mesh))[1])
        facts[f"{family} {shape}"] = {
            "equal": all(np.array_equal(a, np.asarray(b)) for a, b in zip(plain, loaded)),
            "sharded": sum(not x.sharding.is_fully_replicated for x in loaded),
            "on_mesh": all(x.sharding.mesh.shape == mesh.shape for x in loaded),
            # the largest block of one layer's MLP weight read at once, as a fraction of that weight
            "w_up_read_fraction": max(n for name, n in reads if name == "w_up") / (cfg.d_model * cfg.mlp_hidden)}
print(json.dumps(facts))
