"""Code rewards of sets "d1" (EGSPO's coding_reward_func + xmlcount_reward_func, egspo/reward_func.py)
and "espo" (ESPO's code_format_reward + code_reward, espo/rewards.py), against tables worked by hand
from the official functions. Each table is scored in one batch (its tests run in parallel)."""

import pytest

from dlrl_jax import tasks

EX = {"tests": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4"]}
GOOD = "def add(a, b):\n    return a + b\n"
HALF = "def add(a, b):\n    return a + b if a > 0 else 99\n"  # passes tests 1 and 3
XML_FULL = 0.5                # the four d1 tags, nothing after "</answer>\n"
XML_CLOSE = 0.125 + 0.001     # only "\n</answer>" at the very end: .125 - (0 - 1) x .001
# KodCode's layout: one test module importing the solution, with test functions
TWO_BLOCKS = f"```python\nx = 1\n```\n<answer>\n```python\n{GOOD}```\n</answer>"
KOD = {"tests": ["from solution import add\n\ndef test_pos():\n    assert add(1, 2) == 3\n\n"
                 "def test_neg():\n    assert add(-1, 1) == 0\n"]}
KOD_ONE = {"tests": ["from solution import add\n\ndef test_all():\n    assert add(1, 2) == 3\n"
                     "    assert add(2, 2) == 4\n"]}

D1 = [
    # xml + .5 (the block sits in <answer>) + 3/3 tests
    (f"<reasoning>\nr\n</reasoning>\n<answer>\n```python\n{GOOD}```\n</answer>\n", EX, XML_FULL + 0.5 + 1.0),
    (f"```python\n{GOOD}```", EX, 1.0),                                     # no tags: tests only
    (f"<answer>\n```python\n{HALF}```\n</answer>", EX, XML_CLOSE + 0.5 + 2 / 3),
    # the first def is renamed to the tested name, so `plus` passes as `add`
    ("<answer>\n```python\ndef plus(a, b):\n    return a + b\n```\n</answer>", EX, XML_CLOSE + 0.5 + 1.0),
    ("<answer>\n```python\ndef add(a, b) return\n```\n</answer>", EX, XML_CLOSE + 0.5),  # syntax error
    (f"```python\nimport os\n{GOOD}```", EX, 0.0),                         # " os" is blocked: not run
    # the FIRST block counts (no def in it: 0) and is not inside <answer>. xml: "\n<answer>\n" once, .125
    # minus .001 x the length of what follows the last "\n</answer>\n", absent here, so of the whole text
    (TWO_BLOCKS, EX, 0.125 - 0.001 * len(TWO_BLOCKS) + XML_CLOSE),
    ("<answer>def add(a, b): return a + b</answer>", EX, 0.0),             # no ```python block
    (f"<answer>\n```py\n{GOOD}```\n</answer>", EX, XML_CLOSE),              # ```py is not ```python
    (f"```python\n{GOOD}```", KOD, 1.0),                                    # both test functions pass
    (f"```python\n{HALF}```", KOD, 0.5),
    # one test function: split into its assert lines, which lose the import line, so the program is
    # the tests without the solution and every test fails, as in the official code
    (f"<answer>\n```python\n{GOOD}```\n</answer>", KOD_ONE, XML_CLOSE + 0.5),
    # no "from solution import" and no "assert NAME(": 0, the in-answer .5 dropped too
    (f"<answer>\n```python\n{GOOD}```\n</answer>", {"tests": ["assert True"]}, XML_CLOSE),
]

ESPO = [
    (f"Here is the code.\n```python\n{GOOD}```\n", EX, 1.0 + 1.0),        # format 1 + 3/3
    (f"```python\n{GOOD}```", EX, 2.0),
    (f"```python\n{HALF}```", EX, 1.0 + 2 / 3),
    (f"<answer>\n```python\n{GOOD}```\n</answer>", EX, 0.0),              # text after the block
    ("```python\ndef add(a, b) return\n```", EX, 0.5),                    # does not parse: .5, not run
    (f"```python\nx = 1\n```\n```python\n{GOOD}```", EX, 0.0),            # two blocks
    (f"```py\n{GOOD}```", EX, 0.0),
    (f"```python\n{GOOD}```\n\n", EX, 0.0),                               # at most one newline after
    ("def add(a, b): return a + b", EX, 0.0),
]


@pytest.mark.parametrize("reward_set,table", [("d1", D1), ("espo", ESPO)], ids=["d1", "espo"])
def test_code_tables(reward_set, table):
    got = tasks.score("code", [c for c, _, _ in table], [e for _, e, _ in table], reward_set=reward_set)
    for (completion, _, expected), value in zip(table, got):
        assert value == pytest.approx(expected, abs=1e-6), completion


def test_code_accuracy_needs_every_test():
    texts = [f"```python\n{GOOD}```", f"```python\n{HALF}```", f"<answer>\n```python\n{GOOD}```\n</answer>"]
    assert tasks.accuracy("code", texts, [EX] * 3, reward_set="espo").tolist() == [1.0, 0.0, 0.0]
    assert tasks.accuracy("code", texts, [EX] * 3, reward_set="d1").tolist() == [1.0, 0.0, 1.0]
