"""Gumbel-max candidate draws at the precision the reference implementations use (settings.noise_dtype).

float32: argmax(logits / T + Gumbel) in log space, the exact categorical draw from softmax(logits / T).

bfloat16: the official EGSPO / d1 / ESPO trainers' `add_gumbel_noise` with dtype = model.dtype (bf16):
  logits.to(bf16); U = torch.rand_like(logits, dtype=bf16); exp(logits) / (-log U) ** T; argmax.
  Every tensor there is bf16, so each operation is computed in float32 and rounded to bf16: we round
  after every operation with `lax.reduce_precision`, which no compiler pass may fuse away. U follows
  CUDA's bf16 `uniform_`: a float32 draw in (0, 1] rounded to bf16, and 1 mapped to 0; the exponent T
  is itself rounded to bf16 (torch's pow with a scalar casts the exponent to the tensor's dtype).
  The coarse U (8 significant bits) leaves many tokens tied on the largest noise factors, which the
  logits then decide: high-entropy positions sample much more greedily than softmax(logits / T).

float64: LLaDA's generate.py, the same formula in float64 (needs jax_enable_x64).

Shapes: logits [..., V] float32, keep [..., V] bool (False: never a candidate); returns int32 [...].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dlrl_jax.rollout.settings import NOISE_DTYPES


def _bf16(x):
    """Round float32 values to the nearest bfloat16 (ties to even), kept as float32."""
    return jax.lax.reduce_precision(x, exponent_bits=8, mantissa_bits=7)


def official_uniform_bf16(key, shape):
    """torch.rand(dtype=bfloat16) on CUDA: float32 in (0, 1] rounded to bf16, then 1 -> 0 (float32 [...])."""
    u = _bf16(1.0 - jax.random.uniform(key, shape, jnp.float32))
    return jnp.where(u == 1.0, 0.0, u)


def gumbel_max(logits, keep, temperature: float, noise_dtype: str, key):
    """Candidate tokens [...] drawn from softmax(logits / temperature) over `keep` (temperature > 0)."""
    if noise_dtype == "float32":
        gumbel = jax.random.gumbel(key, logits.shape, jnp.float32)
        return jnp.argmax(jnp.where(keep, logits / temperature, -jnp.inf) + gumbel, axis=-1).astype(jnp.int32)
    if noise_dtype == "bfloat16":
        u = official_uniform_bf16(key, logits.shape)
        noise = _bf16(-jnp.log(u))
        exponent = float(np.asarray(temperature, jnp.bfloat16))  # a host constant, rounded as torch does
        noise = _bf16(noise ** exponent)
        scores = _bf16(_bf16(jnp.exp(_bf16(logits))) / noise)
    elif noise_dtype == "float64":
        u = jax.random.uniform(key, logits.shape, jnp.float64)
        scores = jnp.exp(logits.astype(jnp.float64)) / (-jnp.log(u)) ** temperature
    else:
        raise ValueError(f"noise_dtype {noise_dtype!r} is unknown; use one of {NOISE_DTYPES}")
    # Candidates are >= 0; filtered and mask tokens go below every one of them.
    return jnp.argmax(jnp.where(keep, scores, -1.0), axis=-1).astype(jnp.int32)
