"""The device part of an RL iteration after the rewards, as ONE jitted function:

    iterate(state, batch, reward_B[, selection], k=K) -> (state, (last_step_sums, algorithm_metrics))

state: a `TrainState` (donated). batch: the rollout's `Trajectory` (without the greedy completions).
reward_B: float32 [B]. selection: EGSPO-SA's `Selection` (steps chosen and greedy completions scored
on the host); without it, an algorithm that selects steps splits `state.key` and selects inside.
Inside: selection, advantages, old-policy and reference terms, the items of every optimizer step
(`Algorithm.prepare`), then a `lax.scan` over the optimizer steps (each a `lax.scan` of gradient
accumulation over its items, `training.update`), reference syncing every algorithm.ref_sync_every
optimizer steps (TRL's SyncRefModelCallback), and the counters. K is static: adaptive selection
compiles once per distinct K it meets.

Shardings are explicit: the state goes in and comes out exactly as the run laid it out
(`state.state_shardings`), the batch and rewards as `parallel.shard_rows` placed them at the first call
(rows split over (data, fsdp) where they divide), the metrics replicated.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from dlrl_jax.parallel.mesh import replicated, shard_rows
from dlrl_jax.training.state import split_key
from dlrl_jax.training.update import _update_fn, memory_analysis


@jax.jit
def sync_reference(ref_params, params, mix):
    """TRL's SyncRefModelCallback (TR-DPO): ref <- mix * policy + (1 - mix) * ref, leaf by leaf, mixed in
    float32 and stored in the reference's dtype."""
    def mixed(r, p):
        return (mix * p.astype(jnp.float32) + (1.0 - mix) * r.astype(jnp.float32)).astype(r.dtype)

    return jax.tree.map(mixed, ref_params, params)


def optimizer_step_fn(loss_fn, tx: optax.GradientTransformation, partition=None):
    """(params, opt_state, items) -> (params, opt_state, metrics): one optimizer step over the items
    (leading axis: accumulated items), pure; with a `partition` only its trainable leaves get
    gradients and optimizer state (`update.make_update` is the same step jitted on its own)."""
    if partition is None:
        return _update_fn(loss_fn, tx)

    def step(params, opt_state, items):
        trainable, frozen = partition.split(params)
        trainable, opt_state, metrics = _update_fn(lambda t, item: loss_fn(partition.join(t, frozen), item), tx)(
            trainable, opt_state, items)
        return partition.join(trainable, frozen), opt_state, metrics

    return step


UNSCALED_METRICS = ("loss", "grad_norm", "skipped")


def per_count(sums: dict) -> dict:
    """An optimizer step's metric sums as the run logs them: loss, grad_norm and skipped as they are,
    each of the loss's other sums (ratio, clip_fraction, kl, ...) divided by its count (at least 1).
    Host floats and traced arrays alike (the loop logs on the host, the seeded program in JAX)."""
    count = sums["count"]
    count = count + (count < 1) * (1 - count)  # max(count, 1) without a host or a jnp call
    return {name: v if name in UNSCALED_METRICS else v / count for name, v in sums.items() if name != "count"}


class Iteration:
    """`iterate` above, jitted per (K, with or without a host selection) with explicit shardings and
    the state donated. `__call__` places the batch, rewards and selection first (`place`)."""

    def __init__(self, context, algorithm, tx, state_sharding):
        self.context, self.algorithm, self.state_sharding = context, algorithm, state_sharding
        self.step = optimizer_step_fn(algorithm.loss, tx, context.partition)
        self._jitted: dict = {}
        self.memory: dict | None = None

    def iterate(self, state, batch, reward_B, selection, *, k: int, seed=None):
        """The pure iteration (module docstring); `seed` (default the context's) may be traced: the
        vmapped seeds of app/seeded.py draw their own masks and dropout through it."""
        a = self.context.algorithm
        key = state.key
        if selection is None and self.algorithm.select is not None:
            key, sub = split_key(key)
            selection = self.algorithm.select(sub, batch, k)
        ref_params = state.ref_params if state.ref_params is not None else state.params  # LoRA: the base
        items, metrics = self.algorithm.prepare(state.params, ref_params, batch, reward_B, selection,
                                                state.iteration * a.mu, k, seed=seed)
        items.validate()

        def optimizer_step(carry, step_items):
            params, opt_state, ref, count = carry
            params, opt_state, sums = self.step(params, opt_state, step_items)
            count = count + 1
            if a.ref_sync_every:  # TRL: on_step_end at global_step
                ref = jax.lax.cond(count % a.ref_sync_every == 0,
                                   lambda: sync_reference(ref, params, jnp.float32(a.ref_sync_mix)), lambda: ref)
            return (params, opt_state, ref, count), sums

        (params, opt_state, ref, count), sums = jax.lax.scan(
            optimizer_step, (state.params, state.opt_state, state.ref_params, state.optimizer_steps), items)
        last = jax.tree.map(lambda x: x[-1], sums)  # the loop reports its last optimizer step's sums
        if "ratio_dev" in sums:  # ... and the first's mean |ratio - 1|: taken at the policy that made the
            # rollout, so it measures how far the trainer's log-probs are from the rollout's (or old pass's)
            first = jax.tree.map(lambda x: x[0], sums)
            metrics = dict(metrics, first_ratio_dev=first["ratio_dev"] / jnp.maximum(first["count"], 1.0))
        state = state.replace(params=params, opt_state=opt_state, ref_params=ref, key=key,
                              iteration=state.iteration + 1, optimizer_steps=count)
        return state, (last, metrics)

    def place(self, tree):
        return shard_rows(tree, self.context.mesh)

    def jitted(self, k: int, batch, reward_B, selection):
        """The compiled function for this K and these (placed) inputs."""
        cache_key = (k, selection is None)
        if cache_key not in self._jitted:
            shardings = lambda tree: jax.tree.map(lambda x: x.sharding, tree)  # noqa: E731
            outs = (self.state_sharding, replicated(self.context.mesh))
            if selection is None:
                fn = jax.jit(lambda s, b, r: self.iterate(s, b, r, None, k=k), donate_argnums=0,
                             in_shardings=(self.state_sharding, shardings(batch), shardings(reward_B)),
                             out_shardings=outs)
            else:
                fn = jax.jit(lambda s, b, r, sel: self.iterate(s, b, r, sel, k=k), donate_argnums=0,
                             in_shardings=(self.state_sharding, shardings(batch), shardings(reward_B),
                                           shardings(selection)), out_shardings=outs)
            self._jitted[cache_key] = fn
        return self._jitted[cache_key]

    def __call__(self, state, batch, reward_B, selection=None, *, k: int = 0):
        batch, reward_B = self.place(batch), self.place(reward_B)
        selection = None if selection is None else self.place(selection)
        args = (state, batch, reward_B) if selection is None else (state, batch, reward_B, selection)
        fn = self.jitted(k, batch, reward_B, selection)
        if self.memory is None:  # once, before the first call runs: what it will hold per device
            self.memory = memory_analysis(fn, *args)
        return fn(*args)
