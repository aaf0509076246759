"""The windowed forward against a KV cache (Fast-dLLM's prefix / dual cache) vs transformers' own
cached attention: HF's DynamicCache holding the stale keys/values of the positions outside the window
(bidirectional attention does not care about the order of the keys, so prefix and suffix can share one
cache), queried by the window with its real position ids."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from transformers import DynamicCache

from dlrl_jax import checkpoints, models
from tests.models import hf_oracle


@pytest.fixture(scope="module", params=["llada", "dream"])
def pair(request, tmp_path_factory):
    family = request.param
    torch_model = hf_oracle.torch_model(family, seed=5)
    path = hf_oracle.write_checkpoint(torch_model, family, str(tmp_path_factory.mktemp(family)))
    graphdef, params = models.split(checkpoints.from_pretrained(path))
    return torch_model, graphdef, params


def _torch_window_logits(model, old_ids, new_ids, real, start, stop):
    """Logits of positions start..stop-1 of `new_ids`, every other position's keys/values taken from
    a full forward of `old_ids` (HF layout: cache [B, heads, L, Hd])."""
    B, L = old_ids.shape
    outside = np.r_[0:start, stop:L]
    full_bias = torch.zeros(B, 1, L, L)
    full_bias[torch.from_numpy(~real)[:, None, None, :].expand(B, 1, L, L)] = torch.finfo(torch.float32).min
    positions = torch.from_numpy(np.maximum(np.cumsum(real, axis=1) - 1, 0))
    with torch.no_grad():
        stale = model(input_ids=torch.from_numpy(old_ids), attention_mask=full_bias, position_ids=positions,
                      use_cache=True).past_key_values
        cache = DynamicCache()
        for i, layer in enumerate(stale.layers):
            cache.update(layer.keys[:, :, outside], layer.values[:, :, outside], i)
        key_real = np.concatenate([real[:, outside], real[:, start:stop]], axis=1)  # HF appends the window's keys
        bias = torch.zeros(B, 1, stop - start, L)
        bias[torch.from_numpy(~key_real)[:, None, None, :].expand_as(bias)] = torch.finfo(torch.float32).min
        out = model(input_ids=torch.from_numpy(new_ids[:, start:stop]), attention_mask=bias,
                    position_ids=positions[:, start:stop], past_key_values=cache)
    return out.logits.numpy()


@pytest.mark.parametrize("start,stop", [(6, 10), (6, 16), (0, 4)], ids=["dual", "prefix", "first-block"])
def test_window_against_stale_cache_matches_transformers(pair, start, stop):
    torch_model, graphdef, params = pair
    rng = np.random.default_rng(start * 31 + stop)
    B, L = 3, 16
    real = np.ones((B, L), bool)
    real[1, :3] = False
    old = np.where(real, rng.integers(3, 96, (B, L)), 0)
    new = old.copy()
    new[:, start:stop] = rng.integers(3, 97, (B, stop - start))  # the window moved on since the cache
    want = _torch_window_logits(torch_model, old, new, real, start, stop)
    _, cache = models.hidden_and_cache(graphdef, params, jnp.asarray(old, jnp.int32), jnp.asarray(real))
    h = models.hidden_window(graphdef, params, jnp.asarray(new[:, start:stop], jnp.int32), jnp.asarray(real),
                             cache, start)
    got = np.asarray(models.unembed(graphdef, params, h))
    window_real = real[:, start:stop]
    np.testing.assert_allclose(got[window_real], want[window_real], atol=1e-4, rtol=0)
    # and the stale cache matters: the full forward of the new canvas differs
    exact = np.asarray(models.unembed(graphdef, params, models.hidden_and_cache(
        graphdef, params, jnp.asarray(new, jnp.int32), jnp.asarray(real))[0]))[:, start:stop]
    if stop - start < L:
        assert np.abs(exact - got)[window_real].max() > 1e-3


def test_fresh_cache_window_equals_full_forward(pair):
    """With a cache of the current canvas the window is exact: the same as transformers' full forward."""
    torch_model, graphdef, params = pair
    ids = np.random.default_rng(1).integers(3, 97, (2, 14))
    real = np.ones_like(ids, bool)
    _, cache = models.hidden_and_cache(graphdef, params, jnp.asarray(ids, jnp.int32))
    h = models.hidden_window(graphdef, params, jnp.asarray(ids[:, 5:9], jnp.int32), jnp.asarray(real), cache, 5)
    got = np.asarray(models.unembed(graphdef, params, h))
    want = _torch_window_logits(torch_model, ids, ids, real, 0, 14)[:, 5:9]  # plain full forward
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
