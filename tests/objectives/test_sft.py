"""LLaDA's masked-diffusion SFT loss against a numpy re-derivation on the same mask draw."""

import jax
import jax.numpy as jnp
import numpy as np

from dlrl_jax import models
from dlrl_jax.objectives.sft import sft_loss

MASK = 15


def test_sft_loss_matches_numpy():
    cfg = models.preset("tiny", vocab_size=16, d_model=32, n_layers=2, n_heads=2, n_kv_heads=2, mlp_hidden=64,
                        mask_token_id=MASK)
    graphdef, params = models.split(models.init_model(cfg, seed=2))
    rng = np.random.default_rng(0)
    B, P, G = 5, 3, 7
    prompt = rng.integers(1, MASK, (B, P)).astype(np.int32)
    prompt_mask = np.ones((B, P), bool)
    prompt_mask[0, 0] = False
    completion = rng.integers(1, MASK, (B, G)).astype(np.int32)
    real = np.ones((B, G), bool)
    real[2, 5:] = False  # padding after the end of row 2's completion is never trained on
    key = jax.random.key(3)
    batch = {"prompt_ids": prompt, "prompt_mask": prompt_mask, "completion_ids": completion, "completion_mask": real}
    loss, sums = sft_loss(graphdef, params, batch, key, mask_id=MASK, total_rows=B)

    # The documented draw: t = (1 - eps) U + eps per row, then a token is masked when U' < t.
    t_key, m_key = jax.random.split(key)
    t = 0.999 * np.asarray(jax.random.uniform(t_key, (B,))) + 0.001
    masked = (np.asarray(jax.random.uniform(m_key, (B, G))) < t[:, None]) & real
    ids = np.concatenate([prompt, np.where(masked, MASK, completion)], axis=1)
    attention = np.concatenate([prompt_mask, np.ones((B, G), bool)], axis=1)
    logits = np.asarray(models.forward(graphdef, params, jnp.asarray(ids), jnp.asarray(attention)), np.float64)[:, P:]
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    want = 0.0
    for b in range(B):
        nll = [-logp[b, j, completion[b, j]] / t[b] for j in range(G) if masked[b, j]]
        want += sum(nll) / real[b].sum()
    want /= B
    assert masked.sum() > 0
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    assert float(sums["masked_tokens"]) == masked.sum()
