"""Orbax checkpoints of the training state: params, optimizer state, step and RNG key.

Saves are asynchronous (Orbax's CheckpointManager) and keep the last N; a save interrupted half-way
never replaces the previous finished one, because Orbax commits a step by an atomic rename.
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class TrainStateCheckpointer:
    def __init__(self, directory: str, max_to_keep: int = 3):
        self.manager = ocp.CheckpointManager(
            os.path.abspath(directory), options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

    def save(self, step: int, params, opt_state, key) -> None:
        state = {"params": params, "opt_state": opt_state, "key": jax.random.key_data(key)}
        self.manager.save(step, args=ocp.args.StandardSave(state))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, step: int, params_like, opt_state_like, key_like):
        """Restores onto the shapes and shardings of the given (abstract or concrete) targets."""
        target = {"params": params_like, "opt_state": opt_state_like, "key": jax.random.key_data(key_like)}
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        state = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        return state["params"], state["opt_state"], jax.random.wrap_key_data(state["key"])

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
