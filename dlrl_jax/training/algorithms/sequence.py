"""ESPO and diffu-GRPO after the rewards (objectives/espo.py, objectives/diffu_grpo.py have the losses):
group advantages, then for every (inner update, micro-batch) item a fresh mask draw and the old-policy
and reference terms under that same draw, all taken before any of the iteration's optimizer steps
(`lax.map`, one item at a time: the memory of one micro-batch's forward).

Keys: the mask draw of item (inner update i, micro-batch m) is fold_in(fold_in(base, update_index + i),
m) with base = fold_in(key(seed), MASK_STREAM) (with ESPO's elbo_strata the micro-batch's fold is left
out: one draw over the global rows); the dropout keys are that item key folded with the dropout streams.

`reference_terms` is each objective's own pure function (old and reference likelihoods of one item),
so a change of how they are taken stays local to it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlrl_jax import models
from dlrl_jax.objectives import diffu_grpo, espo
from dlrl_jax.training.algorithms.common import Algorithm, row_weights_or_none, split_rows
from dlrl_jax.training.items import DiffuGRPOItem, ESPOItem
from dlrl_jax.training.key_streams import DROPOUT_STREAM, MASK_STREAM

ELBO_REMAT_BYTES = 2**30  # algorithm.elbo_remat auto: recompute the ELBO passes above this much activation memory


def elbo_activation_bytes(model_cfg, prompt_length: int, gen_length: int, rows: int, samples: int) -> int:
    """A rough upper estimate of what the backward of one micro-batch's ESPO loss keeps without ELBO
    rematerialisation: 2 * samples coupled passes over rows x (prompt + completion) positions, per
    layer the block's activations and the float32 attention weights (only the layer inputs when the
    model itself rematerialises its layers, model.remat)."""
    cfg = model_cfg
    positions = prompt_length + gen_length
    width = jnp.dtype(cfg.jnp_dtype).itemsize
    if cfg.remat != "none":
        per_position = 2 * cfg.d_model * width
    else:
        per_position = ((10 * cfg.d_model + 4 * cfg.mlp_hidden + 2 * cfg.lora_rank * len(cfg.lora_targets)) * width
                        + 2 * cfg.n_heads * positions * 4)
    return 2 * samples * rows * positions * cfg.n_layers * per_position


def item_keys(base_key, update_index, i, m, shared_draw: bool) -> dict:
    """The raw keys of item (inner update i, micro-batch m): mask draw, old-pass dropout, dropout.
    Traceable: update_index, i and m may be traced integers."""
    key = jax.random.fold_in(base_key, update_index + i)
    item_key = jax.random.fold_in(key, m)
    return {"key": jax.random.key_data(key if shared_draw else item_key),
            "old_dropout_key": jax.random.key_data(jax.random.fold_in(item_key, DROPOUT_STREAM + 1)),
            "dropout_key": jax.random.key_data(jax.random.fold_in(item_key, DROPOUT_STREAM))}


def _make(context, advantages, batch_fields, reference_terms, item_type, loss, settings, shared_draw=False):
    """The shared prepare of the sequence-level objectives: `reference_terms(params, ref_params, item)`
    -> the item's old / reference fields."""
    a = context.algorithm
    n, rows = a.micro_batches, context.rows // a.micro_batches
    dropout = context.lora_dropout

    def prepare(params, ref_params, batch, reward_B, selection, update_index, k, seed=None):
        """batch: the rollout -> items [mu, micro_batches, rows / micro_batches, ...] with keys and
        old/reference terms (one optimizer step per inner update, its micro-batches accumulated)."""
        base_key = jax.random.fold_in(jax.random.key(context.seed if seed is None else seed), MASK_STREAM)
        fields = dict(batch_fields(batch), advantage=advantages(reward_B, a.group_size))
        weight = row_weights_or_none(a, reward_B, a.group_size)
        if weight is not None:  # algorithm.zero_variance_groups=drop
            fields["row_weight"] = weight
        fields = split_rows(fields, n)
        inner, micro = jnp.repeat(jnp.arange(a.mu), n), jnp.tile(jnp.arange(n), a.mu)

        def one(im):
            i, m = im
            item = jax.tree.map(lambda x: x[m], fields)
            keys = item_keys(base_key, update_index, i, m, shared_draw)
            item["key"] = keys["key"]
            if shared_draw:
                item["row_offset"] = (m * rows).astype(jnp.int32)
            old_pass = dict(item, dropout_key=keys["old_dropout_key"]) if dropout and a.old_logprob_dropout \
                else item  # train-mode old pass, its own dropout masks
            item.update(reference_terms(params, ref_params, old_pass))
            if dropout:
                item["dropout_key"] = keys["dropout_key"]
            return item

        items = jax.lax.map(one, (inner, micro))
        items = jax.tree.map(lambda x: x.reshape(a.mu, n, *x.shape[1:]), items)
        return item_type(**items), {}

    return Algorithm(loss=loss, prepare=prepare, settings=settings)


