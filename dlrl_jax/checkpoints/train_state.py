"""Orbax checkpoints of the training state: a pytree of arrays (params, optimizer state, reference
params, RNG key data) plus JSON metadata (iteration, data-iterator state, summary so far, config).

Saves are asynchronous (Orbax's CheckpointManager: arrays are copied off the device before `save`
returns, then written in the background) and keep the last N. A save interrupted half-way never
replaces the previous finished one: Orbax writes into a temporary folder and commits a step by an
atomic rename, and `latest_step` only sees committed steps.

Restoring takes abstract targets (`jax.ShapeDtypeStruct`s with shardings), so a checkpoint written on
one mesh restores onto another: each array is read straight into the target sharding.
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


def abstract_like(tree):
    """ShapeDtypeStructs (with shardings, for concrete arrays) of a pytree of arrays."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class TrainStateCheckpointer:
    def __init__(self, directory: str, max_to_keep: int = 3):
        self.directory = os.path.abspath(directory)
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

    def save(self, step: int, state, meta: dict | None = None) -> None:
        """Starts saving `state` (a pytree of arrays) and `meta` (JSON) as `step`; returns once the arrays
        are copied, so the caller may donate or overwrite them."""
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta or {})))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def restore(self, step: int, target):
        """(state, meta) of `step`, the state laid out as `target` (abstract or concrete arrays) says."""
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_like(target)), meta=ocp.args.JsonRestore()))
        return restored["state"], dict(restored["meta"] or {})

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
