"""The ELBO estimator against the exact ELBO from enumerating every mask subset (G <= 6)."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlrl_jax import models
from dlrl_jax.objectives import elbo

MASK, V, B, P, G = 11, 12, 4, 3, 5
N_DRAWS = 1500


def elbo_setup():
    """(model, graphdef, params, prompt, prompt_mask, completion) of the estimator tests (also
    bench/device/parity.py's, on an accelerator)."""
    cfg = models.preset("tiny", vocab_size=V, d_model=32, n_layers=2, n_heads=2, n_kv_heads=2, mlp_hidden=64,
                        mask_token_id=MASK)
    model = models.init_model(cfg, seed=5)
    graphdef, params = models.split(model)
    rng = np.random.default_rng(1)
    prompt = rng.integers(0, MASK, (B, P)).astype(np.int32)
    completion = rng.integers(0, MASK, (B, G)).astype(np.int32)
    prompt_mask = np.ones((B, P), bool)
    prompt_mask[2, 0] = False
    return model, graphdef, params, prompt, prompt_mask, completion


@pytest.fixture(scope="module")
def setup():
    return elbo_setup()


def exact_elbo(graphdef, params, prompt, prompt_mask, completion):
    """sum_{l=1..G} (1/l) mean_{|S|=l} sum_{j in S} log p(y_j | y with S masked): every subset, one batch."""
    subsets = [s for l in range(1, G + 1) for s in itertools.combinations(range(G), l)]
    out = []
    for b in range(B):
        rows = np.repeat(np.concatenate([prompt[b], completion[b]])[None], len(subsets), axis=0)
        for i, s in enumerate(subsets):
            rows[i, P + np.array(s)] = MASK
        attention = np.repeat(np.concatenate([prompt_mask[b], np.ones(G, bool)])[None], len(subsets), axis=0)
        logits = np.asarray(models.forward(graphdef, params, jnp.asarray(rows), jnp.asarray(attention)), np.float64)
        logp = logits - logits.max(-1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
        total = 0.0
        for i, s in enumerate(subsets):
            l = len(s)
            total += sum(logp[i, P + j, completion[b, j]] for j in s) / l / math.comb(G, l)
        out.append(total)
    return np.array(out)


def _draws(graphdef, params, prompt, prompt_mask, completion, coupled, stratified):
    keys = jax.random.split(jax.random.key(7), N_DRAWS)
    fn = jax.jit(jax.vmap(lambda k: elbo.estimate_pure(graphdef, params, prompt, prompt_mask, completion, k,
                                                       coupled=coupled, stratified=stratified, mask_id=MASK,
                                                       remat=False)))
    return np.asarray(fn(keys), np.float64)


@pytest.mark.parametrize("stratified", [True, False])
def test_estimates_are_unbiased_and_coupling_lowers_variance(setup, stratified):
    _, graphdef, params, prompt, prompt_mask, completion = setup
    exact = exact_elbo(graphdef, params, prompt, prompt_mask, completion)
    variances = {}
    for coupled in (False, True):
        draws = _draws(graphdef, params, prompt, prompt_mask, completion, coupled, stratified)
        se = draws.std(axis=0, ddof=1) / np.sqrt(N_DRAWS)
        assert np.all(np.abs(draws.mean(axis=0) - exact) < 3 * se), (coupled, draws.mean(0), exact, se)
        variances[coupled] = draws.var(axis=0)
    assert np.all(variances[True] < 0.8 * variances[False]), variances


def test_stratified_counts_cover_the_range_and_masks_have_that_size():
    masked, l = elbo.draw_masks(jax.random.key(0), 12, 5, stratified=True)
    l = np.asarray(l)
    assert sorted(np.bincount(l, minlength=6).tolist()) == [2, 2, 2, 2, 2, 2]  # 12 rows over 6 counts
    np.testing.assert_array_equal(np.asarray(masked).sum(axis=1), l)


def test_model_level_api_and_shared_draws(setup):
    model, graphdef, params, prompt, prompt_mask, completion = setup
    key = jax.random.key(3)
    a = elbo.estimate(model, prompt, completion, key, num_samples=2, mask_id=MASK, prompt_mask=prompt_mask)
    b = elbo.estimate_pure(graphdef, params, prompt, prompt_mask, completion, key, num_samples=2, mask_id=MASK)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert a.shape == (B,) and np.all(np.asarray(a) < 0)


# slow (about 40 s on 2 cores): tests/models/test_lora.py checks the dropout masks against PyTorch in the suite
@pytest.mark.slow
def test_passes_in_one_forward_equal_separate_forwards_with_lora_dropout():
    """Without remat the 2 x num_samples passes run as one forward over all their rows; each pass keeps
    its own masks and its own LoRA dropout draw (a key per pass), so values and adapter gradients
    are those of the separate, rematerialised forwards."""
    cfg = models.preset("tiny", vocab_size=V, d_model=32, n_layers=2, n_heads=2, n_kv_heads=1, mlp_hidden=64,
                        mask_token_id=MASK, lora_rank=4, lora_alpha=8.0, lora_targets=("q", "v", "up"),
                        lora_dropout=0.5)
    graphdef, params = models.split(models.init_model(cfg, seed=2))
    noise = iter(jax.random.split(jax.random.key(1), len(jax.tree.leaves(params))))
    params = jax.tree_util.tree_map_with_path(  # adapters well away from B = 0, so dropping inputs matters
        lambda path, x: x + 0.5 * jax.random.normal(next(noise), x.shape) if "lora" in jax.tree_util.keystr(path)
        else x, params)
    rng = np.random.default_rng(3)
    prompt, completion = (jnp.asarray(rng.integers(0, MASK, (B, n)), jnp.int32) for n in (P, G))
    prompt_mask = jnp.asarray(np.arange(P)[None] >= np.array([[0], [1], [0], [2]]))  # left padding

    def total(p, remat, dropout_key):
        return elbo.estimate_pure(graphdef, p, prompt, prompt_mask, completion, jax.random.key(4), num_samples=2,
                                  mask_id=MASK, remat=remat, dropout_key=dropout_key)

    key = jax.random.key(9)
    values = {remat: np.asarray(jax.jit(lambda p, r=remat: total(p, r, key))(params)) for remat in (True, False)}
    np.testing.assert_allclose(values[False], values[True], rtol=1e-5)
    assert not np.allclose(values[False], np.asarray(total(params, False, None)), rtol=1e-2)  # dropout is on
    grads = {remat: jax.jit(jax.grad(lambda p, r=remat: total(p, r, key).sum()))(params) for remat in (True, False)}
    for path, g in jax.tree_util.tree_leaves_with_path(grads[False]):
        if "lora" in jax.tree_util.keystr(path):
            expected = next(x for q, x in jax.tree_util.tree_leaves_with_path(grads[True]) if q == path)
            np.testing.assert_allclose(np.asarray(g), np.asarray(expected), rtol=1e-4, atol=1e-6)
