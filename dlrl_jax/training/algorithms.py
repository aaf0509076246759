"""The RL algorithms as the loop sees them: a loss for the jitted update, and `prepare`, which turns
one rollout batch into the stacked items of each of the mu inner updates (plus metrics).

egspo / egspo_sa: selected denoising steps (ALGORITHMS.md §3); espo: the ELBO sequence ratio (§4);
diffu_grpo: d1's one-step token log-probs (§5). Mask draws of ESPO and diffu-GRPO come from
fold_in(seed key, global update index), so a resumed run draws the same masks.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dlrl_jax import models
from dlrl_jax.objectives import diffu_grpo, espo, stepwise
from dlrl_jax.objectives.selection import adaptive_k, select_steps
from dlrl_jax.parallel.mesh import replicated
from dlrl_jax.parallel.transfer import to_global, to_host
from dlrl_jax.training.key_streams import DROPOUT_STREAM, MASK_STREAM
from dlrl_jax.training.wd1 import WD1


def _stack(items_list):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *items_list)


def _split_rows(tree, micro_batches):
    return jax.tree.map(lambda x: x.reshape(micro_batches, x.shape[0] // micro_batches, *x.shape[1:]), tree)


def reference_model(run):
    """(graphdef, params -> params) for the reference policy's forwards. With LoRA the reference is the
    base model (Run.reference: every adapter factor zero), and x W + s (x 0) 0 is x W exactly, so the
    reference forwards run on a graph without the adapters: the same numbers without the adapter's
    matmuls. Without LoRA: the run's graph and the parameters as they are."""
    cfg = nnx.merge(run.graphdef, run.params).cfg
    if not cfg.lora_rank:
        return run.graphdef, lambda ref_params: ref_params
    base_cfg = cfg.replace(lora_rank=0, lora_alpha=0.0, lora_targets=(), lora_dropout=0.0)

    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: models.Transformer(base_cfg, rngs=nnx.Rngs(params=0))))

    def strip(ref_params):
        values = nnx.to_pure_dict(ref_params)
        values["layers"] = {k: v for k, v in values["layers"].items() if not k.startswith("lora_")}
        state = jax.tree.map(lambda x: x, abstract)  # a new container each time: filled below
        nnx.replace_by_pure_dict(state, values)
        return state

    return graphdef, strip


