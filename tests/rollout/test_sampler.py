"""The sampler against an independent numpy loop over ALGORITHMS.md §1 calling the same model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dlrl_jax import models, rollout
from dlrl_jax.rollout.sampler import _generate

MASK, PAD, V = 15, 0, 16


def sampler_model():
    """(graphdef, params) of the sampler tests (also bench/device/parity.py's, on an accelerator)."""
    cfg = models.preset("tiny", vocab_size=V, d_model=32, n_layers=2, n_heads=2, n_kv_heads=2, mlp_hidden=64,
                        mask_token_id=MASK)
    graphdef, params = models.split(models.init_model(cfg, seed=11))
    # A random init is nearly position-blind, so confidences differ only in the 6th digit and float
    # rounding would decide between them; larger weights make the choices well separated.
    return graphdef, jax.tree.map(lambda w: w * 5.0 if w.ndim >= 2 else w, params)


@pytest.fixture(scope="module")
def model():
    return sampler_model()


def _prompts(B=3, P=4, pad_rows=()):
    rng = np.random.default_rng(B * 10 + P)
    ids = rng.integers(1, MASK, (B, P)).astype(np.int32)
    mask = np.ones((B, P), bool)
    for row, n in pad_rows:
        ids[row, :n], mask[row, :n] = PAD, False
    return ids, mask


def reference(graphdef, params, ids, mask, G, block, steps, remasking="low_confidence", key=None):
    """Plain loop: per block, k_i = n // spb + (i < n % spb); candidates by argmax; confidence =
    softmax prob of the candidate (or the documented uniform draw); top-k among masked positions of
    the active block; committed tokens never change."""
    B, P = ids.shape
    x = np.concatenate([ids, np.full((B, G), MASK, np.int32)], axis=1)
    attention = np.concatenate([mask, np.ones((B, G), bool)], axis=1)
    nb, spb = G // block, steps // (G // block)
    step = 0
    for b in range(nb):
        lo, hi = P + b * block, P + (b + 1) * block
        n = (x[:, lo:hi] == MASK).sum(axis=1)
        for i in range(spb):
            logits = np.asarray(models.forward(graphdef, params, jnp.asarray(x), jnp.asarray(attention)), np.float64)
            logits[..., MASK] = -np.inf
            x0 = logits.argmax(-1)
            p = np.exp(logits - logits.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)  # the mask token has probability 0 (never a candidate)
            if remasking in ("low_confidence", "maskgit_plus"):
                conf = np.take_along_axis(p, x0[..., None], -1)[..., 0]
            elif remasking == "topk_margin":
                top = np.sort(p, axis=-1)
                conf = top[..., -1] - top[..., -2]
            elif remasking == "entropy":
                conf = np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)
            else:  # the sampler's documented draw: uniform [B, block] from the step's remask key
                _, remask_key = jax.random.split(jax.random.fold_in(key, step))
                conf = np.full(x.shape, -np.inf)
                conf[:, lo:hi] = np.asarray(jax.random.uniform(remask_key, (B, block)))
            conf = np.where(x == MASK, conf, -np.inf)
            conf[:, hi:] = -np.inf
            conf[:, :lo] = -np.inf
            for r in range(B):
                k = n[r] // spb + (1 if i < n[r] % spb else 0)
                for j in np.argsort(-conf[r], kind="stable")[:k]:
                    x[r, j] = x0[r, j]
            step += 1
    return x


@pytest.mark.parametrize("G,block,steps", [(8, 8, 8), (8, 4, 4), (10, 5, 6), (8, 2, 4)])
def test_temperature_zero_matches_numpy_loop(model, G, block, steps):
    graphdef, params = model
    ids, mask = _prompts(pad_rows=[(1, 2)])
    settings = rollout.SamplerSettings(gen_length=G, block_length=block, steps=steps, mask_id=MASK)
    traj = rollout.generate(graphdef, params, ids, mask, jax.random.key(0), settings)
    want = reference(graphdef, params, ids, mask, G, block, steps)
    np.testing.assert_array_equal(np.asarray(traj.tokens), want)
    assert (np.asarray(traj.step_count) == rollout.transfer_schedule(settings)[None]).all()
    assert (np.asarray(traj.completion) != MASK).all()


