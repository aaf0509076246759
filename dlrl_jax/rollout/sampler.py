"""The LLaDA denoising sampler (ALGORITHMS.md §1) as one jitted function: `lax.scan` over the steps
(fixed transfer schedule) or `lax.while_loop` (confidence-threshold decoding), no host round trip.

The window W of completion positions whose logits are formed is the active block (block_length) when
neither greedy completions nor threshold decoding are asked for, else all G; the step functions and
their random draws are in dlrl_jax.rollout.steps. `generate` also dispatches to Dream's schedule
(rollout.dream) and the KV-cache sampler (rollout.cached).

Shapes: B rows, P prompt, G completion, L = P + G, W window, V vocab, T steps.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp

from dlrl_jax.rollout.cached import generate_cached
from dlrl_jax.rollout.dream import generate_dream
from dlrl_jax.rollout.settings import SamplerSettings
from dlrl_jax.rollout.steps import denoise_step, threshold_commit, top_k_commit, transfer_schedule, window_logits
from dlrl_jax.rollout.trajectory import Trajectory


@functools.partial(jax.jit, static_argnames=("graphdef", "settings"))
def _generate(graphdef, params, prompt_ids, prompt_mask, key, settings: SamplerSettings) -> Trajectory:
    B, P = prompt_ids.shape
    G, T, bl = settings.gen_length, settings.steps, settings.block_length
    attention = jnp.concatenate([prompt_mask.astype(bool), jnp.ones((B, G), bool)], axis=1)
    x = jnp.concatenate([prompt_ids.astype(jnp.int32), jnp.full((B, G), settings.mask_id, jnp.int32)], axis=1)
    full_window = settings.record_greedy or settings.threshold is not None
    width = G if full_window else bl
    unmask = jnp.full((B, G), T, jnp.int32)

    if settings.threshold is None:
        schedule = jnp.asarray(transfer_schedule(settings))

        def body(carry, s):
            x, unmask = carry
            block_start = (s // settings.steps_per_block) * bl
            start = 0 if full_window else block_start
            logits = window_logits(graphdef, params, settings, prompt_ids, x, attention, start, width)
            x, commit, rec = denoise_step(settings, logits, x, P, key, s, start, top_k_commit(schedule[s], block_start, bl))
            return (x, jnp.where(commit, s, unmask)), rec

        (x, unmask), rec = jax.lax.scan(body, (x, unmask), jnp.arange(T))
        rec = jax.tree.map(lambda r: jnp.moveaxis(r, 0, 1), rec)
    else:
        rec = {"logprob": jnp.zeros((B, T), jnp.float32), "entropy": jnp.zeros((B, T), jnp.float32),
               "count": jnp.zeros((B, T), jnp.int32)}
        if settings.record_greedy:
            rec["greedy"] = jnp.zeros((B, T, G), jnp.int32)
        eligible = threshold_commit(settings.threshold, bl)

        def cond(carry):
            s, x, _, _ = carry
            return (s < T) & jnp.any(x[:, P:] == settings.mask_id)

        def body(carry):
            s, x, unmask, rec = carry
            logits = window_logits(graphdef, params, settings, prompt_ids, x, attention, 0, G)
            x, commit, step_rec = denoise_step(settings, logits, x, P, key, s, 0, eligible)
            rec = {name: rec[name].at[:, s].set(step_rec[name]) for name in rec}
            return s + 1, x, jnp.where(commit, s, unmask), rec

        _, x, unmask, rec = jax.lax.while_loop(cond, body, (jnp.int32(0), x, unmask, rec))
    return Trajectory(tokens=x, prompt_mask=prompt_mask.astype(bool), unmask_step=unmask,
                      step_logprob=rec["logprob"], step_entropy=rec["entropy"], step_count=rec["count"],
                      greedy=rec.get("greedy"))


def generate(graphdef, params, prompt_ids, prompt_mask, key, settings: SamplerSettings) -> Trajectory:
    """Samples G completion tokens for each left-padded prompt row; compiled once per shape and settings.

    prompt_ids [B, P] int32, prompt_mask [B, P] bool (False on left padding; the pad id must differ
    from the mask id). settings.schedule "dream" runs Dream's diffusion_generate (dlrl_jax.rollout.dream);
    settings.cache "prefix"/"dual" the approximate KV-cache sampler (dlrl_jax.rollout.cached). Settings
    are validated (with a clear error) before anything compiles."""
    settings.validate()
    prompt_ids, prompt_mask = jnp.asarray(prompt_ids, jnp.int32), jnp.asarray(prompt_mask, bool)
    chex.assert_rank(prompt_ids, 2)  # shapes only, on the host: no device work
    chex.assert_equal_shape([prompt_ids, prompt_mask])
    if settings.schedule == "dream":
        return generate_dream(graphdef, params, prompt_ids, prompt_mask, key, settings)
    if settings.cache != "none":
        return generate_cached(graphdef, params, prompt_ids, prompt_mask, key, settings)
    return _generate(graphdef, params, prompt_ids, prompt_mask, key, settings)