class EGSPO:
    def __init__(self, run, rows):
        cfg, a = run.cfg, run.cfg.algorithm
        self.run, self.a, self.rows = run, a, rows
        self.lam = a.lam if a.name == "egspo_sa" else 0.0
        self.record_greedy = self.lam > 0
        # official schedule: C columns per optimizer step, each column's loss weighted 1/C (the trainer's
        # loss / gradient_accumulation_steps); 0: every selected column in one step, summed
        self.columns = a.columns_per_update
        settings = stepwise.StepwiseLossSettings(
            mask_id=run.mask_id, tokens_per_step=cfg.sampler.gen_length / cfg.sampler.steps, eps_low=a.eps_low,
            eps_high=a.eps_high, beta=a.beta, aggregation=a.aggregation,
            column_weight=1.0 / self.columns if self.columns else 1.0)
        self.loss = functools.partial(stepwise.stepwise_loss, run.graphdef, settings=settings, total_rows=rows)
        self._ref = jax.jit(functools.partial(stepwise.selected_step_logprobs, mask_id=run.mask_id,
                                              aggregation=a.aggregation), static_argnums=0)
        self.ref_graphdef, self.base_params = reference_model(run)

    def prepare(self, traj, reward, records, params, ref_params, update_index):
        run, a, B = self.run, self.a, self.rows
        k = a.k
        if a.selection == "adaptive":
            k = adaptive_k(to_host(traj.step_entropy), to_host(traj.step_count), a.adaptive_alpha, k_max=traj.num_steps)
            if self.columns:  # whole optimizer steps of `columns` columns each
                k = min(-(-k // self.columns) * self.columns, traj.num_steps // self.columns * self.columns)
        mode = "top_k_entropy" if a.selection == "adaptive" else a.selection
        steps, valid = select_steps(traj.step_entropy, traj.step_count, run.next_key(), k=k, mode=mode)
        if self.lam > 0:
            greedy = np.take_along_axis(to_host(traj.greedy), to_host(steps)[:, :, None], axis=1)
            texts = run.decode(greedy.reshape(B * k, -1))
            greedy_reward = run.task.score(texts, [r for r in records for _ in range(k)]).reshape(B, k)
        else:
            greedy_reward = np.zeros((B, k), np.float32)
        adv = stepwise.stepwise_advantages(reward, greedy_reward, to_host(valid), a.group_size, self.lam)
        old = jnp.take_along_axis(traj.step_logprob, steps, axis=1)  # the rollout's sums
        if a.aggregation == "mean":  # the loss's log-prob is then a mean over the step's tokens: so is old
            old = old / jnp.maximum(jnp.take_along_axis(traj.step_count, steps, axis=1), 1)
        ref = self._ref(self.ref_graphdef, self.base_params(ref_params), traj.tokens, traj.prompt_mask,
                        traj.unmask_step, steps) \
            if a.beta > 0 else old
        adv = run.place(adv)  # host values onto the mesh, like the trajectory's arrays
        items = stepwise.column_items(traj.tokens, traj.prompt_mask, traj.unmask_step, steps, valid, adv, old, ref,
                                      micro_batches=a.micro_batches)
        metrics = {"greedy_reward_mean": greedy_reward.mean(), "k": k,
                   "selected_histogram": np.bincount(to_host(steps)[to_host(valid)], minlength=traj.num_steps)}
        inner = [items] * a.mu if not self.columns else \
            [jax.tree.map(lambda x, idx=idx: x[idx], items) for idx in official_column_order(k, self.columns, a.mu,
                                                                                            a.micro_batches)]
        if not run.lora_dropout:
            return inner, metrics
        base = jax.random.fold_in(jax.random.key(run.cfg.seed), DROPOUT_STREAM)
        # a fresh dropout draw for every item of every inner update
        keys = [jax.random.fold_in(base, update_index + i) if not self.columns else
                jax.random.fold_in(jax.random.fold_in(base, update_index), i) for i in range(len(inner))]
        keys = [jax.random.key_data(jax.random.split(k_i, len(jax.tree.leaves(items_i)[0])))
                for k_i, items_i in zip(keys, inner)]
        return [dict(items_i, dropout_key=to_global(k_i, replicated(run.mesh)))
                for items_i, k_i in zip(inner, keys)], metrics


def official_column_order(k: int, columns: int, passes: int, micro_batches: int) -> list[np.ndarray]:
    """The items of each optimizer step under the official EGSPO trainer's schedule.

    There, micro-step j after a rollout (j = 0 .. passes * k - 1) trains the single selected-step column
    (j + 1) % k over the whole batch (its step counter is incremented before the loss reads it), and
    gradient accumulation joins `columns` consecutive micro-steps into one optimizer step: k / columns
    optimizer steps per pass over the columns. `column_items` stacks items as (micro-batch, column), so
    column c of micro-batch m is item m * k + c; each returned index array lists one optimizer step's
    items."""
    if k % columns:
        raise ValueError(f"algorithm.k = {k} selected steps do not split into optimizer steps of "
                         f"algorithm.columns_per_update = {columns} columns; use a divisor of k")
    order = [(j + 1) % k for j in range(passes * k)]
    return [np.array([m * k + c for m in range(micro_batches) for c in order[o:o + columns]])
            for o in range(0, len(order), columns)]


class _SequenceLevel:
    """Shared by ESPO and diffu-GRPO: fresh mask draws per inner update, old/ref under the same draw.

    `prepare` is one jitted call: the keys of every (inner update, micro-batch) item are derived inside
    it and the old (and reference) terms of all items are computed by `lax.map`, one item at a time (the
    memory of one micro-batch's forward)."""

    record_greedy = False
    shared_draw = False  # True: one mask-draw key for every micro-batch, rows drawn by global index

    def __init__(self, run, rows):
        self.run, self.a, self.rows = run, run.cfg.algorithm, rows
        self.base_key = jax.random.fold_in(jax.random.key(run.cfg.seed), MASK_STREAM)
        self.ref_graphdef, self.base_params = reference_model(run)
        self._prepare = jax.jit(self._items, static_argnums=0)

    def _batch(self, traj):
        return {"prompt_ids": traj.tokens[:, :traj.prompt_length], "prompt_mask": traj.prompt_mask,
                "completion_ids": traj.completion}

    def item_keys(self, update_index, i, m):
        """The raw keys of item (inner update i, micro-batch m): mask draw, old-pass dropout, dropout.

        Mask draws come from fold_in(fold_in(base, update_index + i), m) (with `shared_draw`, the
        micro-batch's fold is left out: one draw over the global rows); the dropout keys from that item
        key folded with the dropout streams. Traceable: i and m may be traced integers."""
        key = jax.random.fold_in(self.base_key, update_index + i)
        item_key = jax.random.fold_in(key, m)
        return {"key": jax.random.key_data(key if self.shared_draw else item_key),
                "old_dropout_key": jax.random.key_data(jax.random.fold_in(item_key, DROPOUT_STREAM + 1)),
                "dropout_key": jax.random.key_data(jax.random.fold_in(item_key, DROPOUT_STREAM))}

    def _items(self, graphdef, params, ref_params, batch, update_index):
        """batch: [micro_batches, rows, ...] fields -> the update items of every inner update, stacked
        [mu, micro_batches, ...], with their keys and old/reference terms."""
        a, dropout = self.a, self.run.lora_dropout
        n, rows = a.micro_batches, self.rows // a.micro_batches
        inner, micro = jnp.repeat(jnp.arange(a.mu), n), jnp.tile(jnp.arange(n), a.mu)

        def one(im):
            i, m = im
            item = jax.tree.map(lambda x: x[m], batch)
            keys = self.item_keys(update_index, i, m)
            item["key"] = keys["key"]
            if self.shared_draw:
                item["row_offset"] = (m * rows).astype(jnp.int32)
            old_pass = dict(item, dropout_key=keys["old_dropout_key"]) if dropout and a.old_logprob_dropout \
                else item  # train-mode old pass, its own dropout masks
            item.update(self.reference_terms(graphdef, old_pass, params, ref_params))
            if dropout:
                item["dropout_key"] = keys["dropout_key"]
            return item

        items = jax.lax.map(one, (inner, micro))
        return jax.tree.map(lambda x: x.reshape(a.mu, n, *x.shape[1:]), items)

    def prepare(self, traj, reward, records, params, ref_params, update_index):
        a = self.a
        advantage = self.run.place(np.asarray(self.advantages(reward), np.float32))
        batch = _split_rows(dict(self._batch(traj), advantage=advantage), a.micro_batches)
        items = self._prepare(self.run.graphdef, params, ref_params, batch, np.int32(update_index))
        return [jax.tree.map(lambda x, i=i: x[i], items) for i in range(a.mu)], {}


ELBO_REMAT_BYTES = 2**30  # algorithm.elbo_remat auto: recompute the ELBO passes above this much activation memory


def elbo_activation_bytes(run, rows: int, samples: int) -> int:
    """A rough upper estimate of what the backward of one micro-batch's ESPO loss keeps without ELBO
    rematerialisation: 2 * samples coupled passes over rows x (prompt + completion) positions, per
    layer the block's activations and the float32 attention weights (only the layer inputs when the
    model itself rematerialises its layers, model.remat)."""
    cfg = nnx.merge(run.graphdef, run.params).cfg
    positions = run.prompt_length + run.cfg.sampler.gen_length
    width = jnp.dtype(cfg.jnp_dtype).itemsize
    if cfg.remat != "none":
        per_position = 2 * cfg.d_model * width
    else:
        per_position = ((10 * cfg.d_model + 4 * cfg.mlp_hidden + 2 * cfg.lora_rank * len(cfg.lora_targets)) * width
                        + 2 * cfg.n_heads * positions * 4)
    return 2 * samples * rows * positions * cfg.n_layers * per_position


class ESPO(_SequenceLevel):
    def __init__(self, run, rows):
        super().__init__(run, rows)
        a = self.a
        remat = a.elbo_remat if a.elbo_remat != "auto" else \
            elbo_activation_bytes(run, rows // a.micro_batches, a.elbo_samples) > ELBO_REMAT_BYTES
        self.settings = espo.ESPOSettings(mask_id=run.mask_id, num_samples=a.elbo_samples, coupled=True,
                                          eps=a.eps_low, beta=a.beta, remat=remat, strata=a.elbo_strata)
        self.shared_draw = a.elbo_strata > 0
        self.loss = functools.partial(self._loss, run.graphdef, self.settings, rows)

    @staticmethod
    def _loss(graphdef, settings, rows, params, item):
        return espo.espo_loss(graphdef, params, dict(item, key=jax.random.wrap_key_data(item["key"])), settings, rows)

    def advantages(self, reward):
        return espo.leave_one_out_advantages(reward, self.a.group_size)

    def reference_terms(self, graphdef, item, params, ref_params):
        def elbo(g, p, batch):
            return espo.elbos(g, p, batch, jax.random.wrap_key_data(batch["key"]), self.settings)

        old = elbo(graphdef, params, item)
        ref_item = {k: v for k, v in item.items() if k != "dropout_key"}  # the base has no adapter to drop
        return {"old_elbo": old, "ref_elbo": elbo(self.ref_graphdef, self.base_params(ref_params), ref_item)
                if self.a.beta > 0 else old}


class DiffuGRPO(_SequenceLevel):
    def __init__(self, run, rows):
        super().__init__(run, rows)
        a = self.a
        self.settings = diffu_grpo.DiffuGRPOSettings(mask_id=run.mask_id, p_mask_prompt=a.p_mask_prompt,
                                                     eps=a.eps_low, beta=a.beta, token_mean=a.token_mean)
        self.loss = functools.partial(self._loss, run.graphdef, self.settings, rows)

    @staticmethod
    def _loss(graphdef, settings, rows, params, item):
        return diffu_grpo.diffu_grpo_loss(graphdef, params, dict(item, key=jax.random.wrap_key_data(item["key"])),
                                          settings, rows)

    def _batch(self, traj):
        return dict(super()._batch(traj),
                    completion_mask=diffu_grpo.completion_mask(traj.completion, self.run.tokenizer.eos_id))

    def advantages(self, reward):
        return diffu_grpo.group_mean_advantages(reward, self.a.group_size)

    def reference_terms(self, graphdef, item, params, ref_params):
        def logp(g, p, batch):
            return diffu_grpo.token_logprobs(g, p, batch["prompt_ids"], batch["prompt_mask"],
                                             batch["completion_ids"], jax.random.wrap_key_data(batch["key"]),
                                             self.settings, models.batch_dropout_key(batch))

        old = logp(graphdef, params, item)
        ref_item = {k: v for k, v in item.items() if k != "dropout_key"}  # the base has no adapter to drop
        return {"old_logprob": old, "ref_logprob": logp(self.ref_graphdef, self.base_params(ref_params), ref_item)
                if self.a.beta > 0 else old}


ALGORITHMS = {"egspo": EGSPO, "egspo_sa": EGSPO, "espo": ESPO, "diffu_grpo": DiffuGRPO, "wd1": WD1}
