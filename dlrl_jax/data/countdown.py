"""Countdown: reach a target with 3 or 4 given numbers, each used once, and + - * /.

The defaults follow the data the papers train and test on: the official trainers (d1, EGSPO, ESPO
data_utils.py) keep the 3-number rows of Jiayi-Pan/Countdown-Tasks-3to4, and d1's test file
(dataset/countdown_cd3_test.jsonl, 256 rows) has 3 numbers in 1..100 and targets in 1..100.

Records: {"numbers": [ints], "target": int, "solution": one expression reaching it}. Solvable by construction: the target is the value of a
random expression tree over the numbers (every intermediate exact and positive, the target an integer).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

_OPS = ("+", "-", "*", "/")


def _apply(op, a: Fraction, b: Fraction) -> Fraction | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a / b if b != 0 else None


def _wrap(text: str) -> str:
    return text if text.isdigit() else f"({text})"


def generate_countdown(seed, n: int, num_numbers: int | tuple[int, ...] = 3, low: int = 1, high: int = 100,
                       max_target: int = 100) -> list[dict]:
    """`n` solvable puzzles; each draws its count from `num_numbers`, numbers from [low, high], and keeps
    only targets in [1, max_target]."""
    rng = np.random.default_rng(seed)
    counts = (num_numbers,) if isinstance(num_numbers, int) else tuple(num_numbers)
    if any(c not in (3, 4) for c in counts):
        raise ValueError(f"countdown puzzles use 3 or 4 numbers, got {counts}")
    out = []
    while len(out) < n:
        numbers = [int(x) for x in rng.integers(low, high + 1, int(rng.choice(counts)))]
        items = [(Fraction(x), str(x)) for x in numbers]  # (value, expression text)
        rng.shuffle(items)
        while len(items) > 1:  # combine two random operands until one value is left
            i, j = rng.choice(len(items), 2, replace=False)
            op = _OPS[rng.integers(4)]
            result = _apply(op, items[i][0], items[j][0])
            if result is None or result <= 0:
                break
            text = f"{_wrap(items[i][1])} {op} {_wrap(items[j][1])}"
            items = [v for k, v in enumerate(items) if k not in (i, j)] + [(result, text)]
        if len(items) == 1 and items[0][0].denominator == 1 and items[0][0] <= max_target:
            out.append({"numbers": numbers, "target": int(items[0][0]), "solution": items[0][1]})
    return out
