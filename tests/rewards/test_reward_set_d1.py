"""Reward set "d1" against tables worked by hand from the official functions (dllm-reasoning/d1
diffu-grpo/reward_func.py and math500_utils.py; EGSPO's egspo/ copies compute the same). Each row
says why. The DEVIATIONS table gives, for the same text, the value of this project's earlier
rules (set "dlrl") next to the official one."""

import numpy as np
import pytest

from dlrl_jax import tasks

# ---------------------------------------------------------------- GSM8K: 5 terms summed, max 4.0
G = {"answer": "72"}
ONE_LINE = "<reasoning>\n48 + 24 = 72\n</reasoning>\n<answer>\n72\n</answer>\n"

GSM8K = [
    # correct 2 + int .5 + strict .5 (one-line reasoning) + soft 0 ("<reasoning>" is followed by a
    # line break, which `.` does not match) + xml 4 x .125 = 3.5
    (ONE_LINE, 3.5),
    # multi-line reasoning: strict fails too ('.' stops at the line break inside) -> 2 + .5 + .5
    ("<reasoning>\nmulti\nline\n</reasoning>\n<answer>\n72\n</answer>\n", 3.0),
    ("<reasoning>a</reasoning><answer>72</answer>", 3.0),      # 2 + .5 + soft .5; no tag with a newline
    ("<reasoning>a</reasoning>\n\n<answer>72</answer>", 3.0),  # soft: only \s* may span lines
    ("<reasoning>a\nb</reasoning><answer>72</answer>", 2.5),   # soft fails across the line break
    ("<answer>1,000</answer>", 0.0),                           # vs "1000" below: no comma stripping
    ("<answer>٧٢</answer>", 0.5),                              # Arabic-Indic 72: not "72", but isdigit()
    ("72", 2.5),                                               # no tags: the whole text is the answer
    ("", 0.0),
    # strict fails ($ needs the end); xml: .5 - 5 x .001 ("\n</answer>\n" tail) - (6 - 1) x .001
    (ONE_LINE + "extra", 2.99),
    # one more "\n": strict still matches ($ before a final newline); xml .5 - .001 - (2 - 1) x .001
    (ONE_LINE + "\n", 3.498),
    ("<answer>5</answer> no, <answer>72</answer>", 2.5),       # the last <answer> counts
    # "\n<answer>\n" needs a line break before the tag: 0; "\n</answer>" once with nothing after it:
    # .125 - (0 - 1) x .001, so the d1 formula adds .001
    ("<answer>\n72\n</answer>", 2 + 0.5 + 0.125 + 0.001),
]


@pytest.mark.parametrize("completion,expected", GSM8K)
def test_gsm8k_d1(completion, expected):
    example = {"answer": "1000"} if "1,000" in completion else G
    assert tasks.score("gsm8k", [completion], [example], reward_set="d1")[0] == pytest.approx(expected, abs=1e-6)


# ---------------------------------------------------------------- Countdown: 1.0 / 0.1 / 0
C = {"numbers": [3, 5, 7], "target": 22}
COUNTDOWN = [
    ("<answer>3 * 5 + 7</answer>", C, 1.0),
    ("<answer>(7 + 5 * 3)</answer>", C, 1.0),
    ("<answer>3 * 5 + 7 = 22</answer>", C, 0.1),       # 22 is a fourth number, and '=' is not allowed
    ("<answer>+3 * 5 + 7</answer>", C, 1.0),           # Python's unary plus
    ("<answer>-3 * -5 + 7</answer>", C, 1.0),
    ("<answer>\n3 * 5 + 7\n</answer>", C, 1.0),        # stripped
    ("<answer>3 * 5\n+ 7</answer>", C, 0.1),           # a line break outside brackets: a SyntaxError
    ("<answer>(3 * 5\n+ 7)</answer>", C, 1.0),         # inside brackets it is fine
    ("<answer>3 × 5 + 7</answer>", C, 0.1),            # '×' is outside the allowed characters
    ("<answer>15 + 7</answer>", C, 0.1),               # 15 is not one of the numbers
    ("<answer>07 + 3 * 5</answer>", C, 0.1),           # digits ok (int('07') = 7); Python rejects 07
    ("<answer>３ * ５ + ７</answer>", C, 0.1),          # \d and int() accept full-width digits; Python does not
    ("<answer>3 * 5 + 7</answer> <answer>1 + 1</answer>", C, 0.1),  # the last answer counts
    ("3 * 5 + 7", C, 0.0),                             # no tags
    ("<answer>7 / (5 - 5) + 3</answer>", C, 0.1),      # ZeroDivisionError
    ("<answer>2**3*1</answer>", {"numbers": [1, 2, 3], "target": 8}, 1.0),   # ** is a power, as in eval
    ("<answer>6 // 3 * 4</answer>", {"numbers": [3, 4, 6], "target": 8}, 1.0),  # and // floor division
    ("<answer>4 // 3 * 6</answer>", {"numbers": [3, 4, 6], "target": 8}, 0.1),  # 1 * 6
    ("<answer>(1 / 3) * 3</answer>", {"numbers": [1, 3, 3], "target": 1}, 1.0),  # float 1.0
    ("<answer>99 ** 99 ** 99</answer>", {"numbers": [99, 99, 99], "target": 1}, 0.1),  # refused, not hours
    ("<answer>" + "(" * 200 + "3 * 5 + 7" + ")" * 200 + "</answer>", C, 1.0),  # CPython's nesting limit...
    ("<answer>" + "(" * 201 + "3 * 5 + 7" + ")" * 201 + "</answer>", C, 0.1),  # ...and one past it
]


