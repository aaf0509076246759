"""GSM8K reward (d1's five terms) against hand-worked totals."""

import pytest

from dlrl_jax import tasks
from dlrl_jax.rewards.gsm8k import gsm8k_reward

EX = {"answer": "72"}
PERFECT = "<reasoning>\n48 + 24 = 72\n</reasoning>\n<answer>\n72\n</answer>\n"

# Totals: correctness 2 + integer .5 + strict .5 + soft .5 + xml (4 x .125 minus .001 per trailing char).
CASES = [
    (PERFECT, 4.0),                                         # 2 + .5 + .5 + .5 + .5 (no trailing text)
    (PERFECT.replace("72\n</answer>", "71\n</answer>"), 2.0),  # wrong: .5 int + .5 + .5 + .5
    (PERFECT.replace("\n72\n", "\n72.5\n"), 1.5),           # not an integer, wrong
    (PERFECT + "extra", 3.49),                              # strict fails; xml: -.005 and -.005
    ("<reasoning>a</reasoning><answer>72</answer>", 3.0),   # 2 + .5 + soft .5, xml 0
    ("<reasoning>\nmulti\nline\n</reasoning>\n<answer>\n72\n</answer>\n", 4.0),  # DOTALL strict
    ("72", 2.5),                                            # no tags: the whole text is the answer
    ("", 0.0),
    # 2 + .5; xml: only "\n</answer>" counts (.125) and, with nothing after it, d1's -(0 - 1) * .001 adds .001
    ("<answer>\n72\n</answer>", 2.626),
    ("<reasoning>\nx\n</reasoning>\n<answer>\n1,000\n</answer>\n", 1.5),  # '1,000' != 72, not digits
    ("<answer>1</answer> <answer>72</answer>", 2.5),       # the last answer counts
    ("<answer>72</answer><answer>5</answer>", 0.5),
    ("<reasoning>\nx\n</reasoning>\n<answer>\n٧٢\n</answer>\n", 1.5),  # Arabic-Indic digits: wrong, not ASCII
    # 2 + .5 + soft .5 (strict fails on the tail); xml .5 - 1000 x .001 - 1000 x .001 = -1.5
    ("<reasoning>\nx\n</reasoning>\n<answer>\n72\n</answer>\n" + "z" * 1000, 1.5),
    # nested opening tag: strict fails (no newline after the first tag); 2 + .5 + soft .5 + xml .5
    ("<reasoning><reasoning>\nx\n</reasoning>\n<answer>\n72\n</answer>\n", 3.5),
]


@pytest.mark.parametrize("completion,expected", CASES)
def test_gsm8k_reward_table(completion, expected):
    assert gsm8k_reward(completion, EX) == pytest.approx(expected, abs=1e-9)


def test_commas_and_correctness_only():
    assert gsm8k_reward("<answer>1,000</answer>", {"answer": "1000"}, correctness_only=True) == 1.0
    assert gsm8k_reward(PERFECT, {"answer": 72}, correctness_only=True) == 1.0
    assert gsm8k_reward("<answer>73</answer>", EX, correctness_only=True) == 0.0
    assert tasks.score("gsm8k", [PERFECT], [EX], reward_set="dlrl")[0] == pytest.approx(4.0)
    with pytest.raises(ValueError, match=r"examples\[0\]\['answer'\] must be the reference answer"):
        tasks.score("gsm8k", [""], [{}], reward_set="dlrl")
