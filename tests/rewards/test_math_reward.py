"""MATH500 reward against a hand-worked table (equivalence by math-verify)."""

import pytest

from dlrl_jax import tasks
from dlrl_jax.rewards.math_answer import last_boxed

HALF = {"answer": "\\frac{1}{2}"}

CASES = [
    ("<answer>\\boxed{\\frac{1}{2}}</answer>", HALF, 2.5),           # right, boxed inside the tags
    ("<answer>\\boxed{0.5}</answer>", HALF, 2.5),                     # equivalent decimal
    ("<answer>\\boxed{\\dfrac{2}{4}}</answer>", HALF, 2.5),
    ("The answer is \\boxed{1/2}.", HALF, 2.25),                      # right; boxed but no tags: .5 format
    ("<answer>1/2</answer>", HALF, 0.25),                             # tags but no box: not graded
    ("<answer>\\boxed{\\frac{1}{3}}</answer>", HALF, 0.5),            # wrong, good format
    ("", HALF, 0.0),
    ("\\boxed{1} then \\boxed{\\frac12}", HALF, 2.25),                # the last box counts
    ("\\boxed{\\frac12} then \\boxed{1}", HALF, 0.25),
    ("\\boxed{\\frac{1}{2}", HALF, 0.0),                              # an unclosed box is no answer, no tags
    ("<answer>\\boxed{\\sqrt{2}}</answer>", {"answer": "2^{1/2}"}, 2.5),
    ("<answer>\\boxed{(1, 2)}</answer>", {"answer": "(1,2)"}, 2.5),
    ("<answer>\\boxed{x^2+2x+1}</answer>", {"answer": "(x+1)^2"}, 2.5),
    ("<answer>\\boxed{\\frac{}{}}}}</answer>", HALF, 0.5),            # malformed LaTeX is just wrong
    ("<answer>\\boxed{" + "9" * 5000 + "}</answer>", HALF, 0.5),      # very long, wrong
    ("<answer>\\boxed{\\frac{1}{2}}</answer><answer>none</answer>", HALF, 2.25),  # last tags hold no box
]


@pytest.mark.parametrize("completion,example,expected", CASES)
def test_math_reward_table(completion, example, expected):
    assert tasks.score("math", [completion], [example], reward_set="dlrl")[0] == pytest.approx(expected)


def test_last_boxed_handles_nesting_and_correctness_only():
    assert last_boxed("a \\boxed{\\frac{1}{\\sqrt{2}}} b") == "\\frac{1}{\\sqrt{2}}"
    assert last_boxed("\\boxed{1") is None
    from dlrl_jax.rewards.math_answer import math_reward
    assert math_reward("\\boxed{0.5}", HALF, correctness_only=True) == 1.0
    assert math_reward("<answer>\\boxed{2}</answer>", HALF, correctness_only=True) == 0.0