@pytest.mark.parametrize("completion,example,expected", COUNTDOWN)
def test_countdown_d1(completion, example, expected):
    assert tasks.score("countdown", [completion], [example], reward_set="d1")[0] == pytest.approx(expected)


# ---------------------------------------------------------------- Sudoku: fraction of blanks
S = {"puzzle": "0234341221434301", "solution": "1234341221434321"}  # blanks at cells 0 and 14
SOL = S["solution"]
SUDOKU = [
    (f"<answer>{SOL}</answer>", S, 1.0),
    (SOL, S, 0.0),                                           # no tags: 0
    (f"<answer>{SOL}", S, 0.0),                              # unclosed: no match, 0
    ("<answer>\n1234\n3412\n2143\n4321\n</answer>", S, 1.0),
    ("<answer>1 2 3 4 | 3 4 1 2 | 2 1 4 3 | 4 3 2 1</answer>", S, 1.0),
    ("<answer></answer>", S, 0.0),
    ("<answer>1</answer>", S, 0.5),                          # padded with '0': cell 0 right, 14 wrong
    (f"<answer>²{SOL}</answer>", S, 0.0),                    # '²'.isdigit(): takes cell 0, shifts the rest
    ("<answer>１２３４３４１２２１４３４３２１</answer>", S, 0.0),  # full-width digits: cells, never a match
    (f"<answer>0000</answer><answer>{SOL}</answer>", S, 1.0),
    (f"<answer>{SOL}</answer>", {"puzzle": SOL, "solution": SOL}, 0.0),  # no blanks: 0 in the official code
]


@pytest.mark.parametrize("completion,example,expected", SUDOKU)
def test_sudoku_d1(completion, example, expected):
    assert tasks.score("sudoku", [completion], [example], reward_set="d1")[0] == pytest.approx(expected)


# ---------------------------------------------------------------- MATH: 2 x equivalent + .5 x format
# format = 1 if "<answer>" occurs, + 0.5 ("\\boxed" in the official test is backspace + "oxed")
H = {"answer": "\\frac{1}{2}"}
MATH = [
    ("<answer>\\boxed{\\frac{1}{2}}</answer>", H, 2.0 + 0.5 * 1.5),
    ("The answer is \\boxed{\\frac12}.", H, 2.0 + 0.5 * 0.5),   # \frac12 -> \frac{1}{2}
    ("\\boxed{0.5}", H, 2.25),                                  # "0.5" -> \frac{1}{2}
    ("\\boxed{\\dfrac{1}{2}}", H, 2.25),
    ("\\boxed{1/2}", H, 2.25),                                  # a/b of integers -> \frac{a}{b}
    ("\\boxed{2/4}", H, 0.25),                                  # no arithmetic: \frac{2}{4} differs
    ("\\boxed{\\left( \\frac{1}{2} \\right)}", H, 0.25),        # \left/\right go, the brackets stay
    ("1/2", H, 2.25),                                           # no box: the whole text is graded
    ("<answer>1/2</answer>", H, 0.75),                          # whole text; "<answer>1" is no integer
    ("\\boxed{\\frac{1}{3}}", H, 0.25),
    ("", H, 0.25),
    ("\\boxed{\\frac{1}{2}", H, 0.25),                          # unclosed: the whole text, not equal
    ("\\fbox{\\frac{1}{2}}", H, 0.25),                          # \fbox{} is found but not removed
    ("\\boxed{1} then \\boxed{\\frac12}", H, 2.25),             # the last box
    ("\\boxed {1}$ and \\boxed{\\frac{1}{2}}", H, 0.25),        # any "\boxed " wins: "{1}"
    ("\\boxed{x=5}", {"answer": "5"}, 2.25),                    # "x=" (<= 2 characters) is dropped
    ("\\boxed{5\\text{ cm}}", {"answer": "5"}, 2.25),           # a "\text{ " unit is dropped
    ("\\boxed{\\pi/2}", {"answer": "\\frac{\\pi}{2}"}, 0.25),   # \pi/2 raises: raw strings compared
    ("<answer>\x08oxed</answer>", H, 1.0),                      # the literal the official test seeks
    # the reference is the stored solution's last box when there is one
    ("\\boxed{3}", {"answer": "ignored", "solution": "So $x = \\boxed{3}$."}, 2.25),
]


@pytest.mark.parametrize("completion,example,expected", MATH)
def test_math_d1(completion, example, expected):
    assert tasks.score("math", [completion], [example], reward_set="d1")[0] == pytest.approx(expected)


