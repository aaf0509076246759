"""Code reward against a hand-worked table: fraction of tests passed in the sandbox plus format."""

import pytest

from dlrl_jax import tasks

EX = {"tests": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4"], "entry_point": "add"}
GOOD = "def add(a, b):\n    return a + b\n"
HALF = "def add(a, b):\n    return a + b if a > 0 else 99\n"  # passes tests 1 and 3

CASES = [
    (f"<answer>\n```python\n{GOOD}```\n</answer>", 1.5),
    (f"```python\n{GOOD}```", 1.25),                                      # no tags: format .5
    (f"<answer>\n```python\n{HALF}```\n</answer>", 2 / 3 + 0.5),
    ("<answer>def add(a, b): return a + b</answer>", 0.0),               # no code block: not run
    ("", 0.0),
    (f"<answer>\n```python\n{GOOD.replace('+', '-')}```\n</answer>", 0.5),  # a - b passes none of the three
    ("<answer>\n```python\nimport os\nos._exit(0)\n```\n</answer>", 0.5),  # exit 0 before the test: no token
    ("<answer>\n```python\nwhile True: pass\n```\n</answer>", 0.5),        # every test times out
    ("<answer>\n```python\ndef add(a, b) return\n```\n</answer>", 0.5),    # syntax error
    (f"```python\nx = 1\n```\n<answer>\n```python\n{GOOD}```\n</answer>", 1.5),  # the block in the answer
    # the last block counts: `return 0` passes add(-1, 1) == 0 only; no tags: format .5 x .5
    (f"```python\n{GOOD}```\n```python\ndef add(a, b):\n    return 0\n```", 1 / 3 + 0.25),
    (f"<answer><answer>\n```python\n{GOOD}```\n</answer></answer>", 1.5),  # nested tags: the block inside
    (f"<answer>\n```python\n{GOOD}# {'x' * 100_000}\n```\n</answer>", 1.5),  # very long output
    ("<answer>\n```python\nprint('0' * 32)\nimport sys\nsys.exit(0)\n```\n</answer>", 0.5),  # a guessed token
    ("<answer>\n```python\ndef add(a, b):\n    résultat = a + b\n    return résultat\n```\n</answer>", 1.5),
    (f"<answer>\n```py\n{GOOD}```\n</answer>", 1.5),                  # the ```py fence
]


@pytest.mark.parametrize("completion,expected", CASES)
def test_code_reward_table(completion, expected):
    assert tasks.score("code", [completion], [EX], reward_set="dlrl")[0] == pytest.approx(expected, abs=1e-6)


def test_batch_correctness_only_and_bad_examples():
    out = tasks.score("code", [f"```python\n{GOOD}```", f"```python\n{HALF}```"], [EX, EX], correctness_only=True,
                        reward_set="dlrl")
    assert out.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match=r"examples\[0\]\['tests'\] must be a non-empty list"):
        tasks.score("code", [""], [{"tests": []}], reward_set="dlrl")
