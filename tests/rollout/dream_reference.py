"""An independent PyTorch re-derivation of Dream's `diffusion_generate` (DreamLM/Dream, the
generation_utils.py of the Dream-v0-Instruct-7B model repository), written from its published
algorithm, over a transformers Qwen2 model run bidirectionally with Dream's one-position logit shift.

The one liberty: the mask token's logit is set to -inf before sampling, as a caller of the real
function would do with its `generation_logits_hook_func` (dlrl_jax's default, dream_mask_candidate
"exclude"; tests/rollout/dream_official_reference.py transcribes the call without the hook).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tests.models import hf_oracle


def top_p_filter(logits, top_p):
    """Sorted descending; drop the tokens after the one whose cumulative probability first exceeds top_p."""
    sorted_logits, order = torch.sort(logits, descending=True)
    cumulative = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
    drop_sorted = cumulative > top_p
    drop_sorted[..., 1:] = drop_sorted[..., :-1].clone()
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
    return logits.masked_fill(drop, torch.finfo(logits.dtype).min)


def top_k_filter(logits, top_k):
    kth = torch.topk(logits, min(top_k, logits.shape[-1]))[0][..., -1, None]
    return logits.masked_fill(logits < kth, torch.finfo(logits.dtype).min)


def filtered_probs(logits, temperature, top_p, top_k):
    """Dream's order: temperature, then top_p, then top_k; softmax."""
    if temperature > 0:
        logits = logits / temperature
    if top_p is not None and top_p < 1:
        logits = top_p_filter(logits, top_p)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    return torch.softmax(logits, dim=-1)


def confidence_and_tokens(logits, alg, temperature, top_p, top_k, generator=None):
    probs = filtered_probs(logits, temperature, top_p, top_k)
    if temperature > 0:
        x0 = torch.distributions.Categorical(probs=probs).sample()
        confidence = torch.gather(probs, -1, x0[:, None])[:, 0]
    else:
        confidence, x0 = probs.max(dim=-1)
    if alg == "topk_margin":
        top = torch.sort(probs, dim=-1, descending=True)[0]
        confidence = top[:, 0] - top[:, 1]
    elif alg == "entropy":
        confidence = torch.sum(probs * torch.log(probs + 1e-10), dim=-1)
    return confidence, x0


def shifted_logits(model, x, real):
    """Dream's logits for canvas x: bidirectional forward, then logits shifted right by one position."""
    return torch.from_numpy(hf_oracle.torch_logits(model, x.numpy(), "dream", real))


def diffusion_generate(model, prompt, real, gen_length, steps, mask_id, alg="entropy", temperature=0.0,
                       top_p=None, top_k=None, eps=1e-3):
    """Plain loop of Dream's _sample for the ranked orders (maskgit_plus, topk_margin, entropy)."""
    B, P = prompt.shape
    x = F.pad(prompt, (0, gen_length), value=mask_id)
    real = np.concatenate([real, np.ones((B, gen_length), bool)], axis=1)
    t_all = torch.linspace(1, eps, steps + 1)
    for i in range(steps):
        mask_index = x == mask_id
        logits = shifted_logits(model, x, real)
        logits[..., mask_id] = -torch.inf  # the generation_logits_hook_func
        t, s = t_all[i], t_all[i + 1]
        confidence, x0 = confidence_and_tokens(logits[mask_index], alg, temperature, top_p, top_k)
        n_masked = mask_index.sum() / mask_index.shape[0]
        k = int(n_masked * (1 - s / t)) if i < steps - 1 else int(n_masked)
        full = torch.full(x.shape, -torch.inf)
        full[mask_index] = confidence
        if k > 0:
            _, chosen = torch.topk(full, k)
            candidates = torch.full_like(x, mask_id)
            candidates[mask_index] = x0
            rows = torch.arange(B)[:, None].expand_as(chosen)
            x[rows, chosen] = candidates[rows, chosen]
    return x