# ---------------------------------------------------------------- accuracy and today's differences
def test_accuracy_is_the_correctness_term():
    acc = tasks.accuracy("gsm8k", [ONE_LINE, "<answer>7</answer>"], [G, G], reward_set="d1")
    assert acc.tolist() == [1.0, 0.0]
    acc = tasks.accuracy("math", ["\\boxed{0.5}", "<answer>1/2</answer>"], [H, H], reward_set="d1")
    assert acc.tolist() == [1.0, 0.0]
    acc = tasks.accuracy("countdown", ["<answer>3*5+7</answer>", "<answer>3*5+7=22</answer>"], [C, C],
                           reward_set="d1")
    assert acc.tolist() == [1.0, 0.0]
    assert tasks.score("sudoku", ["<answer>1</answer>"], [S], reward_set="d1", correctness_only=True)[0] == 0.5


# (task, completion, example, value under "dlrl" (this project's earlier default), value under "d1")
DEVIATIONS = [
    ("gsm8k", ONE_LINE, G, 4.0, 3.5),
    ("gsm8k", "<reasoning>\nmulti\nline\n</reasoning>\n<answer>\n72\n</answer>\n", G, 4.0, 3.0),
    ("gsm8k", "<answer>1,000</answer>", {"answer": "1000"}, 2.0, 0.0),
    ("gsm8k", "<answer>٧٢</answer>", G, 0.0, 0.5),
    ("countdown", "<answer>3 * 5 + 7 = 22</answer>", C, 1.0, 0.1),
    ("countdown", "<answer>+3 * 5 + 7</answer>", C, 0.1, 1.0),
    ("countdown", "<answer>3 * 5\n+ 7</answer>", C, 1.0, 0.1),
    ("countdown", "<answer>2**3*1</answer>", {"numbers": [1, 2, 3], "target": 8}, 0.1, 1.0),
    ("sudoku", SOL, S, 1.0, 0.0),
    ("sudoku", f"<answer>{SOL}", S, 1.0, 0.0),
    ("sudoku", f"<answer>²{SOL}</answer>", S, 1.0, 0.0),
    ("sudoku", f"<answer>{SOL}</answer>", {"puzzle": SOL, "solution": SOL}, 1.0, 0.0),
    ("math", "<answer>\\boxed{\\frac{1}{2}}</answer>", H, 2.5, 2.75),
    ("math", "\\boxed{2/4}", H, 2.25, 0.25),
    ("math", "1/2", H, 0.0, 2.25),
    ("math", "", H, 0.0, 0.25),
    ("math", "\\boxed{\\pi/2}", {"answer": "\\frac{\\pi}{2}"}, 2.25, 0.25),
]


@pytest.mark.parametrize("task,completion,example,old,new", DEVIATIONS)
def test_deviations_from_the_earlier_rules(task, completion, example, old, new):
    both = [tasks.score(task, [completion], [example], reward_set=s)[0] for s in ("dlrl", "d1")]
    np.testing.assert_allclose(both, [old, new], atol=1e-6)


def test_unknown_set_is_named():
    with pytest.raises(ValueError, match="unknown reward set 'd2'; use one of dlrl, d1, espo"):
        tasks.score("gsm8k", ["x"], [G], reward_set="d2")


# ---------------------------------------------------------------- d1's string normalisation, step by step
@pytest.mark.parametrize("text,normal", [
    ("\\dfrac{3}{4}", "\\frac{3}{4}"), ("0.5", "\\frac{1}{2}"), (".5", "\\frac{1}{2}"), ("x = 3", "3"),
    ("\\sqrt2", "\\sqrt{2}"), ("\\frac12", "\\frac{1}{2}"), ("\\frac1{72}", "\\frac{1}{72}"), ("10^{\\circ}", "10"),
    ("\\$5", "5"), ("50\\%", "50"), ("\\left(1,2\\right)", "(1,2)"), ("3/4", "\\frac{3}{4}"), ("03/4", "03/4"),
    ("\\tfrac{1}{2}\\!", "\\frac{1}{2}"), ("5\\text{ cm}", "5"), ("abc = 4", "abc=4")])
def test_normalise(text, normal):
    from dlrl_jax.rewards.math_strings import normalise
    assert normalise(text) == normal


@pytest.mark.parametrize("text", ["a/b", "1\\text{ m} 2\\text{ s}", "2\\frac", "\\sqrt"])
def test_normalise_raises_where_the_official_raises(text):
    from dlrl_jax.rewards.math_strings import equivalent, normalise
    with pytest.raises(Exception):
        normalise(text)
    assert equivalent(text, text) and not equivalent(text, text + " ")  # then raw strings are compared


@pytest.mark.parametrize("text,answer", [
    ("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{1}{\\sqrt{2}}"), ("a \\boxed 5$ b", "5"), ("\\fbox{3}", "\\fbox{3}"),
    ("none", "none"), ("\\boxed{1", "\\boxed{1"), ("\\boxed{a}\\boxed{b}", "b")])
def test_boxed_answer(text, answer):
    from dlrl_jax.rewards.math_strings import boxed_answer
    assert boxed_answer(text) == answer
