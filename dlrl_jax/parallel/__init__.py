"""Sharding: a (data, fsdp, tensor) mesh and logical-axis rules; the same jitted code on 1..N devices."""

from dlrl_jax.parallel.mesh import (DEFAULT_RULES, MeshError, batch_sharding, like_params_shardings, make_mesh,
                                    onto_mesh, param_shardings, place_params, replicated, shard_rows)

__all__ = ["DEFAULT_RULES", "MeshError", "batch_sharding", "like_params_shardings", "make_mesh", "onto_mesh",
           "param_shardings", "place_params", "replicated", "shard_rows"]
