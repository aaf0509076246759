"""What an RL run carries from one iteration to the next, as one pytree (`TrainState`), and what stays
fixed for the whole run (`Context`).

Every jitted step of the engine is a function of (state, inputs) -> (state, outputs): keys come from
`state.key` (split inside the jitted functions), counters are the state's own, and the placement of
every array is decided once, by the shardings of the state the run starts from (`state_shardings`).
A checkpoint is the state's tree (`to_tree` / `from_tree`) plus the data iterator's position (JSON).

Shapes: scalars are int32 arrays on the mesh (replicated), `key` is raw key data (uint32 [2] for the
default threefry keys), `params` / `ref_params` the NNX parameter states.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from flax import struct

from dlrl_jax.parallel.mesh import replicated
from dlrl_jax.parallel.transfer import to_global, to_host

# meta["state_layout"] of checkpoints that hold the counters in the tree; older ones (no such field)
# hold params, opt_state, key (and ref_params) only, with the counters in the JSON meta.
STATE_LAYOUT = 2


@struct.dataclass
class TrainState:
    """params: the policy's parameters (trainable leaves in float32, `precision.master_params`).
    opt_state: the optimizer's state of what trains (the LoRA factors only, with adapters).
    ref_params: the reference policy's parameters, or None with LoRA (the reference is then the base
      itself, the policy's parameters with the adapter off: nothing to store).
    key: raw key data of the run's key; the rollout and EGSPO's step selection split it.
    iteration: RL iterations done, int32 []. optimizer_steps: optimizer steps done, int32 [] (for
      algorithm.ref_sync_every)."""

    params: Any
    opt_state: Any
    ref_params: Any
    key: jax.Array
    iteration: jax.Array
    optimizer_steps: jax.Array

    @classmethod
    def create(cls, params, opt_state, ref_params, key, mesh, iteration: int = 0, optimizer_steps: int = 0):
        """A state on `mesh`: the key (a typed key or raw data) and the counters replicated."""
        if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
            key = jax.random.key_data(key)
        everywhere = replicated(mesh)
        return cls(params=params, opt_state=opt_state, ref_params=ref_params, key=to_global(key, everywhere),
                   iteration=to_global(np.int32(iteration), everywhere),
                   optimizer_steps=to_global(np.int32(optimizer_steps), everywhere))

    def to_tree(self) -> dict:
        """The checkpoint's tree of arrays (ref_params left out when it is None)."""
        tree = {"params": self.params, "opt_state": self.opt_state, "key": self.key, "iteration": self.iteration,
                "optimizer_steps": self.optimizer_steps}
        if self.ref_params is not None:
            tree["ref_params"] = self.ref_params
        return tree

    def from_tree(self, tree: dict, meta: dict) -> "TrainState":
        """This state with the restored arrays of `tree` (its layout as `checkpoint_target` gave it); the
        counters of a checkpoint written before STATE_LAYOUT come from its meta."""
        counters = {"iteration": tree["iteration"], "optimizer_steps": tree["optimizer_steps"]} \
            if "iteration" in tree else {
                "iteration": to_global(np.int32(meta["iteration"]), self.iteration.sharding),
                "optimizer_steps": to_global(np.int32(meta.get("optimizer_steps", 0)), self.optimizer_steps.sharding)}
        return self.replace(params=tree["params"], opt_state=tree["opt_state"], key=tree["key"],
                            ref_params=tree["ref_params"] if self.ref_params is not None else None, **counters)

    def checkpoint_target(self, meta: dict) -> dict:
        """The tree to restore a checkpoint with `meta` into (the layout it was written with)."""
        tree = self.to_tree()
        if meta.get("state_layout", 1) < STATE_LAYOUT:
            del tree["iteration"], tree["optimizer_steps"]
        return tree

    def counters(self) -> tuple[int, int]:
        """(iteration, optimizer_steps) on the host."""
        return int(to_host(self.iteration)), int(to_host(self.optimizer_steps))


def state_shardings(state: TrainState):
    """The sharding of every array of `state` (a TrainState of shardings): the jitted steps take and
    return the state laid out exactly so, so nothing is moved or recompiled between iterations."""
    return jax.tree.map(lambda x: x.sharding, state)


@dataclasses.dataclass(frozen=True)
class Context:
    """What stays fixed for a run's jitted functions (all static: hashed by identity).

    graphdef: the model's NNX graph. ref_graphdef / base_params: the reference policy's graph and
    params -> reference params (with LoRA the graph without adapters and the base leaves of the policy's
    params; else the run's graph and the params as given), see `algorithms.reference_model`.
    mesh: the device mesh. algorithm: the objective's settings (the config's `algorithm:` section,
    `training.algorithm_settings.AlgorithmSection`). seed: the run's seed (mask and dropout streams).
    gen_length / steps: the sampler's completion length and denoising steps. mask_id / eos_id: token ids. rows: completions per
    rollout (prompts x group). lora_dropout: update items carry dropout keys. partition: a
    `update.ParamPartition` with LoRA (only the adapters train), else None. prompt_length: P.
    model_cfg: the model's config."""

    graphdef: Any
    ref_graphdef: Any
    base_params: Any
    mesh: Any
    algorithm: Any
    seed: int
    gen_length: int
    steps: int
    mask_id: int
    eos_id: int
    rows: int
    lora_dropout: bool
    partition: Any
    prompt_length: int
    model_cfg: Any

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other


def split_key(key_data):
    """(new key data, subkey) of raw key data: one `jax.random.split`, as the run has always split."""
    key, sub = jax.random.split(jax.random.wrap_key_data(key_data))
    return jax.random.key_data(key), sub