@pytest.mark.parametrize("order", ["maskgit_plus", "topk_margin", "entropy"])
def test_dream_orders_match_numpy_loop(model, order):
    graphdef, params = model
    ids, mask = _prompts()
    settings = rollout.SamplerSettings(gen_length=8, block_length=4, steps=4, mask_id=MASK, remasking=order)
    traj = rollout.generate(graphdef, params, ids, mask, jax.random.key(0), settings)
    np.testing.assert_array_equal(np.asarray(traj.tokens), reference(graphdef, params, ids, mask, 8, 4, 4, order))


def test_top_k_one_makes_sampling_greedy(model):
    graphdef, params = model
    ids, mask = _prompts()
    greedy = rollout.generate(graphdef, params, ids, mask, jax.random.key(0),
                              rollout.SamplerSettings(gen_length=8, block_length=4, steps=4, mask_id=MASK))
    hot = rollout.generate(graphdef, params, ids, mask, jax.random.key(9),
                           rollout.SamplerSettings(gen_length=8, block_length=4, steps=4, mask_id=MASK,
                                                   temperature=5.0, top_k=1, top_p=0.5))
    np.testing.assert_array_equal(np.asarray(hot.tokens), np.asarray(greedy.tokens))


def test_random_remasking_with_fixed_key_matches_numpy_loop(model):
    graphdef, params = model
    ids, mask = _prompts()
    key = jax.random.key(42)
    settings = rollout.SamplerSettings(gen_length=8, block_length=4, steps=4, mask_id=MASK, remasking="random")
    traj = rollout.generate(graphdef, params, ids, mask, key, settings)
    np.testing.assert_array_equal(np.asarray(traj.tokens),
                                  reference(graphdef, params, ids, mask, 8, 4, 4, "random", key))


