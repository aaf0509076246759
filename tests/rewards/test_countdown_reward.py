"""The Countdown reward against a hand-worked table, hostile text included (no eval anywhere)."""

import pytest

from dlrl_jax import tasks

EX = {"numbers": [3, 5, 7], "target": 22}   # 3 * 5 + 7
EX4 = {"numbers": [2, 4, 6, 8], "target": 1}  # (8 - 6) / (4 - 2)

CASES = [
    ("<answer>3 * 5 + 7</answer>", EX, 1.0),
    ("<answer>7 + 5 * 3</answer>", EX, 1.0),
    ("<answer>(3 * 5) + 7 = 22</answer>", EX, 1.0),             # an '= target' tail is allowed
    ("<answer>3 * 5 + 7 + 0</answer>", EX, 0.1),                # an extra number
    ("<answer>3 * 5 + 5</answer>", EX, 0.1),                    # a number used twice, 7 missing
    ("<answer>3 * 5</answer>", EX, 0.1),                        # a number missing
    ("<answer>3 + 5 + 7</answer>", EX, 0.1),                    # valid numbers, wrong value
    ("<answer>7 / (5 - 5) + 3</answer>", EX, 0.1),              # division by zero
    ("<answer>3 * 5 + 7)</answer>", EX, 0.1),                   # unbalanced
    ("<answer>__import__('os').system('x')</answer>", EX, 0.1),  # not arithmetic: never evaluated
    ("<answer>３ * ５ + ７</answer>", EX, 0.1),                  # full-width digits are not allowed
    ("<answer>3 ** 5 + 7</answer>", EX, 0.1),                   # power is not an operator here
    ("no answer tag: 3 * 5 + 7", EX, 0.0),
    ("<answer>1 + 1</answer> then <answer>3 * 5 + 7</answer>", EX, 1.0),  # the last answer counts
    ("<answer>3 * 5 + 7</answer><answer>oops</answer>", EX, 0.1),
    ("<answer>" + "(" * 300 + "3" + ")" * 300 + "</answer>", EX, 0.1),   # very long: refused, no recursion
    ("<answer>(8 - 6) / (4 - 2)</answer>", EX4, 1.0),           # an exact fraction path
    ("<answer>8 / 4 / 2 - 6</answer>", EX4, 0.1),
    ("<answer>7.0 + 3 * 5</answer>", EX, 0.1),                  # a decimal is not one of the numbers
    ("<answer>-3 * -5 + 7</answer>", EX, 1.0),                  # unary minus on given numbers
    ("x" * 100_000, EX, 0.0),
]


@pytest.mark.parametrize("completion,example,expected", CASES)
def test_countdown_reward_table(completion, example, expected):
    assert tasks.score("countdown", [completion], [example], reward_set="dlrl")[0] == pytest.approx(expected)


def test_bad_examples_are_named():
    with pytest.raises(ValueError, match=r"examples\[0\]\['numbers'\] must be a non-empty list of integers"):
        tasks.score("countdown", [""], [{"numbers": "3 5", "target": 1}], reward_set="dlrl")
    with pytest.raises(ValueError, match=r"examples\[0\]\['target'\] must be a number"):
        tasks.score("countdown", [""], [{"numbers": [1], "target": None}], reward_set="dlrl")
