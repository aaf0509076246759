"""Scoring completions: `score(task, completions, records, reward_set=...) -> float32 [N]`, one reward
per completion, with the reward functions the task's module names for that set.

Reward sets, chosen by name (`task.reward_set` in the config):
  "d1"    d1's reward functions as its code computes them (dllm-reasoning/d1 diffu-grpo/reward_func.py
          and math500_utils.py; EGSPO's egspo/ copies are the same, and add the code reward).
  "espo"  ESPO's (ML-GSAI/ESPO espo/rewards.py): 1/0 correctness for GSM8K and MATH, d1's Countdown
          and Sudoku, format + pass rate for code.
  "dlrl"  this project's earlier rules (the demo's): d1's terms with format patterns across lines,
          "= target" tails allowed, untagged Sudoku answers read, math-verify for MATH.
Each reward module's docstring (`dlrl_jax.rewards.<task>`) gives the terms of each set.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dlrl_jax.rewards.sandbox import check_mode
from dlrl_jax.tasks.spec import TaskSpec, get, names

REWARD_SETS = ("dlrl", "d1", "espo")


def available_tasks() -> list[str]:
    return sorted(names())


def _check(task: str, reward_set: str, completions: Sequence[str], examples: Sequence[dict]) -> TaskSpec:
    if task not in names():
        raise ValueError(f"no reward for task {task!r}; available: {available_tasks()}")
    if reward_set not in REWARD_SETS:
        raise ValueError(f"unknown reward set {reward_set!r}; use one of {', '.join(REWARD_SETS)}")
    if len(completions) != len(examples):
        raise ValueError(f"{len(completions)} completions but {len(examples)} examples; pass one example "
                         "per completion")
    spec = get(task)
    for i, example in enumerate(examples):
        spec.validate(example, i)
    return spec


def _run(task: str, completions, examples, reward_set: str, which: int, sandbox: str, limits) -> np.ndarray:
    spec = _check(task, reward_set, completions, examples)
    options = {}
    if spec.uses_sandbox:  # model-written code: every test of every completion runs in parallel in the sandbox
        check_mode(sandbox)
        options = {"sandbox": sandbox, "limits": limits}
    fn = spec.reward_sets[reward_set][which]
    return np.asarray(fn(list(completions), list(examples), **options), np.float32)


def score(task: str, completions: Sequence[str], examples: Sequence[dict], *, reward_set: str = "d1",
          correctness_only: bool = False, sandbox: str = "namespaces", limits=None) -> np.ndarray:
    """Rewards [N] float32 for `completions[i]` against `examples[i]` (the task's record schema).

    `correctness_only=True` gives `accuracy` instead. `sandbox` (code only): how model-written code is
    isolated, "namespaces" (bubblewrap) or the weaker opt-in "rlimits"; `limits` (code only): the
    sandbox's `Limits` (default `dlrl_jax.rewards.code.LIMITS`)."""
    if correctness_only:
        return accuracy(task, completions, examples, reward_set=reward_set, sandbox=sandbox, limits=limits)
    return _run(task, completions, examples, reward_set, 0, sandbox, limits)


def accuracy(task: str, completions: Sequence[str], examples: Sequence[dict], *, reward_set: str = "d1",
             sandbox: str = "namespaces", limits=None) -> np.ndarray:
    """Per-example accuracy [N] float32 as the set's correctness term decides it: 1/0 (the fraction of
    blanks filled for Sudoku; Countdown: the full 1.0 reward; code: every test passes)."""
    return _run(task, completions, examples, reward_set, 1, sandbox, limits)


def extracted_answer(task: str, completion: str, reward_set: str = "dlrl") -> str | None:
    """What the reward reads from `completion`: the grid, the equation, the final answer or the code."""
    if task not in names():
        raise ValueError(f"no reward for task {task!r}; available: {available_tasks()}")
    return get(task).extract_answer(completion, reward_set)
