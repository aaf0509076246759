"""The approximate-KV-cache sampler (settings.cache "prefix" / "dual") against a plain PyTorch loop of
Fast-dLLM's caching on transformers' Llama: per block one full forward whose keys/values are kept,
then windowed forwards through HF's DynamicCache. Greedy low-confidence decoding, token for token."""

import jax
import numpy as np
import pytest
import torch
from transformers import DynamicCache

from dlrl_jax import checkpoints, models, rollout
from tests.models import hf_oracle

MASK = 96


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    torch_model = hf_oracle.torch_model("llada", seed=2)
    with torch.no_grad():  # a random init is nearly position-blind; larger weights separate the confidences
        for p in torch_model.parameters():
            if p.ndim >= 2:
                p.mul_(4.0)
    path = hf_oracle.write_checkpoint(torch_model, "llada", str(tmp_path_factory.mktemp("llada")), mask_token_id=MASK)
    return torch_model, models.split(checkpoints.from_pretrained(path))


def _commit(x, logits, lo, k):
    """Greedy candidates (never the mask), confidence = softmax prob of the candidate; the k most
    confident masked positions of the block [lo, lo + W) take their candidates."""
    logits = logits.double()
    candidate_logits = logits.clone()
    candidate_logits[..., MASK] = -torch.inf
    x0 = candidate_logits.argmax(-1)
    confidence = torch.softmax(logits, -1).gather(-1, x0[..., None])[..., 0]
    block = x[:, lo:lo + logits.shape[1]]
    confidence = torch.where(block == MASK, confidence, -torch.inf)
    for row in range(x.shape[0]):
        chosen = torch.argsort(-confidence[row], stable=True)[:k]
        block[row, chosen] = x0[row, chosen]


def torch_cached_generate(model, prompt, G, bl, steps, mode):
    B, P = prompt.shape
    L = P + G
    x = torch.cat([prompt, torch.full((B, G), MASK)], dim=1)
    spb = steps // (G // bl)
    per_step = [bl // spb + (1 if i < bl % spb else 0) for i in range(spb)]
    with torch.no_grad():
        for b in range(G // bl):
            lo, hi = P + b * bl, P + (b + 1) * bl
            full = model(input_ids=x, attention_mask=torch.zeros(B, 1, L, L), use_cache=True)
            _commit(x, full.logits[:, lo:hi], lo, per_step[0])
            stop = hi if mode == "dual" else L
            outside = np.r_[0:lo, stop:L]
            for k in per_step[1:]:
                cache = DynamicCache()
                for i, layer in enumerate(full.past_key_values.layers):
                    cache.update(layer.keys[:, :, outside], layer.values[:, :, outside], i)
                out = model(input_ids=x[:, lo:stop], attention_mask=torch.zeros(B, 1, stop - lo, L),
                            position_ids=torch.arange(lo, stop)[None].expand(B, -1), past_key_values=cache)
                _commit(x, out.logits[:, :bl], lo, k)
    return x.numpy()


@pytest.mark.parametrize("mode", ["dual", "prefix"])
def test_cached_sampler_matches_pytorch_fast_dllm_loop(pair, mode):
    torch_model, (graphdef, params) = pair
    prompt = np.random.default_rng(4).integers(3, MASK, (3, 6))
    G, bl, steps = 12, 4, 6  # 3 blocks of 2 steps: the second step of each block uses the cache
    want = torch_cached_generate(torch_model, torch.from_numpy(prompt), G, bl, steps, mode)
    settings = rollout.SamplerSettings(gen_length=G, block_length=bl, steps=steps, mask_id=MASK, cache=mode)
    got = rollout.generate(graphdef, params, prompt, np.ones_like(prompt, bool), jax.random.key(0), settings)
    np.testing.assert_array_equal(np.asarray(got.tokens), want)
    exact = rollout.generate(graphdef, params, prompt, np.ones_like(prompt, bool), jax.random.key(0),
                             rollout.SamplerSettings(gen_length=G, block_length=bl, steps=steps, mask_id=MASK))
    counts = np.asarray(got.step_count)
    np.testing.assert_array_equal(counts, np.asarray(exact.step_count))  # the same schedule
    np.testing.assert_array_equal(np.asarray(got.unmask_step) < steps, True)


@pytest.mark.parametrize("family,threshold,temperature,cfg_scale", [("llada", None, 1.0, 0.5), ("dream", None, 0.0, 0.0),
                                                                    ("dream", 0.0, 0.0, 0.0)])
def test_one_step_per_block_is_exact(family, threshold, temperature, cfg_scale):
    """Each block's only step is the full forward, so both caches reproduce the exact sampler, record
    for record (random draws included), for the shifted (Dream) alignment, classifier-free guidance
    and left padding too."""
    cfg = models.preset("tiny", family=family, vocab_size=32, d_model=32, n_layers=2, n_heads=2, n_kv_heads=2,
                        mlp_hidden=64, mask_token_id=31)
    graphdef, params = models.split(models.init_model(cfg, seed=3))
    params = jax.tree.map(lambda w: w * 4.0 if w.ndim >= 2 else w, params)
    ids = np.random.default_rng(0).integers(3, 31, (3, 5))
    mask = np.ones_like(ids, bool)
    ids[2, :2], mask[2, :2] = 0, False
    # threshold 0 commits a whole block in one step
    base = dict(gen_length=8, block_length=2, steps=4, mask_id=31, temperature=temperature, threshold=threshold,
                cfg_scale=cfg_scale)
    want = rollout.generate(graphdef, params, ids, mask, jax.random.key(1), rollout.SamplerSettings(**base))
    for mode in ("prefix", "dual"):
        got = rollout.generate(graphdef, params, ids, mask, jax.random.key(1),
                               rollout.SamplerSettings(**base, cache=mode))
        np.testing.assert_array_equal(np.asarray(got.tokens), np.asarray(want.tokens), err_msg=mode)
        np.testing.assert_array_equal(np.asarray(got.unmask_step), np.asarray(want.unmask_step))
        np.testing.assert_allclose(np.asarray(got.step_logprob), np.asarray(want.step_logprob), atol=1e-5)


def test_cache_settings_are_validated():
    with pytest.raises(rollout.SamplerSettingsError, match="cache 'kv' is unknown"):
        rollout.SamplerSettings(gen_length=8, block_length=4, steps=4, mask_id=1, cache="kv").validate()
    with pytest.raises(rollout.SamplerSettingsError, match="record_greedy"):
        rollout.SamplerSettings(gen_length=8, block_length=4, steps=4, mask_id=1, cache="dual",
                                record_greedy=True).validate()
