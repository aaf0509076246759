"""Reward set "espo" against tables worked by hand from ML-GSAI/ESPO espo/rewards.py: GSM8K 1/0 on
"The answer is X." / "#### X" / the last number, MATH 1/0 by math-verify on the whole response,
Countdown and Sudoku as d1's."""

import pytest

from dlrl_jax import tasks

G = {"answer": "72"}
GSM8K = [
    ("The answer is 72.", 1.0),
    ("The answer is 72 apples", 1.0),
    # the pattern needs one more character after the number: at the very end the greedy group gives
    # one digit back to it, so the answer read is "7"
    ("The answer is 72", 0.0),
    ("The answer is 72\n", 0.0),          # '.' does not match the line break: "7" again
    ("the answer is 72.", 1.0),           # case-sensitive: no match, so the last number, 72
    ("The answer is 7. No wait, 72", 0.0),  # the first pattern wins: "7"
    ("#### 72", 1.0),
    ("so \\boxed{72}", 1.0),              # the prompt asks for a box: the last number is read
    ("I get 72 and then 5 more", 0.0),    # last number 5
    ("x = 72.5", 0.0),                    # last number "5"
    ("The answer is 1,000.", 0.0),        # "1,000" against "72"
    ("", 0.0),
    ("<reasoning>\nr\n</reasoning>\n<answer>\n72\n</answer>\n", 1.0),  # d1's format is no part of it
]


@pytest.mark.parametrize("completion,expected", GSM8K)
def test_gsm8k_espo(completion, expected):
    assert tasks.score("gsm8k", [completion], [G], reward_set="espo")[0] == expected


def test_gsm8k_espo_signs_and_commas():
    assert tasks.score("gsm8k", ["The answer is -3."], [{"answer": "-3"}], reward_set="espo")[0] == 1.0
    assert tasks.score("gsm8k", ["The answer is 1,000."], [{"answer": "1,000"}], reward_set="espo")[0] == 1.0


# the reference is what ESPO's data stores: MATH's solution (its last box), else the record's answer
H = {"answer": "\\frac{1}{2}", "solution": "Halve it: $\\boxed{\\frac{1}{2}}$."}
MATH = [
    ("so the result is \\boxed{\\frac{1}{2}}", 1.0),
    ("\\boxed{0.5}", 1.0),                     # math-verify: numerically equal
    ("\\boxed{\\frac{2}{4}}", 1.0),            # (string normalisation, set d1, says no)
    ("The answer is 0.5", 1.0),                # no box: math-verify reads the last expression
    ("first 1/2, but finally \\boxed{3}", 0.0),  # a box takes priority
    ("\\boxed{\\frac{1}{3}}", 0.0),
    ("", 0.0),
    ("<answer>no idea</answer>", 0.0),
]


@pytest.mark.parametrize("completion,expected", MATH)
def test_math_espo(completion, expected):
    assert tasks.score("math", [completion], [H], reward_set="espo")[0] == expected
    bare = {"answer": "\\frac{1}{2}"}
    assert tasks.score("math", [completion], [bare], reward_set="espo")[0] == expected


def test_countdown_and_sudoku_are_d1s():
    c = {"numbers": [3, 5, 7], "target": 22}
    texts = ["<answer>3 * 5 + 7</answer>", "<answer>3 * 5 + 7 = 22</answer>", "3 * 5 + 7"]
    assert tasks.score("countdown", texts, [c] * 3, reward_set="espo").tolist() == pytest.approx([1.0, 0.1, 0.0])
    s = {"puzzle": "0234341221434301", "solution": "1234341221434321"}
    texts = [f"<answer>{s['solution']}</answer>", s["solution"], "<answer>1</answer>"]
    assert tasks.score("sudoku", texts, [s] * 3, reward_set="espo").tolist() == [1.0, 0.0, 0.5]


def test_accuracy_espo():
    assert tasks.accuracy("gsm8k", ["The answer is 72.", "72 or 7"], [G, G], reward_set="espo").tolist() == [1, 0]
    assert tasks.accuracy("math", ["\\boxed{0.5}", "\\boxed{2}"], [H, H], reward_set="espo").tolist() == [1, 0]