def test_one_step_tokens_follow_softmax_over_temperature(model):
    graphdef, params = model
    ids, mask = _prompts(B=1, P=3)
    T = 0.7
    settings = rollout.SamplerSettings(gen_length=1, block_length=1, steps=1, mask_id=MASK, temperature=T)
    n = 4000
    keys = jax.random.split(jax.random.key(1), n)
    sample = jax.jit(jax.vmap(lambda k: rollout.generate(graphdef, params, ids, mask, k, settings).completion[0, 0]))
    counts = np.bincount(np.asarray(sample(keys)), minlength=V)
    canvas = np.concatenate([ids, [[MASK]]], axis=1)
    logits = np.asarray(models.forward(graphdef, params, jnp.asarray(canvas)), np.float64)[0, -1] / T
    logits[MASK] = -np.inf
    p = np.exp(logits - logits.max())
    p /= p.sum()
    keep = p * n >= 5  # chi-square needs expected counts >= 5; the rest are pooled
    observed = np.append(counts[keep], counts[~keep].sum())
    expected = np.append(p[keep] * n, p[~keep].sum() * n)
    if expected[-1] < 5:
        observed, expected = observed[:-1], expected[:-1] * observed[:-1].sum() / expected[:-1].sum()
    assert counts[MASK] == 0
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_records_equal_fresh_forward_passes_at_rebuilt_states(model):
    graphdef, params = model
    ids, mask = _prompts(pad_rows=[(2, 1)])
    settings = rollout.SamplerSettings(gen_length=8, block_length=4, steps=4, mask_id=MASK, temperature=0.8,
                                       record_greedy=True)
    traj = rollout.generate(graphdef, params, ids, mask, jax.random.key(3), settings)
    P, G = ids.shape[1], 8
    attention = np.concatenate([mask, np.ones((3, G), bool)], axis=1)
    unmask = np.asarray(traj.unmask_step)
    for s in range(settings.steps):
        state = np.asarray(rollout.state_before_step(traj, s, MASK))
        want_state = np.asarray(traj.tokens).copy()
        want_state[:, P:][unmask >= s] = MASK
        np.testing.assert_array_equal(state, want_state)
        logits = np.asarray(models.forward(graphdef, params, jnp.asarray(state), jnp.asarray(attention)),
                            np.float64)[:, P:]
        logp = logits - logits.max(-1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
        entropy = -(np.exp(logp) * logp).sum(-1)
        committed = unmask == s
        tok_logp = np.take_along_axis(logp, np.asarray(traj.completion)[..., None], -1)[..., 0]
        np.testing.assert_allclose(traj.step_logprob[:, s], (tok_logp * committed).sum(1), atol=1e-5)
        np.testing.assert_allclose(traj.step_entropy[:, s], (entropy * committed).sum(1) / committed.sum(1),
                                   atol=1e-5)
        masked_logits = logits.copy()
        masked_logits[..., MASK] = -np.inf
        greedy = np.where(state[:, P:] == MASK, masked_logits.argmax(-1), state[:, P:])
        np.testing.assert_array_equal(np.asarray(traj.greedy[:, s]), greedy)


def test_threshold_decoding(model):
    graphdef, params = model
    ids, mask = _prompts()
    one_by_one = rollout.generate(graphdef, params, ids, mask, jax.random.key(0),
                                  rollout.SamplerSettings(gen_length=8, block_length=4, steps=8, mask_id=MASK))
    strict = rollout.generate(graphdef, params, ids, mask, jax.random.key(0),
                              rollout.SamplerSettings(gen_length=8, block_length=4, steps=8, mask_id=MASK,
                                                      threshold=1.0))
    # Nothing reaches confidence 1, so each step commits exactly its most confident token.
    np.testing.assert_array_equal(np.asarray(strict.tokens), np.asarray(one_by_one.tokens))
    np.testing.assert_array_equal(np.asarray(strict.unmask_step), np.asarray(one_by_one.unmask_step))
    eager = rollout.generate(graphdef, params, ids, mask, jax.random.key(0),
                             rollout.SamplerSettings(gen_length=8, block_length=4, steps=8, mask_id=MASK,
                                                     threshold=0.0))
    counts = np.asarray(eager.step_count)
    assert (counts[:, :2] == 4).all() and (counts[:, 2:] == 0).all()  # a whole block per step, then done
    assert (np.asarray(eager.completion) != MASK).all()


def test_same_shapes_do_not_recompile(model):
    graphdef, params = model
    settings = rollout.SamplerSettings(gen_length=4, block_length=4, steps=2, mask_id=MASK)
    ids, mask = _prompts(B=2, P=5)
    rollout.generate(graphdef, params, ids, mask, jax.random.key(0), settings)
    before = _generate._cache_size()
    for seed in range(3):
        other = np.random.default_rng(seed).integers(1, MASK, ids.shape).astype(np.int32)
        rollout.generate(graphdef, params, other, mask, jax.random.key(seed), settings)
    assert _generate._cache_size() == before


@pytest.mark.parametrize("changes,message", [
    (dict(gen_length=10, block_length=4), r"gen_length 10 is not divisible by block_length 4; choose block_length "
                                          r"from \[1, 2, 5, 10\]"),
    (dict(steps=3), r"steps 3 is not a multiple of the 2 blocks"),
    (dict(steps=16), r"steps 16 exceeds gen_length 8"),
    (dict(remasking="fifo"), r"remasking 'fifo' is unknown"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
    (dict(temperature=-1.0), r"temperature must be >= 0"),
])
def test_settings_errors_before_compiling(changes, message):
    base = dict(gen_length=8, block_length=4, steps=4, mask_id=MASK)
    with pytest.raises(rollout.SamplerSettingsError, match=message):
        rollout.SamplerSettings(**dict(base, **changes)).validate()
