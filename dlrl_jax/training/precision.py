"""Mixed precision as the official trainers have it: what trains is stored and updated in float32
(PEFT keeps LoRA adapters in float32; DeepSpeed's bf16 mode keeps float32 master weights), the
forward and backward run in the model's compute dtype (the projections cast their weights), and
frozen weights (the LoRA base, the reference model) stay in the storage dtype of the checkpoint.

At the papers' learning rates (1e-6 .. 3e-5) most AdamW steps are smaller than bfloat16's spacing
near a weight (~1e-4 at 0.02), so a bfloat16 trainable weight would round most updates away.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlrl_jax.training.update import ParamPartition


def storage_dtypes(params):
    """The dtype of every leaf, to cast trained weights back for a reference copy or an export."""
    return jax.tree.map(lambda x: x.dtype, params)


def master_params(params, partition: ParamPartition | None = None):
    """`params` with every trainable leaf (all leaves without a partition) in float32; the frozen
    leaves are returned as they are (the same arrays, not copies)."""
    if partition is None:
        return jax.tree.map(_float32, params)
    trainable, frozen = partition.split(params)
    return partition.join([_float32(x) for x in trainable], frozen)


def cast_to(params, dtypes):
    """`params` cast leaf by leaf to `dtypes` (a tree of the same structure); new arrays throughout,
    so donating `params` later never touches the result."""
    return jax.tree.map(lambda x, d: x.astype(d) if x.dtype != d else jnp.copy(x), params, dtypes)


def _float32(x):
    return x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) and x.dtype != jnp.float32 else x
