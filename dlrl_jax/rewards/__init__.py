"""Task rewards: `score(task, completions, examples, reward_set=...) -> float32 array`, one per completion.

Reward sets, chosen by name (`task.reward_set` in the config):
  "d1"    d1's reward functions as its code computes them (dllm-reasoning/d1 diffu-grpo/reward_func.py
          and math500_utils.py; EGSPO's egspo/ copies are the same, and add the code reward).
  "espo"  ESPO's (ML-GSAI/ESPO espo/rewards.py): 1/0 correctness for GSM8K and MATH, d1's Countdown
          and Sudoku, format + pass rate for code.
  "dlrl"  this project's earlier rules (the demo's): d1's terms with format patterns across lines,
          "= target" tails allowed, untagged Sudoku answers read, math-verify for MATH.
Each task module's docstring gives the terms of each set.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from dlrl_jax.rewards import code, countdown, gsm8k, math_answer, math_strings, sudoku
from dlrl_jax.rewards.sandbox import check_mode

REWARD_SETS = ("dlrl", "d1", "espo")

_VALIDATE = {"sudoku": sudoku.validate_example, "countdown": countdown.validate_example,
             "gsm8k": gsm8k.validate_example, "math": math_answer.validate_example, "code": code.validate_example}

# (reward, accuracy) per set and task, both (completion, example) -> float; code runs batched below.
_Fn = Callable[[str, dict], float]
_SETS: dict[str, dict[str, tuple[_Fn, _Fn]]] = {
    "dlrl": {
        "sudoku": (sudoku.sudoku_reward, sudoku.sudoku_reward),
        "countdown": (countdown.countdown_reward, lambda c, e: float(countdown.countdown_reward(c, e) >= 1.0)),
        "gsm8k": (gsm8k.gsm8k_reward, lambda c, e: gsm8k.gsm8k_reward(c, e, correctness_only=True)),
        "math": (math_answer.math_reward, lambda c, e: math_answer.math_reward(c, e, correctness_only=True))},
    "d1": {
        "sudoku": (sudoku.official_sudoku_reward, sudoku.official_sudoku_reward),
        "countdown": (countdown.official_countdown_reward,
                      lambda c, e: float(countdown.official_countdown_reward(c, e) == 1.0)),
        "gsm8k": (gsm8k.official_gsm8k_reward,
                  lambda c, e: float(gsm8k.official_gsm8k_terms(c, e)["correctness"] > 0)),
        "math": (math_strings.d1_math_reward, lambda c, e: float(math_strings.d1_math_correct(c, e)))},
    "espo": {
        "sudoku": (sudoku.official_sudoku_reward, sudoku.official_sudoku_reward),
        "countdown": (countdown.official_countdown_reward,
                      lambda c, e: float(countdown.official_countdown_reward(c, e) == 1.0)),
        "gsm8k": (gsm8k.espo_gsm8k_reward, gsm8k.espo_gsm8k_reward),
        "math": (math_answer.espo_math_reward, math_answer.espo_math_reward)},
}


def available_tasks() -> list[str]:
    return sorted(_VALIDATE)


def _check(task: str, reward_set: str, completions: Sequence[str], examples: Sequence[dict]) -> None:
    if task not in _VALIDATE:
        raise ValueError(f"no reward for task {task!r}; available: {available_tasks()}")
    if reward_set not in REWARD_SETS:
        raise ValueError(f"unknown reward set {reward_set!r}; use one of {', '.join(REWARD_SETS)}")
    if len(completions) != len(examples):
        raise ValueError(f"{len(completions)} completions but {len(examples)} examples; pass one example "
                         "per completion")
    for i, example in enumerate(examples):
        _VALIDATE[task](example, i)


def score(task: str, completions: Sequence[str], examples: Sequence[dict], *, reward_set: str = "d1",
          correctness_only: bool = False, sandbox: str = "namespaces", limits=None) -> np.ndarray:
    """Rewards [N] float32 for `completions[i]` against `examples[i]` (the task's record schema).

    `correctness_only=True` gives `accuracy` instead. `sandbox` (code only): how model-written code is
    isolated, "namespaces" (bubblewrap) or the weaker opt-in "rlimits"; `limits` (code only): the
    sandbox's `Limits` (default `code.LIMITS`)."""
    if correctness_only:
        return accuracy(task, completions, examples, reward_set=reward_set, sandbox=sandbox, limits=limits)
    _check(task, reward_set, completions, examples)
    if task == "code":  # every test of every completion runs in parallel in the sandbox
        check_mode(sandbox)
        return np.asarray(code.code_rewards(list(completions), list(examples), reward_set, sandbox=sandbox,
                                            limits=limits or code.LIMITS), np.float32)
    reward_fn = _SETS[reward_set][task][0]
    return np.asarray([reward_fn(c, e) for c, e in zip(completions, examples)], np.float32)


def accuracy(task: str, completions: Sequence[str], examples: Sequence[dict], *, reward_set: str = "d1",
             sandbox: str = "namespaces", limits=None) -> np.ndarray:
    """Per-example accuracy [N] float32 as the set's correctness term decides it: 1/0 (the fraction of
    blanks filled for Sudoku; Countdown: the full 1.0 reward; code: every test passes)."""
    _check(task, reward_set, completions, examples)
    if task == "code":
        check_mode(sandbox)
        return np.asarray(code.code_rewards(list(completions), list(examples), reward_set, correctness_only=True,
                                            sandbox=sandbox, limits=limits or code.LIMITS), np.float32)
    correct_fn = _SETS[reward_set][task][1]
    return np.asarray([correct_fn(c, e) for c, e in zip(completions, examples)], np.float32)


def extracted_answer(task: str, completion: str, reward_set: str = "dlrl") -> str | None:
    """What the reward reads from `completion`: the grid, the equation, the final answer or the code."""
    official = reward_set != "dlrl"
    if task == "sudoku":
        if official:
            found = sudoku._ANSWER.findall(completion)
            return "".join(ch for ch in found[-1].strip() if ch.isdigit()) if found else None
        return sudoku.extract_grid(completion)
    if task == "countdown":
        found = countdown._ANSWER.findall(completion)
        if not found:
            return None
        return found[-1].strip() if official else found[-1].split("=")[0].strip()
    if task == "gsm8k":
        if reward_set == "espo":
            return gsm8k.espo_extract_answer(completion)
        if reward_set == "d1":
            return gsm8k.extract_answer(completion)
        return gsm8k.extract_answer(completion) if "<answer>" in completion else None
    if task == "math":
        if reward_set == "d1":
            return math_strings.boxed_answer(completion)
        return completion if reward_set == "espo" else math_answer.last_boxed(completion)
    if task == "code":
        return code.extract_code(completion)[0] if reward_set == "dlrl" else code.first_python_block(completion)
    raise ValueError(f"no reward for task {task!r}; available: {available_tasks()}")
