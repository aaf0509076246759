"""settings.noise_dtype: the Gumbel-max candidate draw against an independent numpy emulation of the
official trainers' bf16 formula (EGSPO / d1 / ESPO `add_gumbel_noise` with dtype = model.dtype = bf16)."""

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from scipy import stats

from dlrl_jax import rollout
from dlrl_jax.rollout.steps import candidates

F32, BF16 = np.float32, ml_dtypes.bfloat16


def _bf16(x):
    return np.asarray(x, F32).astype(BF16).astype(F32)


def official_bf16_candidates(logits, temperature, n, rng):
    """numpy + ml_dtypes emulation of `exp(logits) / (-log U) ** T` with every tensor in bfloat16:
    each operation in float32, rounded to bf16. U: CUDA's bf16 uniform_ (a float32 in (0, 1] rounded
    to bf16, 1 -> 0); the scalar exponent is cast to bf16 as torch's pow does. Returns [n] argmaxes."""
    u = _bf16(F32(1) - rng.random((n, logits.shape[-1]), dtype=F32))
    u = np.where(u == 1, F32(0), u)
    with np.errstate(divide="ignore"):
        noise = _bf16(-np.log(u))
    noise = _bf16(noise ** F32(_bf16(temperature)))
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = _bf16(_bf16(np.exp(_bf16(logits))) / noise)
    return scores.argmax(-1)


def _draw(logits, temperature, noise_dtype, n, seed):
    """n candidates through the sampler's own candidate function (mask id = the last token, excluded)."""
    V = logits.shape[-1]
    settings = rollout.SamplerSettings(gen_length=1, block_length=1, steps=1, mask_id=V, temperature=temperature,
                                       noise_dtype=noise_dtype)
    padded = jnp.asarray(np.concatenate([np.broadcast_to(logits, (n, 1, V)), np.full((n, 1, 1), -1e9, F32)], -1))
    x0, _ = jax.jit(lambda l, k: candidates(settings.validate(), l, k, k))(padded, jax.random.key(seed))
    return np.asarray(x0)[:, 0]


def _softmax(logits):
    p = np.exp(logits - logits.max())
    return p / p.sum()


def test_bf16_candidates_match_numpy_emulation_of_the_official_formula():
    logits = (np.random.default_rng(0).standard_normal(16) * 1.5).astype(F32)
    got = np.bincount(_draw(logits, 0.9, "bfloat16", 20000, seed=1), minlength=16)
    want = np.bincount(official_bf16_candidates(logits, 0.9, 400000, np.random.default_rng(2)), minlength=16)
    assert stats.chi2_contingency(np.stack([got, want])).pvalue > 1e-3
    # the test can tell: float32 noise draws the exact softmax, which the bf16 formula does not
    f32 = np.bincount(_draw(logits, 0.9, "float32", 20000, seed=1), minlength=16)
    assert stats.chi2_contingency(np.stack([f32, want])).pvalue < 1e-6


def test_bf16_noise_is_greedier_than_float32_at_high_entropy():
    """1024 tokens, entropy 6.4 nats: float32 samples have mean -log p = the entropy; the official
    bf16 formula (and this sampler with noise_dtype bfloat16) samples more greedily."""
    logits = (np.random.default_rng(3).standard_normal(1024)).astype(F32)
    p = _softmax(logits.astype(np.float64))
    entropy = -(p * np.log(p)).sum()
    n = 2000
    f32 = -np.log(p[_draw(logits, 1.0, "float32", n, seed=4)])
    bf16 = -np.log(p[_draw(logits, 1.0, "bfloat16", n, seed=5)])
    emulated = -np.log(p[official_bf16_candidates(logits, 1.0, 8000, np.random.default_rng(6))])
    assert abs(f32.mean() - entropy) < 4 * f32.std() / np.sqrt(n)
    assert abs(bf16.mean() - emulated.mean()) < 4 * np.hypot(bf16.std() / np.sqrt(n), emulated.std() / np.sqrt(8000))
    assert bf16.mean() < entropy - 0.5  # the emulation's gap: about 6.4 -> 5.8 nats


def test_float64_noise_follows_softmax_where_x64_is_enabled():
    logits = (np.random.default_rng(7).standard_normal(16) * 1.5).astype(F32)
    with jax.enable_x64(True):
        counts = np.bincount(_draw(logits, 0.7, "float64", 20000, seed=8), minlength=16)
    p = _softmax(logits.astype(np.float64) / 0.7)
    assert stats.chisquare(counts, p * 20000).pvalue > 1e-3


def test_float64_without_x64_is_a_named_error():
    if jax.config.jax_enable_x64:
        pytest.skip("64-bit JAX is on in this session")
    with pytest.raises(rollout.SamplerSettingsError, match=r"noise_dtype float64 needs 64-bit JAX"):
        rollout.SamplerSettings(gen_length=1, block_length=1, steps=1, mask_id=0, noise_dtype="float64").validate()
