"""The optimizer of both papers: AdamW with a warmup-constant schedule and global-norm clipping,
wrapped so that a step with a non-finite loss or gradient never reaches the parameters.

`schedule: cosine` is an option (off in the paper configs): after the warmup the learning rate follows a
cosine from its peak down to `min_lr_ratio` x peak at `decay_steps`, as transformers'
`cosine_with_min_lr` (ESPO's recipes/train.yaml names it with min_lr_rate 0.1; its run scripts override
it with constant_with_warmup, which is what the paper configs keep)."""

from __future__ import annotations

import dataclasses

import jax
import optax

from dlrl_jax.training.algorithm_settings import optimizer_steps_per_iteration

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
    schedule: str = "constant"  # constant | cosine
    decay_steps: int = 0        # cosine: optimizer steps from the start to the end of the decay (warmup included)
    min_lr_ratio: float = 0.1   # cosine: the learning rate at decay_steps and after, as a fraction of the peak


SCHEDULES = ("constant", "cosine")


def learning_rate_schedule(s: OptimizerSettings):
    """The learning rate as a function of the optimizer step (or a constant)."""
    if s.schedule == "cosine":
        if s.decay_steps <= s.warmup_steps:
            raise ValueError(f"a cosine schedule needs decay_steps ({s.decay_steps}) > warmup_steps ({s.warmup_steps})")
        return optax.warmup_cosine_decay_schedule(0.0 if s.warmup_steps else s.learning_rate, s.learning_rate,
                                                  s.warmup_steps, s.decay_steps, s.learning_rate * s.min_lr_ratio)
    if s.schedule != "constant":
        raise ValueError(f"unknown learning-rate schedule {s.schedule!r}; choose one of {list(SCHEDULES)}")
    return optax.warmup_constant_schedule(0.0, s.learning_rate, max(s.warmup_steps, 1)) \
        if s.warmup_steps else s.learning_rate


def rl_optimizer_settings(optim, algorithm, iterations: int, stepwise: bool) -> OptimizerSettings:
    """The RL optimizer's settings from the config's `optim:` section; a cosine decays over the run's
    optimizer steps (iterations x steps per iteration at algorithm.k; stepwise: the objective selects steps)."""
    return OptimizerSettings(learning_rate=optim.learning_rate, warmup_steps=optim.warmup_steps,
                             weight_decay=optim.weight_decay, b1=optim.b1, b2=optim.b2, grad_clip=optim.grad_clip,
                             schedule=optim.schedule, min_lr_ratio=optim.min_lr_ratio,
                             decay_steps=iterations * optimizer_steps_per_iteration(algorithm, stepwise))


def make_optimizer(s: OptimizerSettings) -> optax.GradientTransformation:
    schedule = learning_rate_schedule(s)
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
