"""Arrays between this host and the global mesh: gathering a value to the host, laying a host value out
with a sharding, and which process leads. Nothing here depends on the rest of the package, so the mesh
helpers and the multi-host start-up can both build on it."""

from __future__ import annotations

import jax
import numpy as np


def is_lead_process() -> bool:
    """Process 0 writes logs, metrics and checkpoint metadata."""
    return jax.process_index() == 0


def to_host(x) -> np.ndarray:
    """The whole value of `x` as a numpy array on this host, gathering it from the other processes
    when it is spread over devices this process cannot address."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def to_global(value, sharding):
    """`value` laid out with `sharding`. A host value (numpy, or an array on one device) must be the
    same on every process; each process then fills the shards its devices hold. An array that is
    already global is resharded."""
    if isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(to_global(jax.random.key_data(value), sharding))
    if isinstance(value, jax.Array) and not value.is_fully_addressable:
        return jax.device_put(value, sharding)
    if jax.process_count() == 1:
        return jax.device_put(value, sharding)
    host = np.asarray(value)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
