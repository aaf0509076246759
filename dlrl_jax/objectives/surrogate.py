"""The pieces the policy-gradient objectives share: the clipped surrogate of PPO and the KL estimators
(Schulman's k2 and k3), written once. Elementwise over any shape; float32.

    ratio = exp(logp - old_logp),  surrogate = min(ratio A, clip(ratio, 1 - eps_low, 1 + eps_high) A)
    k3(ref_logp - logp) = exp(d) - d - 1 >= 0  (unbiased for KL(pi || ref), d = log ref - log pi)
    k2(logp - ref_logp) = d^2 / 2
"""

from __future__ import annotations

import jax.numpy as jnp


def clipped_surrogate(ratio, advantage, eps_low: float, eps_high: float):
    """(min(ratio A, clip(ratio) A), clipped: where the clipped term is the smaller one)."""
    clipped = jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high)
    return jnp.minimum(ratio * advantage, clipped * advantage), ratio * advantage > clipped * advantage


def k3(delta):
    """exp(delta) - delta - 1, delta = ref log-prob - policy log-prob."""
    return jnp.exp(delta) - delta - 1.0


def k2(delta):
    """delta^2 / 2, delta = policy log-likelihood - reference log-likelihood."""
    return 0.5 * delta ** 2
