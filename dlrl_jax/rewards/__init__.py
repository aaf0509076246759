"""Task rewards: `score(task, completions, examples) -> float32 array`, one reward per completion."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dlrl_jax.rewards import countdown, gsm8k, math_answer, sudoku

_TASKS = {"sudoku": (sudoku.sudoku_reward, sudoku.validate_example),
          "countdown": (countdown.countdown_reward, countdown.validate_example),
          "gsm8k": (gsm8k.gsm8k_reward, gsm8k.validate_example),
          "math": (math_answer.math_reward, math_answer.validate_example)}


def available_tasks() -> list[str]:
    return sorted(_TASKS)


def score(task: str, completions: Sequence[str], examples: Sequence[dict]) -> np.ndarray:
    """Rewards [N] float32 for `completions[i]` against `examples[i]` (the task's record schema)."""
    if task not in _TASKS:
        raise ValueError(f"no reward for task {task!r}; available: {available_tasks()}")
    if len(completions) != len(examples):
        raise ValueError(f"{len(completions)} completions but {len(examples)} examples; pass one example "
                         "per completion")
    reward_fn, validate = _TASKS[task]
    for i, example in enumerate(examples):
        validate(example, i)
    return np.asarray([reward_fn(c, e) for c, e in zip(completions, examples)], np.float32)
