"""The trajectory record (ALGORITHMS.md §2): everything RL needs from one rollout, as a frozen pytree.

The whole denoising path is recoverable from the final tokens and `unmask_step`: the completion
state before step s keeps the tokens committed at steps < s and masks the rest.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Trajectory:
    """tokens [B, P+G] int32: prompt (left-padded) + final completion.
    prompt_mask [B, P] bool: real prompt tokens.
    unmask_step [B, G] int32: the step at which completion position j was committed (T if never).
    step_logprob [B, T] float32: sum of the behaviour log-probs of the tokens committed at step s.
    step_entropy [B, T] float32: mean full-vocabulary entropy (temperature 1) over those positions.
    step_count [B, T] int32: how many tokens step s committed (0 for unused steps).
    greedy [B, T, G] int32 or None: the one-step greedy completion computed at step s (argmax at every
    still-masked completion position, committed tokens kept)."""

    tokens: jnp.ndarray
    prompt_mask: jnp.ndarray
    unmask_step: jnp.ndarray
    step_logprob: jnp.ndarray
    step_entropy: jnp.ndarray
    step_count: jnp.ndarray
    greedy: jnp.ndarray | None = None

    @property
    def prompt_length(self) -> int:
        return self.prompt_mask.shape[1]

    @property
    def gen_length(self) -> int:
        return self.unmask_step.shape[1]

    @property
    def num_steps(self) -> int:
        return self.step_logprob.shape[1]

    @property
    def completion(self) -> jnp.ndarray:
        return self.tokens[:, self.prompt_length:]


def canvas_before(tokens_BxL, unmask_step_BxG, step, mask_id: int) -> jnp.ndarray:
    """Canvas [B, L] before `step` (a scalar or one step per row, [B]) from the final tokens."""
    P = tokens_BxL.shape[1] - unmask_step_BxG.shape[1]
    step_B = jnp.broadcast_to(jnp.asarray(step), (tokens_BxL.shape[0],))
    completion = jnp.where(unmask_step_BxG < step_B[:, None], tokens_BxL[:, P:], mask_id)
    return jnp.concatenate([tokens_BxL[:, :P], completion], axis=1)


def state_before_step(trajectory: Trajectory, step, mask_id: int) -> jnp.ndarray:
    """Canvas [B, P+G] before `step` (a scalar or one step per row, [B])."""
    return canvas_before(trajectory.tokens, trajectory.unmask_step, step, mask_id)
