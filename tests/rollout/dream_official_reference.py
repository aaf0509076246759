"""A plain PyTorch transcription of the ranked orders of Dream's `diffusion_generate` exactly as the
model repository's generation_utils.py runs them (Dream-org/Dream-v0-Instruct-7B: `sample_tokens` and
`DreamGenerationMixin._sample`), the mask token kept among the candidates. Written independently of
dlrl_jax from that file's algorithm, step by step:

- mask_index = (x == mask_token_id) over the whole sequence; logits shifted right by one position;
  mask_logits = logits[mask_index] (no logits hook: the mask token's logit stays).
- sample_tokens: logits / temperature, top_p, top_k (removed entries filled with finfo.min), softmax;
  a categorical draw (argmax at temperature 0); confidence = the drawn token's probability, replaced by
  top1 - top2 (topk_margin) or sum p log(p + 1e-10) (entropy, the negative entropy).
- num_mask_token = mask_index.sum() / batch (the batch mean, float32); the step's count is
  int(num_mask_token * (1 - s / t)), int(num_mask_token) at the last step.
- full_confidence: -inf everywhere but the masked positions; torch.topk per row picks the positions;
  x_ holds x0 at the masked positions and the mask token elsewhere; x[rows, picked] = x_[rows, picked].
  A picked position whose candidate is the mask token therefore stays masked, and counts in the next
  step's mask count again.

The one substitution: torch.distributions.Categorical(probs).sample() draws with torch's generator; here
the same categorical draw is argmax(log probs + Gumbel) with Gumbel noise the caller passes in (the
noise dlrl_jax draws, so the two can be compared token for token).

When rows of a batch come to hold different numbers of masks, the count can exceed a row's masks; the
official torch.topk then also picks positions of confidence -inf (in an order torch leaves unspecified)
and writes the mask token over them. This transcription raises UnspecifiedTieOrder there rather than
guess that order.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tests.models import hf_oracle


class UnspecifiedTieOrder(RuntimeError):
    """The step's count exceeds a row's masked positions: torch.topk's choice among -inf ties decides."""


def _top_p(logits, top_p):
    ordered, order = torch.sort(logits, descending=True)
    cumulative = torch.cumsum(F.softmax(ordered, dim=-1), dim=-1)
    remove_sorted = cumulative > top_p
    remove_sorted[..., 1:] = remove_sorted[..., :-1].clone()  # keep the token that crosses top_p
    remove_sorted[..., 0] = False
    remove = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, order, remove_sorted)
    return logits.masked_fill(remove, torch.finfo(logits.dtype).min)


def _top_k(logits, top_k):
    kth = torch.topk(logits, min(top_k, logits.size(-1)))[0][..., -1, None]
    return logits.masked_fill(logits < kth, torch.finfo(logits.dtype).min)


def sample_tokens(logits, alg, temperature, top_p, top_k, gumbel=None):
    """(confidence [N], x0 [N]) for mask_logits [N, V]; gumbel [N, V] stands in for Categorical's draw."""
    if temperature > 0:
        logits = logits / temperature
    if top_p is not None and top_p < 1:
        logits = _top_p(logits, top_p)
    if top_k is not None:
        logits = _top_k(logits, top_k)
    probs = torch.softmax(logits, dim=-1)
    if temperature > 0:
        x0 = torch.argmax(torch.log(probs.double()) + gumbel.double(), dim=-1)
        confidence = torch.gather(probs, -1, x0[:, None])[:, 0]
    else:
        confidence, x0 = probs.max(dim=-1)
    if alg == "topk_margin":
        ordered = torch.sort(probs, dim=-1, descending=True)[0]
        confidence = ordered[:, 0] - ordered[:, 1]
    elif alg == "entropy":
        confidence = torch.sum(probs * torch.log(probs + 1e-10), dim=-1)
    elif alg != "maskgit_plus":
        raise ValueError(f"alg {alg!r}: this transcription covers maskgit_plus, topk_margin and entropy")
    return confidence, x0


def diffusion_generate(model, prompt, real, gen_length, steps, mask_id, alg, temperature=0.0, top_p=None,
                       top_k=None, eps=1e-3, gumbel=None):
    """Final sequences [B, P + G] (torch int64). gumbel(i) -> [B, G, V] noise of step i (temperature > 0)."""
    B, P = prompt.shape
    x = F.pad(prompt, (0, gen_length), value=mask_id)
    real = np.concatenate([real, np.ones((B, gen_length), bool)], axis=1)
    timesteps = torch.linspace(1, eps, steps + 1)
    for i in range(steps):
        mask_index = x == mask_id
        logits = torch.from_numpy(hf_oracle.torch_logits(model, x.numpy(), "dream", real))
        mask_logits = logits[mask_index]
        t, s = timesteps[i], timesteps[i + 1]
        noise = None
        if temperature > 0:
            noise = torch.from_numpy(np.array(gumbel(i), np.float32))[mask_index[:, P:]]
        confidence, x0 = sample_tokens(mask_logits, alg, temperature, top_p, top_k, noise)
        num_mask_token = mask_index.sum() / mask_index.shape[0]
        count = int(num_mask_token * (1 - s / t)) if i < steps - 1 else int(num_mask_token)
        full_confidence = torch.full_like(x, -torch.inf, dtype=logits.dtype)
        full_confidence[mask_index] = confidence
        if count > 0:
            if count > int(mask_index.sum(dim=1).min()):
                raise UnspecifiedTieOrder(f"step {i}: count {count} exceeds a row's masks {mask_index.sum(1).tolist()}")
            _, transfer_index = torch.topk(full_confidence, count)
            x_ = torch.zeros_like(x) + mask_id
            x_[mask_index] = x0.clone()
            rows = torch.arange(B)[:, None].expand_as(transfer_index)
            x[rows, transfer_index] = x_[rows, transfer_index]
    return x
