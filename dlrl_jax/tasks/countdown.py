"""Countdown: reach a target with the given numbers, each used once, and + - * / ( ).

Record: {"numbers": [ints], "target": int, "solution": an expression reaching it (generated records
only)}. Generated solvable by construction (`dlrl_jax.data.countdown`: 3 numbers in 1-100, targets
1-100, as d1's test set), or read from Jiayi-Pan/Countdown-Tasks-3to4 ("nums", "target") or d1's test
file ("input" "30,100,93", "output" "23"). Rewards (`dlrl_jax.rewards.countdown`): 1.0 for a right
expression, 0.1 for one that parses but misses, 0.0 for none.
"""

from __future__ import annotations

import json

import numpy as np

from dlrl_jax.data.countdown import generate_countdown
from dlrl_jax.data.readers import DataError, field, integer_field, require
from dlrl_jax.rewards import countdown as rewards
from dlrl_jax.tasks.spec import TaskSpec, pair

NUMBERS = 3  # the official trainers keep the 3-number rows; d1's test file has 3 numbers


def _normalize_d1_test(r: dict, where: str) -> dict:
    """d1's dataset/countdown_cd3_test.jsonl: {"input": "30,100,93", "output": "23"} (eval/countdown.py)."""
    text = field(r, "input")
    if not isinstance(text, str) or not all(x.strip().isdigit() for x in text.split(",")):
        raise DataError(f"{where}: d1's Countdown rows hold 'input' as comma-separated integers (\"30,100,93\"), got "
                        f"{str(text)[:80]!r}")
    numbers = [int(x) for x in text.split(",")]
    target = integer_field(require(field(r, "output"), where, "'output' (the target)"), where, "'output' (the target)")
    return {"numbers": numbers, "target": target}


def normalize(r: dict, where: str) -> dict:
    if field(r, "numbers", "nums") is None and field(r, "input") is not None:
        return _normalize_d1_test(r, where)
    numbers = require(field(r, "numbers", "nums"), where, "'numbers' (a list of integers)")
    target = require(field(r, "target"), where, "'target' (an integer)")
    if isinstance(numbers, str):  # a CSV cell holding the list's JSON text
        try:
            numbers = json.loads(numbers)
        except ValueError:
            numbers = None
    if not isinstance(numbers, (list, tuple)):  # (also a list that arrived as other text, "1 2 3")
        raise DataError(f"{where}: 'numbers' must be a list of integers such as [30, 100, 93], got "
                        f"{str(field(r, 'numbers', 'nums'))[:80]!r}; fix that row")
    return {"numbers": [integer_field(x, where, "each of 'numbers'") for x in numbers],
            "target": integer_field(target, where, "'target'")}


def question(r: dict) -> str:
    numbers = ", ".join(str(x) for x in r["numbers"])
    return (f"With the numbers [{numbers}], write an arithmetic expression equal to {r['target']}. Use each "
            "number exactly once, and only + - * / and parentheses. Put just the expression in the answer, "
            "for example <answer>(1 + 2) * 3</answer>.")


def extract_answer(completion: str, reward_set: str) -> str | None:
    found = rewards._ANSWER.findall(completion)
    if not found:
        return None
    return found[-1].strip() if reward_set != "dlrl" else found[-1].split("=")[0].strip()


def generate_training(seed: int, n: int, section) -> list[dict]:
    rng = np.random.default_rng(seed)
    return generate_countdown(int(rng.integers(2**31)), n, num_numbers=NUMBERS)


def _official_accuracy(completion: str, record: dict) -> float:
    return float(rewards.official_countdown_reward(completion, record) == 1.0)


TASK = TaskSpec(
    name="countdown",
    normalize=normalize,
    validate=rewards.validate_example,
    question=question,
    # the Python list, printed as the official f-string prints it: "[2, 3, 4]"
    recipe_fields=lambda r: {"numbers": str(list(r["numbers"])), "target": r["target"]},
    sft_answer=lambda r: r.get("solution"),
    reward_sets={"dlrl": pair(rewards.countdown_reward, lambda c, r: float(rewards.countdown_reward(c, r) >= 1.0)),
                 "d1": pair(rewards.official_countdown_reward, _official_accuracy),
                 "espo": pair(rewards.official_countdown_reward, _official_accuracy)},
    extract_answer=extract_answer,
    plain_prompt=lambda r: " ".join(str(x) for x in r["numbers"]) + " = " + str(r["target"]),
    generate=lambda seed, n: generate_countdown(seed, n, num_numbers=NUMBERS),
    generate_training=generate_training,
)
