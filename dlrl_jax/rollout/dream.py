"""Dream's own sampler (`diffusion_generate` of DreamLM/Dream's generation_utils.py), settings.schedule "dream".

No blocks. timesteps = linspace(1, eps, T + 1); at step i (t = timesteps[i], s = timesteps[i + 1]):
- ranked orders (maskgit_plus, topk_margin, entropy, and low_confidence): every masked position gets a
  candidate and a confidence (steps.candidates, Dream's sample_tokens), and the
  int(n_masked * (1 - s / t)) most confident masked positions take their candidates -- all of them at
  the last step. Every row has the same number of masks at every step, so this count is a static
  schedule (`transfer_counts`), computed on the host in float32 as torch does. With alg_temp > 0 the
  positions are drawn without replacement from softmax(confidence / alg_temp) (torch.multinomial)
  instead: the Gumbel-top-k trick, top-k of confidence / alg_temp + Gumbel, is that same draw.
- "origin" (or "random"): each masked position is committed with probability 1 - s / t (1 at the last
  step), independently, so rows commit different numbers per step.

settings.dream_mask_candidate "official" (Dream's sample_tokens draws from every logit, the mask token's
included): a picked position whose candidate is the mask token keeps its mask, so the masks left no
longer follow the static schedule. The count is then computed at every step as `_sample` does it:
int(n * (1 - s / t)) (int(n) at the last step) with n = the batch's masked positions / B in float32, a
mean over the rows, which can differ. Where that count exceeds a row's masked positions, the official
torch.topk also picks positions of confidence -inf (ties, in an order torch leaves unspecified) and
writes the mask token over their tokens; here such a row commits its masked positions and nothing else
(FIDELITY.md). With a batch of one row (ESPO's evaluation) that never arises.

Random draws (a reference can reproduce them): the key of step i is fold_in(key, i), split into
(gumbel_key, remask_key) as in the block sampler; origin's coin flips are the uniform [B, G] draw of
remask_key; alg_temp's Gumbel noise [B, G] comes from fold_in(fold_in(key, i), 1).

Shapes: B rows, P prompt, G completion, V vocab, T steps.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dlrl_jax.rollout.steps import denoise_step, top_k_commit, window_logits
from dlrl_jax.rollout.settings import SamplerSettings
from dlrl_jax.rollout.trajectory import Trajectory


def timesteps(steps: int, eps: float) -> np.ndarray:
    """torch.linspace(1, eps, steps + 1) in float32 [T + 1]: the first half counted up from 1, the second
    down from eps, each value rounded once (as torch computes it)."""
    n = steps + 1
    start, end = np.float32(1.0), np.float32(eps)
    step = np.float32(np.float32(end - start) / np.float32(n - 1))
    i = np.arange(n)
    up = np.float64(start) + np.float64(step) * i
    down = np.float64(end) - np.float64(step) * (n - 1 - i)
    return np.where(i < n // 2, up, down).astype(np.float32)


def transfer_probabilities(steps: int, eps: float) -> np.ndarray:
    """1 - s / t per step in float32 [T], 1 at the last step (origin's per-position probability)."""
    t = timesteps(steps, eps)
    p = (np.float32(1.0) - t[1:] / t[:-1]).astype(np.float32)
    p[-1] = 1.0
    return p


def transfer_counts(gen_length: int, steps: int, eps: float) -> np.ndarray:
    """Tokens committed per step [T] by the ranked orders: int(n * (1 - s / t)) in float32, the rest last."""
    p = transfer_probabilities(steps, eps)
    counts, n = np.zeros(steps, np.int32), gen_length
    for i in range(steps):
        counts[i] = n if i == steps - 1 else int(np.float32(n) * p[i])
        n -= counts[i]
    return counts


def _official_count(completion, mask_id, p_transfer):
    """`_sample`'s count with the masks actually left: int(mean masks per row * (1 - s / t)), float32
    as torch computes `mask_index.sum() / B` and the product (p_transfer is 1 at the last step)."""
    mean = jnp.sum(completion == mask_id).astype(jnp.float32) / jnp.float32(completion.shape[0])
    return (mean * p_transfer).astype(jnp.int32)  # int() truncates; both factors are >= 0


def _origin_commit(p_transfer):
    """Origin's coin flips: the confidence of remasking "origin"/"random" is the uniform draw itself."""
    def eligible(masked, positions, uniform):
        return masked & (uniform < p_transfer)
    return eligible


def _sampled_top_k_commit(k, alg_temp, key, gen_length):
    """k masked positions drawn without replacement from softmax(confidence / alg_temp)."""
    ranked = top_k_commit(k, 0, gen_length)

    def eligible(masked, positions, confidence):
        gumbel = jax.random.gumbel(key, confidence.shape, jnp.float32)
        return ranked(masked, positions, confidence / alg_temp + gumbel)
    return eligible


@functools.partial(jax.jit, static_argnames=("graphdef", "settings"))
def generate_dream(graphdef, params, prompt_ids, prompt_mask, key, settings: SamplerSettings) -> Trajectory:
    """Dream's diffusion_generate on `lax.scan` (see the module docstring); the same Trajectory record as
    the block sampler, greedy completions included when settings.record_greedy."""
    B, P = prompt_ids.shape
    G, T = settings.gen_length, settings.steps
    attention = jnp.concatenate([prompt_mask.astype(bool), jnp.ones((B, G), bool)], axis=1)
    x = jnp.concatenate([prompt_ids.astype(jnp.int32), jnp.full((B, G), settings.mask_id, jnp.int32)], axis=1)
    counts = jnp.asarray(transfer_counts(G, T, settings.eps))
    p_transfer = jnp.asarray(transfer_probabilities(T, settings.eps))
    origin = settings.remasking in ("random", "origin")

    def body(carry, s):
        x, unmask = carry
        logits = window_logits(graphdef, params, settings, prompt_ids, x, attention, 0, G)
        count = _official_count(x[:, P:], settings.mask_id, p_transfer[s]) if settings.mask_is_candidate else counts[s]
        if origin:
            eligible = _origin_commit(p_transfer[s])
        elif settings.alg_temp:
            eligible = _sampled_top_k_commit(count, settings.alg_temp,
                                             jax.random.fold_in(jax.random.fold_in(key, s), 1), G)
        else:
            eligible = top_k_commit(count, 0, G)
        x, commit, rec = denoise_step(settings, logits, x, P, key, s, 0, eligible)
        return (x, jnp.where(commit, s, unmask)), rec

    (x, unmask), rec = jax.lax.scan(body, (x, jnp.full((B, G), T, jnp.int32)), jnp.arange(T))
    rec = jax.tree.map(lambda r: jnp.moveaxis(r, 0, 1), rec)
    return Trajectory(tokens=x, prompt_mask=prompt_mask.astype(bool), unmask_step=unmask,
                      step_logprob=rec["logprob"], step_entropy=rec["entropy"], step_count=rec["count"],
                      greedy=rec.get("greedy"))
