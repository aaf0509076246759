"""The pieces every denoising loop shares (LLaDA's exact block sampler, the KV-cache sampler and Dream's
diffusion_generate): the transfer schedule, logits over a window of completion positions, candidate
tokens and confidences, and one denoising step's commit.

Random draws, so that a reference can reproduce them: the key of step s is fold_in(key, s), split
into (gumbel_key, remask_key); Gumbel noise has shape [B, W, V] and random-remasking scores [B, W].

Shapes: B rows, P prompt, G completion, L = P + G, W window, V vocab, T steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dlrl_jax import models
from dlrl_jax.rollout import noise
from dlrl_jax.rollout.settings import SamplerSettings

NEVER = -1e30  # "never choose" for candidates that may still be needed (suppressed ids)


def transfer_schedule(settings: SamplerSettings) -> np.ndarray:
    """Tokens committed at each step [T]: k_i = n // spb + (i < n % spb), n = block_length masks."""
    spb, n = settings.steps_per_block, settings.block_length
    per_block = np.array([n // spb + (1 if i < n % spb else 0) for i in range(spb)], np.int32)
    return np.tile(per_block, settings.num_blocks)


def filter_logits(logits, top_p, top_k):
    """Dream's top_p_logits then top_k_logits on [..., V]; removed entries become -inf.

    top_p keeps the sorted prefix up to and including the token whose cumulative probability first
    exceeds top_p (the first token always); top_k keeps the logits >= the k-th largest."""
    if top_p is not None and top_p < 1.0:
        sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
        cum = jnp.cumsum(jax.nn.softmax(sorted_logits, axis=-1), axis=-1)
        kept = 1 + jnp.sum(cum[..., :-1] <= top_p, axis=-1, keepdims=True)
        cutoff = jnp.take_along_axis(sorted_logits, kept - 1, axis=-1)
        logits = jnp.where(logits < cutoff, -jnp.inf, logits)
    if top_k is not None:
        kth = jax.lax.top_k(logits, min(top_k, logits.shape[-1]))[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return logits


def model_batch(settings, prompt_ids, x, attention):
    """(ids, attention) the model runs on: with classifier-free guidance the rows twice, the second
    copy with its prompt masked (the unconditional pass)."""
    if settings.cfg_scale <= 0:
        return x, attention
    P = prompt_ids.shape[1]
    unconditional = x.at[:, :P].set(jnp.where(attention[:, :P], settings.mask_id, x[:, :P]))
    return jnp.concatenate([x, unconditional]), jnp.concatenate([attention, attention])


def completion_logits(graphdef, params, settings, h):
    """Float32 logits from the (doubled, with cfg) states h [B(*2), W, D], guidance applied."""
    logits = models.unembed(graphdef, params, h)
    if settings.cfg_scale > 0:
        B = logits.shape[0] // 2
        cond, uncond = logits[:B], logits[B:]
        logits = uncond + (settings.cfg_scale + 1.0) * (cond - uncond)
    return logits


def window_logits(graphdef, params, settings, prompt_ids, x, attention, start, width):
    """Float32 logits [B, W, V] at completion positions start..start+W (cfg applied)."""
    P = prompt_ids.shape[1]
    ids, attention = model_batch(settings, prompt_ids, x, attention)
    h = models.hidden(graphdef, params, ids, attention, last=x.shape[1] - P)
    return completion_logits(graphdef, params, settings, jax.lax.dynamic_slice_in_dim(h, start, width, axis=1))


def candidates(settings, logits, gumbel_key, remask_key):
    """(candidate tokens x0 [B, W], confidence [B, W]) per the sampling and remasking settings: Dream's
    sample_tokens (logits / temperature, then top_p, then top_k; a categorical draw, argmax at
    temperature 0) and its confidences, or LLaDA's low_confidence (prob under the raw logits).

    The mask token is no candidate (its logit -inf), unless settings.mask_is_candidate (Dream's official
    sample_tokens, which draws from every logit): then a position whose candidate is the mask token
    stays masked when picked (denoise_step)."""
    candidate_logits = logits if settings.mask_is_candidate else logits.at[..., settings.mask_id].set(-jnp.inf)
    T = settings.temperature
    filtered = filter_logits(candidate_logits / T if T > 0 else candidate_logits, settings.top_p, settings.top_k)
    if T > 0:
        x0 = noise.gumbel_max(candidate_logits, filtered > -jnp.inf, T, settings.noise_dtype, gumbel_key)
    else:
        x0 = jnp.argmax(filtered, axis=-1).astype(jnp.int32)
    mode = settings.remasking
    if mode == "low_confidence":
        confidence = jnp.take_along_axis(jax.nn.softmax(logits, axis=-1), x0[..., None], axis=-1)[..., 0]
    elif mode in ("random", "origin"):
        confidence = jax.random.uniform(remask_key, x0.shape)
    else:
        probs = jax.nn.softmax(filtered, axis=-1)
        if mode == "maskgit_plus":
            confidence = jnp.take_along_axis(probs, x0[..., None], axis=-1)[..., 0]
        elif mode == "topk_margin":
            top2 = jax.lax.top_k(probs, 2)[0]
            confidence = top2[..., 0] - top2[..., 1]
        else:  # entropy: the most certain (lowest entropy) first, with Dream's 1e-10 inside the log
            confidence = jnp.sum(probs * jnp.log(probs + 1e-10), axis=-1)
    for token in settings.suppress_token_ids:
        confidence = jnp.where(x0 == token, confidence + NEVER, confidence)
    return x0, confidence


def denoise_step(settings, logits, x, P, key, s, start, eligible_fn):
    """One denoising step from the logits [B, W, V] of completion positions start..start+W-1.
    Returns (new canvas, committed [B, G], logits-derived records)."""
    B, width = logits.shape[:2]
    G = settings.gen_length
    gumbel_key, remask_key = jax.random.split(jax.random.fold_in(key, s))
    x0_w, confidence_w = candidates(settings, logits, gumbel_key, remask_key)
    completion = x[:, P:]
    masked_w = jax.lax.dynamic_slice_in_dim(completion, start, width, axis=1) == settings.mask_id
    positions_w = start + jnp.arange(width)
    # A picked position whose candidate is the mask token keeps the mask: nothing is committed there
    # (only possible with settings.mask_is_candidate).
    commit_w = eligible_fn(masked_w, positions_w, confidence_w) & (x0_w != settings.mask_id)
    logp = jax.nn.log_softmax(logits / settings.logprob_temperature, axis=-1)
    token_logp = jnp.take_along_axis(logp, x0_w[..., None], axis=-1)[..., 0]
    logp1 = jax.nn.log_softmax(logits, axis=-1) if settings.logprob_temperature != 1.0 else logp
    entropy = -jnp.sum(jnp.exp(logp1) * logp1, axis=-1)
    count = commit_w.sum(axis=1)
    records = {
        "logprob": jnp.where(commit_w, token_logp, 0.0).sum(axis=1),
        "entropy": jnp.where(commit_w, entropy, 0.0).sum(axis=1) / jnp.maximum(count, 1),
        "count": count.astype(jnp.int32),
    }
    if settings.record_greedy:  # width == G here: every still-masked position gets its argmax
        best = jnp.argmax(logits.at[..., settings.mask_id].set(-jnp.inf), axis=-1).astype(jnp.int32)
        records["greedy"] = jnp.where(masked_w, best, completion)
    new_window = jnp.where(commit_w, x0_w, jax.lax.dynamic_slice_in_dim(completion, start, width, axis=1))
    completion = jax.lax.dynamic_update_slice_in_dim(completion, new_window, start, axis=1)
    commit = jax.lax.dynamic_update_slice_in_dim(jnp.zeros((B, G), bool), commit_w, start, axis=1)
    return x.at[:, P:].set(completion), commit, records


def top_k_commit(k, block_start, block_length):
    def eligible(masked_w, positions_w, confidence_w):
        in_block = (positions_w >= block_start) & (positions_w < block_start + block_length)
        ok = masked_w & in_block[None, :]
        score = jnp.where(ok, confidence_w, -jnp.inf)
        rank = jnp.argsort(jnp.argsort(-score, axis=1, stable=True), axis=1)
        return ok & (rank < k)
    return eligible


def threshold_commit(threshold, block_length):
    def eligible(masked_w, positions_w, confidence_w):
        block_of = positions_w // block_length
        n_blocks = masked_w.shape[1] // block_length
        has_mask = masked_w.reshape(masked_w.shape[0], n_blocks, block_length).any(axis=2)
        active = jnp.argmax(has_mask, axis=1)  # the first block that still has masks, per row
        ok = masked_w & (block_of[None, :] == active[:, None])
        score = jnp.where(ok, confidence_w, -jnp.inf)
        best = jnp.argmax(score, axis=1)
        first = jnp.arange(masked_w.shape[1])[None, :] == best[:, None]
        return ok & ((confidence_w >= threshold) | first)
    return eligible
