"""Device mesh (data, fsdp, tensor) and logical-axis sharding rules for parameters and batches.

Every parameter carries `logical_axes` metadata (see models/transformer.py); the rules map each
logical name to a mesh axis. A dimension that the mesh axis does not divide stays replicated, so
tiny test models run on any mesh; the big presets divide cleanly.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from dlrl_jax.parallel.transfer import to_global

AXES = ("data", "fsdp", "tensor")

# logical name -> mesh axis (None: replicated). FSDP shards the embedding dimension of every weight;
# tensor parallelism shards heads, the MLP hidden dimension and the vocabulary.
DEFAULT_RULES: dict[str, str | None] = {
    "layers": None, "norm": None, "head_dim": None,
    "embed": "fsdp", "vocab": "tensor", "q_heads": "tensor", "kv_heads": "tensor", "mlp": "tensor",
    "lora_rank": None,
}
BATCH_AXES = ("data", "fsdp")


class MeshError(ValueError):
    """The requested mesh does not fit the devices; the message says what would."""


def make_mesh(data: int = -1, fsdp: int = 1, tensor: int = 1, devices=None) -> jax.sharding.Mesh:
    """A (data, fsdp, tensor) mesh over all devices; data = -1 takes what the others leave."""
    devices = devices if devices is not None else jax.devices()
    n = len(devices)
    if data == -1:
        if n % (fsdp * tensor):
            raise MeshError(f"fsdp x tensor = {fsdp * tensor} does not divide the {n} devices")
        data = n // (fsdp * tensor)
    if data * fsdp * tensor != n:
        raise MeshError(f"mesh data x fsdp x tensor = {data} x {fsdp} x {tensor} = {data * fsdp * tensor} "
                        f"does not match the {n} devices; use a shape whose product is {n}")
    return jax.sharding.Mesh(np.asarray(devices).reshape(data, fsdp, tensor), AXES)


def _spec(shape, logical_axes, mesh, rules) -> PartitionSpec:
    used, spec = set(), []
    for size, name in zip(shape, logical_axes):
        axis = rules.get(name)
        if axis is None or axis in used or size % mesh.shape[axis]:
            spec.append(None)
        else:
            spec.append(axis)
            used.add(axis)
    return PartitionSpec(*spec)


def param_shardings(state, mesh, rules=None):
    """NamedShardings for an NNX param State (or its abstract version), from `logical_axes` metadata."""
    rules = dict(DEFAULT_RULES, **(rules or {}))

    def one(var):
        axes = var.get_metadata().get("logical_axes")
        if axes is None:
            return NamedSharding(mesh, PartitionSpec())
        return NamedSharding(mesh, _spec(var.shape, axes, mesh, rules))

    return jax.tree.map(one, state, is_leaf=lambda x: hasattr(x, "get_metadata"))


def batch_sharding(mesh, ndim: int, batch_dim: int = 0) -> NamedSharding:
    """Rows split over (data, fsdp), everything else replicated."""
    spec = [None] * ndim
    spec[batch_dim] = BATCH_AXES
    return NamedSharding(mesh, PartitionSpec(*spec))


def shard_rows(tree, mesh, batch_dim: int = 0):
    """Places every array of `tree` with its `batch_dim` split over (data, fsdp); a leaf whose
    `batch_dim` is missing or does not divide over those axes (keys, per-item scalars) is replicated."""
    parts = mesh.shape["data"] * mesh.shape["fsdp"]

    def place(x):
        x = np.asarray(x) if not isinstance(x, jax.Array) else x
        if x.ndim > batch_dim and x.shape[batch_dim] % parts == 0:
            return to_global(x, batch_sharding(mesh, x.ndim, batch_dim))
        return to_global(x, replicated(mesh))

    return jax.tree.map(place, tree)


def replicated(mesh) -> NamedSharding:
    """Whole on every device of the mesh."""
    return NamedSharding(mesh, PartitionSpec())


def onto_mesh(tree, mesh):
    """Leaves already laid out on this mesh stay; any other (e.g. a counter on one device) is
    replicated over it, so jitted steps and checkpoint restores see one consistent device set, and a
    jitted step's outputs (mesh shardings) match its inputs, which is what keeps it from retracing."""
    def place(x):
        if isinstance(x, jax.Array) and isinstance(x.sharding, NamedSharding) and x.sharding.mesh == mesh:
            return x
        return to_global(x, replicated(mesh))

    return jax.tree.map(place, tree)


def like_params_shardings(tree, params_shardings, mesh):
    """Shardings for a pytree that holds params-shaped subtrees (optimizer moments): a leaf whose path
    ends with a parameter's path and has its shape gets that parameter's sharding; the rest (counters)
    are replicated."""
    by_path = {}
    for path, sharding in jax.tree_util.tree_leaves_with_path(params_shardings):
        by_path[jax.tree_util.keystr(path)] = sharding

    def choose(path, leaf):
        key = jax.tree_util.keystr(path)
        for suffix, sharding in by_path.items():
            if key.endswith(suffix) and len(sharding.spec) <= len(getattr(leaf, "shape", ())):
                return sharding
        return replicated(mesh)

    return jax.tree_util.tree_map_with_path(choose, tree)


def place_params(params, mesh, rules=None):
    """`params` (an NNX param State of host arrays, the same on every process) laid out on the mesh by
    their logical axes."""
    leaves, treedef = jax.tree.flatten(params)
    shardings = jax.tree.leaves(param_shardings(params, mesh, rules))
    return jax.tree.unflatten(treedef, [to_global(x, s) for x, s in zip(leaves, shardings)])
