"""The Sudoku reward against a hand-worked table (fraction of the blanks filled correctly)."""

import numpy as np
import pytest

from dlrl_jax import tasks

EX = {"puzzle": "0234341221434301", "solution": "1234341221434321"}  # blanks at cells 0 and 14
SOL = EX["solution"]

CASES = [
    (SOL, 1.0),                                            # bare digits: the whole completion is the answer
    (f"<answer>{SOL}</answer>", 1.0),
    (f"<reasoning>r</reasoning><answer>\n{SOL[:8]}\n{SOL[8:]}\n</answer>", 1.0),  # whitespace ignored
    ("<answer>" + "4" + SOL[1:] + "</answer>", 0.5),      # cell 0 wrong, cell 14 right
    ("<answer>" + "4" + SOL[1:14] + "1" + SOL[15] + "</answer>", 0.0),
    ("", 0.0),                                             # nothing: padded with '0'
    ("<answer></answer>", 0.0),
    ("<answer>1</answer>", 0.5),                           # cut short: cell 0 right, rest padded
    (f"<answer>0000000000000000</answer><answer>{SOL}</answer>", 1.0),  # the last answer counts
    (f"<answer>{SOL}</answer><answer>0000000000000000</answer>", 0.0),
    (f"<answer><answer>{SOL}</answer></answer>", 1.0),     # nested tags: inner text up to the first close
    ("<answer>１２３４３４１２２１４３４３２１</answer>", 0.0),  # full-width digits are not digits here
    (f"<answer>{SOL}99999</answer>", 1.0),                 # extra digits beyond 16 are cut
    ("<answer>1 2 3 4 | 3 4 1 2 | 2 1 4 3 | 4 3 2 1</answer>", 1.0),
    ("x" * 100_000 + SOL, 1.0),                            # very long output, no tags
    (f"<answer>{SOL}", 1.0),                               # unclosed tag: the whole text's digits
    ("-1.5e3" + SOL, 0.5),                                 # stray digits shift the grid: cell 0 '1' ok, 14 not
]


@pytest.mark.parametrize("completion,expected", CASES)
def test_sudoku_reward_table(completion, expected):
    assert tasks.score("sudoku", [completion], [EX], reward_set="dlrl")[0] == pytest.approx(expected)


def test_batch_and_errors():
    out = tasks.score("sudoku", [c for c, _ in CASES], [EX] * len(CASES), reward_set="dlrl")
    assert out.dtype == np.float32 and out.shape == (len(CASES),)
    with pytest.raises(ValueError, match=r"examples\[1\]\['puzzle'\] must be a string of 16 digits"):
        tasks.score("sudoku", ["", ""], [EX, {"puzzle": "12", "solution": SOL}], reward_set="dlrl")
    with pytest.raises(ValueError, match="no reward for task 'chess'"):
        tasks.score("chess", [""], [EX], reward_set="dlrl")
    with pytest.raises(ValueError, match="2 completions but 1 examples"):
        tasks.score("sudoku", ["", ""], [EX], reward_set="dlrl")
