"""The ELBO of a completion under a masked diffusion model (ESPO's sequence likelihood, §4).

    L(y | q) = E_{l ~ U{0..G}} E_{l masked positions} [ (G+1)/l * sum_{masked j} log p(y_j | y_masked, q) ]

(the l = 0 term is 0), which equals sum_{l=1..G} (1/l) E_{|S|=l} sum_{j in S} log p(y_j | y_S masked, q).
Mask counts are stratified across the batch (l_b = floor(u (G+1) + b (G+1) / B) mod (G+1), one
u ~ U[0, 1) per draw), so each l stays uniform while a batch covers the range evenly. With `coupled`,
the complementary mask (G - l positions, weight (G+1)/(G-l)) is a second unbiased pass; the two are
averaged. Only completion tokens are masked. The same key gives the same masks, so the current,
old and reference policies share draws.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dlrl_jax import models


def draw_masks(key, batch: int, gen_length: int, *, stratified: bool = True):
    """(masked [B, G] bool, count l [B] int32) for one Monte-Carlo draw."""
    count_key, perm_key = jax.random.split(key)
    G = gen_length
    if stratified:
        u = jax.random.uniform(count_key, ())
        l_B = jnp.floor(u * (G + 1) + jnp.arange(batch) * (G + 1) / batch).astype(jnp.int32) % (G + 1)
    else:
        l_B = jax.random.randint(count_key, (batch,), 0, G + 1)
    rank_BxG = jnp.argsort(jax.random.uniform(perm_key, (batch, G)), axis=1).argsort(axis=1)
    return rank_BxG < l_B[:, None], l_B


def draw_masks_in_strata(key, row_offset, batch: int, gen_length: int, strata: int):
    """ESPO's own draw (its forward_process): (masked [B, G] bool, count l [B] int32) for rows
    row_offset .. row_offset + B - 1 of a batch cut into groups of `strata` consecutive rows (ESPO's
    per-device batch). A group draws one integer k ~ U{0..G}; its i-th row masks
    l = round(k + i (G+1) / strata) mod (G+1) positions, chosen by the row's own random permutation.
    Every draw depends on the global row index only, so splitting the rows into micro-batches (any
    row_offset) gives the same masks."""
    G = gen_length
    rows = row_offset + jnp.arange(batch)
    count_key, perm_key = jax.random.split(key)
    k_B = jax.vmap(lambda g: jax.random.randint(jax.random.fold_in(count_key, g), (), 0, G + 1))(rows // strata)
    l_B = jnp.round(k_B + (rows % strata) * ((G + 1) / strata)).astype(jnp.int32) % (G + 1)
    noise_BxG = jax.vmap(lambda r: jax.random.uniform(jax.random.fold_in(perm_key, r), (G,)))(rows)
    rank_BxG = jnp.argsort(noise_BxG, axis=1).argsort(axis=1)
    return rank_BxG < l_B[:, None], l_B


def _masked_logprob_sum(graphdef, params, prompt_ids, prompt_mask, completion_ids, masked_BxG, mask_id,
                        dropout_key=None):
    B, G = completion_ids.shape
    ids = jnp.concatenate([prompt_ids, jnp.where(masked_BxG, mask_id, completion_ids)], axis=1)
    attention = jnp.concatenate([prompt_mask.astype(bool), jnp.ones((B, G), bool)], axis=1)
    h = models.hidden(graphdef, params, ids, attention, dropout_key, last=G)
    logp = jax.nn.log_softmax(models.unembed(graphdef, params, h), axis=-1)
    token_logp = jnp.take_along_axis(logp, completion_ids[..., None], axis=-1)[..., 0]
    return jnp.where(masked_BxG, token_logp, 0.0).sum(axis=1)


def estimate_pure(graphdef, params, prompt_ids, prompt_mask, completion_ids, key, *, num_samples: int = 1,
                  coupled: bool = True, stratified: bool = True, mask_id: int, remat: bool = True,
                  dropout_key=None, strata: int = 0, row_offset=0):
    """Per-sequence ELBO estimates [B] (pure; jit and grad friendly). With `remat` each pass is
    rematerialised under grad and the passes run one after another, so memory holds one pass's
    activations at a time; without it the passes (num_samples, times two when coupled) are one
    `lax.map` over the stacked masks: the model is traced and lowered once instead of once per pass
    (most of a warm first iteration's cost on small models), and each pass still runs at its own
    batch size (one forward over all passes' rows was measured slower on CPU: bench/RESULTS.md).
    Both give the same passes, masks and dropout draws included.
    A `dropout_key` turns on LoRA dropout, a fresh draw for every pass (fold_in(dropout_key, pass
    index)). With `strata` > 0 the masks are ESPO's own stratified draw over groups of that many rows
    (`draw_masks_in_strata`; these rows start at global row `row_offset`); else `stratified` spreads
    the counts over these rows."""
    B, G = completion_ids.shape

    def one_pass(p, masked, index):
        dk = None if dropout_key is None else jax.random.fold_in(dropout_key, index)
        return _masked_logprob_sum(graphdef, p, prompt_ids, prompt_mask, completion_ids, masked, mask_id, dk)

    masks, weights = [], []  # per pass: masked [B, G], weight [B] (the coupled pass follows its draw)
    for m in range(num_samples):
        draw_key = jax.random.fold_in(key, m)
        masked, l_B = draw_masks_in_strata(draw_key, row_offset, B, G, strata) if strata else \
            draw_masks(draw_key, B, G, stratified=stratified)
        masks.append(masked)
        weights.append(jnp.where(l_B > 0, (G + 1) / jnp.maximum(l_B, 1), 0.0))
        if coupled:
            masks.append(~masked)
            weights.append(jnp.where(l_B < G, (G + 1) / jnp.maximum(G - l_B, 1), 0.0))
    if remat:
        one_pass = jax.checkpoint(one_pass, static_argnums=2)
        sums = [one_pass(params, masked, index) for index, masked in enumerate(masks)]
    else:
        index = jnp.arange(len(masks), dtype=jnp.uint32)
        sums = list(jax.lax.map(lambda pass_: one_pass(params, *pass_), (jnp.stack(masks), index)))
    per_pass = [w * s for w, s in zip(weights, sums)]
    total = jnp.zeros((B,), jnp.float32)
    for m in range(num_samples):
        total = total + (0.5 * (per_pass[2 * m] + per_pass[2 * m + 1]) if coupled else per_pass[m])
    return total / num_samples


def estimate(model, prompt_ids, completion_ids, key, *, num_samples: int = 1, coupled: bool = True,
             stratified: bool = True, mask_id: int, prompt_mask=None):
    """Per-sequence ELBO estimates [B] for `model` (what `models.from_pretrained` returns)."""
    graphdef, params = models.split(model)
    if prompt_mask is None:
        prompt_mask = jnp.ones(prompt_ids.shape, bool)
    return _jitted_estimate(graphdef, params, jnp.asarray(prompt_ids), jnp.asarray(prompt_mask),
                            jnp.asarray(completion_ids), key, num_samples=num_samples, coupled=coupled,
                            stratified=stratified, mask_id=mask_id)


_jitted_estimate = jax.jit(
    lambda graphdef, params, prompt_ids, prompt_mask, completion_ids, key, **kw: estimate_pure(
        graphdef, params, prompt_ids, prompt_mask, completion_ids, key, remat=False, **kw),
    static_argnames=("graphdef", "num_samples", "coupled", "stratified", "mask_id"))
