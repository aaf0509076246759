"""The optimizer of both papers: AdamW with a warmup-constant schedule and global-norm clipping,
wrapped so that a step with a non-finite loss or gradient never reaches the parameters."""

from __future__ import annotations

import dataclasses

import jax
import optax

# Norm scales and biases are not decayed: transformers' Trainer does the same for Llama-style names, but on
# LLaDA's names it decays ln_f (4.57) or every norm (4.49 / 4.52): FIDELITY.md, REPRODUCTION.md.
_NO_DECAY = {"attn_norm", "mlp_norm", "final_norm", "bq", "bk", "bv"}


@dataclasses.dataclass(frozen=True)
class OptimizerSettings:
    learning_rate: float = 3e-6
    warmup_steps: int = 0
    weight_decay: float = 0.1
    b1: float = 0.9
    b2: float = 0.99
    eps: float = 1e-8
    grad_clip: float = 0.2  # global norm; 0 disables


def make_optimizer(s: OptimizerSettings) -> optax.GradientTransformation:
    schedule = optax.warmup_constant_schedule(0.0, s.learning_rate, max(s.warmup_steps, 1)) \
        if s.warmup_steps else s.learning_rate
    parts = [optax.clip_by_global_norm(s.grad_clip)] if s.grad_clip > 0 else []
    parts.append(optax.adamw(schedule, b1=s.b1, b2=s.b2, eps=s.eps, weight_decay=s.weight_decay,
                             mask=_decay_mask))
    # apply_if_finite keeps params and moments unchanged on a NaN/Inf gradient and counts the skips.
    return optax.apply_if_finite(optax.chain(*parts), max_consecutive_errors=1_000_000)


def _decay_mask(params):
    def decays(path, _):
        names = {str(getattr(k, "key", getattr(k, "name", ""))) for k in path}
        return not (names & _NO_DECAY)
    return jax.tree_util.tree_map_with_path(decays, params)
