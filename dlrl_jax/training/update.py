"""One optimizer step for every algorithm: gradient accumulation over a stack of items (micro-batches,
and for EGSPO the selected-step columns) by `lax.scan`, then one optimizer step. The RL iteration
scans this step over its optimizer steps inside its one jitted call (`training.iteration`);
`make_update` jits it on its own (the SFT warm start, benchmarks, inspection).

An item is any pytree of arrays; `loss_fn(params, item) -> (loss, metric sums)` must already divide
by the whole batch so that the accumulated loss is the objective. Memory is that of one item.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax


def accumulate_gradients(loss_fn: Callable, params, items):
    """(loss, grads, metric sums) summed over the leading axis of `items`, one item at a time."""
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    first = jax.tree.map(lambda x: x[0], items)
    sums0 = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                         jax.eval_shape(lambda: loss_fn(params, first)[1]))

    def accumulate(carry, item):
        grads, loss, sums = carry
        (item_loss, item_sums), item_grads = grad_fn(params, item)
        return (jax.tree.map(jnp.add, grads, item_grads), loss + item_loss,
                jax.tree.map(jnp.add, sums, item_sums)), None

    init = (jax.tree.map(jnp.zeros_like, params), jnp.float32(0.0), sums0)
    (grads, loss, sums), _ = jax.lax.scan(accumulate, init, items)
    return loss, grads, sums


class ParamPartition:
    """Splits a parameter pytree into trainable and frozen leaves (LoRA: the adapters vs the base) and
    joins them back, so gradients, optimizer state and donation cover the trainable part only."""

    def __init__(self, params, trainable_mask):
        leaves, self.treedef = jax.tree.flatten(params)
        self.mask = jax.tree.leaves(trainable_mask)
        if len(self.mask) != len(leaves):
            raise ValueError("trainable_mask must have the structure of params")

    def split(self, params):
        leaves = jax.tree.leaves(params)
        return ([x for x, m in zip(leaves, self.mask) if m], [x for x, m in zip(leaves, self.mask) if not m])

    def join(self, trainable, frozen):
        trainable, frozen = iter(trainable), iter(frozen)
        return jax.tree.unflatten(self.treedef, [next(trainable) if m else next(frozen) for m in self.mask])


def init_opt_state(tx: optax.GradientTransformation, params, partition: ParamPartition | None = None):
    """Optimizer state for what `make_update(..., partition)` trains."""
    return tx.init(params if partition is None else partition.split(params)[0])


def make_update(loss_fn: Callable, tx: optax.GradientTransformation, partition: ParamPartition | None = None):
    """Returns update(params, opt_state, items) -> (params, opt_state, metrics), jitted, donating
    params and opt_state. `items` leaves have a leading axis: the number of accumulated items.

    With a `partition` only its trainable leaves get gradients and optimizer steps; the frozen ones
    are neither differentiated, copied nor donated (so a reference model may share them)."""
    if partition is None:
        return jax.jit(_update_fn(loss_fn, tx), donate_argnums=(0, 1))

    def partial_update(trainable, opt_state, items, frozen):
        return _update_fn(lambda t, item: loss_fn(partition.join(t, frozen), item), tx)(trainable, opt_state, items)

    jitted = jax.jit(partial_update, donate_argnums=(0, 1))

    def update(params, opt_state, items):
        trainable, frozen = partition.split(params)
        trainable, opt_state, metrics = jitted(trainable, opt_state, items, frozen)
        return partition.join(trainable, frozen), opt_state, metrics

    update.jitted = jitted  # (trainable, opt_state, items, frozen) -> ..., for lowering and analysis
    update.partition = partition
    return update


def _update_fn(loss_fn, tx):
    def update(params, opt_state, items):
        loss, grads, sums = accumulate_gradients(loss_fn, params, items)
        # A non-finite loss poisons the gradient so that apply_if_finite skips the whole step.
        grads = jax.tree.map(lambda g: jnp.where(jnp.isfinite(loss), g, jnp.nan), grads)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = dict(sums, loss=loss, grad_norm=grad_norm,
                       skipped=(~jnp.isfinite(grad_norm)).astype(jnp.float32))
        return params, opt_state, metrics

    return update


def memory_analysis(fn, *args) -> dict:
    """XLA's per-device memory analysis (GiB) of the jitted `fn` compiled for these arguments: an update
    from `make_update` (args: params, opt_state, items) or any jitted function (the RL iteration). JAX
    caches the executable, so the first real call after this does not compile again."""
    if hasattr(fn, "jitted"):  # a partitioned (LoRA) update: its jitted part takes (trainable, opt_state, items, frozen)
        params, opt_state, items = args
        trainable, frozen = fn.partition.split(params)
        compiled = fn.jitted.lower(trainable, opt_state, items, frozen).compile()
    else:
        compiled = fn.lower(*args).compile()
    mem = compiled.memory_analysis()
    if mem is None:  # some backends do not report
        return {}
    gib = 2.0**30
    return {"arguments": mem.argument_size_in_bytes / gib, "temporaries": mem.temp_size_in_bytes / gib,
            "outputs": mem.output_size_in_bytes / gib, "aliased": mem.alias_size_in_bytes / gib}
