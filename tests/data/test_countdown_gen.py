"""Every generated Countdown puzzle is solvable (checked by an independent exhaustive search)."""

import itertools
from fractions import Fraction

import pytest

from dlrl_jax.data import generate_countdown


def search(numbers, target):
    """Independent oracle: every ordering of the numbers under every left/right bracketing and operator."""
    ops = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b if b else None]

    def values(xs):
        if len(xs) == 1:
            yield xs[0]
            return
        for split in range(1, len(xs)):
            for left in values(xs[:split]):
                for right in values(xs[split:]):
                    for op in ops:
                        r = op(left, right) if left is not None and right is not None else None
                        if r is not None:
                            yield r

    return any(v == target for perm in itertools.permutations([Fraction(n) for n in numbers]) for v in values(perm))


@pytest.mark.parametrize("count", [3, 4])
def test_generated_puzzles_are_solvable(count):
    puzzles = generate_countdown(count, 30, num_numbers=count)
    assert len(puzzles) == 30 and all(len(p["numbers"]) == count for p in puzzles)
    for p in puzzles:
        assert isinstance(p["target"], int) and 0 < p["target"] <= 999
        assert search(p["numbers"], p["target"]), p


def test_deterministic_and_validated():
    assert generate_countdown(1, 5) == generate_countdown(1, 5)
    with pytest.raises(ValueError, match="3 or 4 numbers"):
        generate_countdown(0, 1, num_numbers=5)
