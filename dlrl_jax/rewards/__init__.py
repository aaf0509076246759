"""Task rewards: `score(task, completions, examples) -> float32 array`, one reward per completion."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dlrl_jax.rewards import code, countdown, gsm8k, math_answer, sudoku

_TASKS = {"sudoku": (sudoku.sudoku_reward, sudoku.validate_example),
          "countdown": (countdown.countdown_reward, countdown.validate_example),
          "gsm8k": (gsm8k.gsm8k_reward, gsm8k.validate_example),
          "math": (math_answer.math_reward, math_answer.validate_example)}


def available_tasks() -> list[str]:
    return sorted(list(_TASKS) + ["code"])


def extracted_answer(task: str, completion: str) -> str | None:
    """What the reward reads from `completion`: the grid, the equation, the final answer or the code."""
    if task == "sudoku":
        return sudoku.extract_grid(completion)
    if task == "countdown":
        found = countdown._ANSWER.findall(completion)
        return found[-1].split("=")[0].strip() if found else None
    if task == "gsm8k":
        return gsm8k.extract_answer(completion) if "<answer>" in completion else None
    if task == "math":
        return math_answer.last_boxed(completion)
    if task == "code":
        return code.extract_code(completion)[0]
    raise ValueError(f"no reward for task {task!r}; available: {available_tasks()}")


def score(task: str, completions: Sequence[str], examples: Sequence[dict], **options) -> np.ndarray:
    """Rewards [N] float32 for `completions[i]` against `examples[i]` (the task's record schema).

    options: `correctness_only=True` (gsm8k, math, code) gives ESPO's 1/0 correctness."""
    if task not in available_tasks():
        raise ValueError(f"no reward for task {task!r}; available: {available_tasks()}")
    if len(completions) != len(examples):
        raise ValueError(f"{len(completions)} completions but {len(examples)} examples; pass one example "
                         "per completion")
    if task == "code":  # every test of every completion runs in parallel in the sandbox
        for i, example in enumerate(examples):
            code.validate_example(example, i)
        return np.asarray(code.code_rewards(list(completions), list(examples), **options), np.float32)
    reward_fn, validate = _TASKS[task]
    for i, example in enumerate(examples):
        validate(example, i)
    return np.asarray([reward_fn(c, e, **options) for c, e in zip(completions, examples)], np.float32)