def _batch(batch):
    return {"prompt_ids": batch.tokens[:, :batch.prompt_length], "prompt_mask": batch.prompt_mask,
            "completion_ids": batch.completion}


def _without_dropout(item: dict) -> dict:
    return {k: v for k, v in item.items() if k != "dropout_key"}  # the base has no adapter to drop


def make_espo(context) -> Algorithm:
    a = context.algorithm
    remat = a.elbo_remat if a.elbo_remat != "auto" else \
        elbo_activation_bytes(context.model_cfg, context.prompt_length, context.gen_length,
                              context.rows // a.micro_batches, a.elbo_samples) > ELBO_REMAT_BYTES
    settings = espo.ESPOSettings(mask_id=context.mask_id, num_samples=a.elbo_samples, coupled=True, eps=a.eps_low,
                                 beta=a.beta, remat=remat, strata=a.elbo_strata)

    def loss(params, item):
        return espo.espo_loss(context.graphdef, params, dict(item, key=jax.random.wrap_key_data(item["key"])),
                              settings, context.rows)

    def reference_terms(params, ref_params, item):
        """old_elbo under the policy before the iteration's updates, ref_elbo under the reference (both
        with the item's mask draw)."""
        def elbo(graphdef, p, fields):
            return espo.elbos(graphdef, p, fields, jax.random.wrap_key_data(fields["key"]), settings)

        old = elbo(context.graphdef, params, item)
        return {"old_elbo": old, "ref_elbo": elbo(context.ref_graphdef, context.base_params(ref_params),
                                                  _without_dropout(item)) if a.beta > 0 else old}

    return _make(context, espo.leave_one_out_advantages, _batch, reference_terms, ESPOItem, loss, settings,
                 shared_draw=a.elbo_strata > 0)


def make_diffu_grpo(context) -> Algorithm:
    a = context.algorithm
    settings = diffu_grpo.DiffuGRPOSettings(mask_id=context.mask_id, p_mask_prompt=a.p_mask_prompt, eps=a.eps_low,
                                            beta=a.beta, token_mean=a.token_mean)

    def loss(params, item):
        return diffu_grpo.diffu_grpo_loss(context.graphdef, params,
                                          dict(item, key=jax.random.wrap_key_data(item["key"])), settings,
                                          context.rows)

    def batch_fields(batch):
        return dict(_batch(batch), completion_mask=diffu_grpo.completion_mask(batch.completion, context.eos_id))

    def reference_terms(params, ref_params, item):
        def logp(graphdef, p, fields):
            return diffu_grpo.token_logprobs(graphdef, p, fields["prompt_ids"], fields["prompt_mask"],
                                             fields["completion_ids"], jax.random.wrap_key_data(fields["key"]),
                                             settings, models.batch_dropout_key(fields))

        old = logp(context.graphdef, params, item)
        return {"old_logprob": old, "ref_logprob": logp(context.ref_graphdef, context.base_params(ref_params),
                                                        _without_dropout(item)) if a.beta > 0 else old}

    return _make(context, diffu_grpo.group_mean_advantages, batch_fields, reference_terms, DiffuGRPOItem, loss,
                 settings)


__all__ = ["make_espo", "make_diffu_grpo", "elbo_activation_bytes", "item_keys", "ELBO_REMAT_BYTES"]
