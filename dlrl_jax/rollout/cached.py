"""The sampler with Fast-dLLM's approximate KV cache (settings.cache "prefix" or "dual").

Each block starts with one full forward, whose logits decide that step and whose per-layer keys and
values become the cache. The block's later steps run the model on a window only -- the block and
everything after it ("prefix"), or the block alone ("dual") -- attending to the cached keys/values for
the positions outside the window. The cache is stale by the tokens committed since the block began,
which is the approximation; with one step per block it is exact.

Blocks run in lockstep over the rows. "dual" scans over blocks (every window has the block's shape);
"prefix" unrolls them, because its window shrinks block by block. Random draws match the exact
sampler's: step s uses fold_in(key, s).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from dlrl_jax import models
from dlrl_jax.rollout.steps import completion_logits, denoise_step, model_batch, top_k_commit, transfer_schedule
from dlrl_jax.rollout.settings import SamplerSettings
from dlrl_jax.rollout.trajectory import Trajectory


def _block_threshold_commit(threshold):
    """Threshold decoding within the (single) active block window: every masked position at or above
    the threshold, and at least the most confident one while any is masked."""
    def eligible(masked_w, positions_w, confidence_w):
        score = jnp.where(masked_w, confidence_w, -jnp.inf)
        first = jnp.arange(masked_w.shape[1])[None, :] == jnp.argmax(score, axis=1)[:, None]
        return masked_w & ((confidence_w >= threshold) | first)
    return eligible


@functools.partial(jax.jit, static_argnames=("graphdef", "settings"))
def generate_cached(graphdef, params, prompt_ids, prompt_mask, key, settings: SamplerSettings) -> Trajectory:
    B, P = prompt_ids.shape
    G, T, bl, spb = settings.gen_length, settings.steps, settings.block_length, settings.steps_per_block
    L = P + G
    shift = int(nnx.merge(graphdef, params).cfg.shift_logits)
    attention = jnp.concatenate([prompt_mask.astype(bool), jnp.ones((B, G), bool)], axis=1)
    x = jnp.concatenate([prompt_ids.astype(jnp.int32), jnp.full((B, G), settings.mask_id, jnp.int32)], axis=1)
    _, model_attention = model_batch(settings, prompt_ids, x, attention)
    schedule = jnp.asarray(transfer_schedule(settings))

    def block_logits_full(x, b):
        """Full forward: the logits of block b and the KV cache of the whole canvas."""
        ids, _ = model_batch(settings, prompt_ids, x, attention)
        h, cache = models.hidden_and_cache(graphdef, params, ids, model_attention)
        # the state predicting token j is that of position j - shift (position 0 keeps its own)
        rows = jnp.maximum(P + b * bl + jnp.arange(bl) - shift, 0)
        return completion_logits(graphdef, params, settings, jnp.take(h, rows, axis=1)), cache

    def window(b):
        """(first position, length) of block b's window; static lengths, the start may be traced."""
        if settings.cache == "dual":
            return jnp.maximum(P + b * bl - shift, 0), bl + shift
        start = max(P + b * bl - shift, 0)  # prefix: b is a Python int here
        return start, L - start

    def block_logits_cached(x, b, cache):
        ids, _ = model_batch(settings, prompt_ids, x, attention)
        start, width = window(b)
        h = models.hidden_window(graphdef, params, jax.lax.dynamic_slice_in_dim(ids, start, width, axis=1),
                                 model_attention, cache, start)
        rows = jnp.maximum(P + b * bl + jnp.arange(bl) - shift, 0) - start
        return completion_logits(graphdef, params, settings, jnp.take(h, rows, axis=1))

    if settings.threshold is None:
        def run_block(x, unmask, b):
            def step(x, unmask, s, logits):
                x, commit, rec = denoise_step(settings, logits, x, P, key, s, b * bl, top_k_commit(schedule[s], b * bl, bl))
                return x, jnp.where(commit, s, unmask), rec

            logits, cache = block_logits_full(x, b)
            x, unmask, first = step(x, unmask, b * spb, logits)

            def later(carry, j):
                x, unmask = carry
                x, unmask, rec = step(x, unmask, b * spb + j, block_logits_cached(x, b, cache))
                return (x, unmask), rec

            (x, unmask), rest = jax.lax.scan(later, (x, unmask), jnp.arange(1, spb))
            rec = jax.tree.map(lambda f, r: jnp.concatenate([f[None], r]), first, rest)  # [spb, ...]
            return x, unmask, rec

        unmask = jnp.full((B, G), T, jnp.int32)
        if settings.cache == "dual":
            def scan_block(carry, b):
                x, unmask, rec = run_block(*carry, b)
                return (x, unmask), rec

            (x, unmask), rec = jax.lax.scan(scan_block, (x, unmask), jnp.arange(settings.num_blocks))
            rec = jax.tree.map(lambda r: r.reshape(T, *r.shape[2:]), rec)
        else:
            per_block = []
            for b in range(settings.num_blocks):
                x, unmask, rec = run_block(x, unmask, b)
                per_block.append(rec)
            rec = jax.tree.map(lambda *r: jnp.concatenate(r), *per_block)
        rec = jax.tree.map(lambda r: jnp.moveaxis(r, 0, 1), rec)
        return Trajectory(tokens=x, prompt_mask=prompt_mask.astype(bool), unmask_step=unmask,
                          step_logprob=rec["logprob"], step_entropy=rec["entropy"], step_count=rec["count"])

    # Threshold decoding: each block loops until no row has a mask left in it (or `steps` run out).
    eligible = _block_threshold_commit(settings.threshold)

    def threshold_step(state, b, logits):
        s, x, unmask, rec = state
        x_new, commit, step_rec = denoise_step(settings, logits, x, P, key, s, b * bl, eligible)
        live = s < T  # a block begun after the step budget ran out commits nothing
        x = jnp.where(live, x_new, x)
        unmask = jnp.where(commit & live, s, unmask)
        rec = {name: rec[name].at[:, s].set(step_rec[name], mode="drop") for name in rec}
        return s + 1, x, unmask, rec

    def block_masked(x, b):
        return jnp.any(jax.lax.dynamic_slice_in_dim(x[:, P:], b * bl, bl, axis=1) == settings.mask_id)

    def run_block(state, b):
        logits, cache = block_logits_full(state[1], b)
        state = threshold_step(state, b, logits)
        return jax.lax.while_loop(
            lambda st: (st[0] < T) & block_masked(st[1], b),
            lambda st: threshold_step(st, b, block_logits_cached(st[1], b, cache)), state)

    rec = {"logprob": jnp.zeros((B, T), jnp.float32), "entropy": jnp.zeros((B, T), jnp.float32),
           "count": jnp.zeros((B, T), jnp.int32)}
    state = (jnp.int32(0), x, jnp.full((B, G), T, jnp.int32), rec)
    if settings.cache == "dual":
        state, _ = jax.lax.scan(lambda st, b: (run_block(st, b), None), state, jnp.arange(settings.num_blocks))
    else:
        for b in range(settings.num_blocks):
            state = run_block(state, b)
    _, x, unmask, rec = state
    return Trajectory(tokens=x, prompt_mask=prompt_mask.astype(bool), unmask_step=unmask,
                      step_logprob=rec["logprob"], step_entropy=rec["entropy"], step_count=rec["count"])
