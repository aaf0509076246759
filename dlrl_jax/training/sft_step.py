"""The SFT warm start's step, one pure function of a `TrainState` (the same state RL carries):

    step = make_sft_step(graphdef, mask_id, batch_size, tx)       # host: once per run
    state, metrics = step(state, batch)                            # pure: jit it, or scan it

batch: {"prompt_ids" [B, P] int32, "prompt_mask" [B, P] bool, "completion_ids" [B, G] int32 (the
targets, EOS-padded)}. The step splits `state.key` once (the subkey draws the masks), takes one
optimizer step on masked-diffusion SFT over the whole batch (one accumulated item), and counts it in
`state.iteration` (SFT steps done) and `state.optimizer_steps`. `dlrl-jax train` jits it (`jit_step`);
the seeded program (app/seeded.py) scans it, so the two cannot drift.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlrl_jax.objectives.sft import sft_loss
from dlrl_jax.training.iteration import optimizer_step_fn
from dlrl_jax.training.key_streams import DROPOUT_STREAM
from dlrl_jax.training.optimizer import OptimizerSettings, make_optimizer
from dlrl_jax.training.state import split_key


def sft_optimizer(section):
    """AdamW of the config's `sft:` section: its learning rate and warmup, no weight decay, gradients
    clipped at norm 1."""
    return make_optimizer(OptimizerSettings(learning_rate=section.learning_rate, warmup_steps=section.warmup_steps,
                                            weight_decay=0.0, grad_clip=1.0))


def make_sft_step(graphdef, mask_id: int, batch_size: int, tx, partition=None, lora_dropout: bool = False):
    """`step(state, batch) -> (state, metrics)` (see the module docstring); with a `partition` (LoRA)
    only the adapters train; `lora_dropout`: the training forward draws LoRA dropout from the step's key."""

    def loss_fn(params, item):
        if lora_dropout:
            item = dict(item, dropout_key=jax.random.key_data(jax.random.fold_in(item["key"], DROPOUT_STREAM)))
        return sft_loss(graphdef, params, item, item["key"], mask_id=mask_id, total_rows=batch_size)

    update = optimizer_step_fn(loss_fn, tx, partition)

    def step(state, batch):
        key, sub = split_key(state.key)
        item = {"prompt_ids": batch["prompt_ids"][None], "prompt_mask": batch["prompt_mask"][None],
                "completion_ids": batch["completion_ids"][None],
                "completion_mask": jnp.ones((1, *batch["completion_ids"].shape), bool), "key": sub[None]}
        params, opt_state, metrics = update(state.params, state.opt_state, item)
        return state.replace(params=params, opt_state=opt_state, key=key, iteration=state.iteration + 1,
                             optimizer_steps=state.optimizer_steps + 1), metrics

    return step


def jit_step(step, partition=None):
    """`step` jitted with the state donated, except, with a `partition`, its frozen leaves (a LoRA base
    that the caller's parameters and the reference share): those pass through undonated and uncopied."""
    if partition is None:
        return jax.jit(step, donate_argnums=0)

    def partial(state, frozen, batch):
        state, metrics = step(state.replace(params=partition.join(state.params, frozen)), batch)
        return state.replace(params=partition.split(state.params)[0]), metrics

    jitted = jax.jit(partial, donate_argnums=0)

    def donating(state, batch):
        trainable, frozen = partition.split(state.params)
        state, metrics = jitted(state.replace(params=trainable), frozen, batch)
        return state.replace(params=partition.join(state.params, frozen)), metrics

    return donating
