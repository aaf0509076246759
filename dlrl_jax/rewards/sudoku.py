"""4x4 Sudoku rewards: the fraction of the puzzle's blank cells that the answer fills correctly.

`official_sudoku_reward` (reward sets "d1" and "espo": d1's `sudoku_reward_func`, the same in
EGSPO's egspo/reward_func.py and ESPO's espo/rewards.py): the text of the last <answer>...</answer>
(DOTALL), stripped, keeping the characters for which str.isdigit() holds (Unicode digits such as
'４' or '²' included: they take a cell and never match); padded with '0' or cut to 16. No tags or
no digits: 0. A puzzle without blanks: 0.

`sudoku_reward` (reward set "dlrl"): the same fraction, but without tags the whole completion is
the answer, only ASCII digits count, and a puzzle without blanks scores 1.
"""

from __future__ import annotations

import re

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def extract_grid(completion: str) -> str:
    matches = _ANSWER.findall(completion)
    text = matches[-1] if matches else completion
    digits = "".join(ch for ch in text if "0" <= ch <= "9")
    return digits[:16].ljust(16, "0")


def sudoku_reward(completion: str, example: dict) -> float:
    puzzle, solution = example["puzzle"], example["solution"]
    grid = extract_grid(completion)
    blanks = [i for i, ch in enumerate(puzzle) if ch == "0"]
    if not blanks:
        return 1.0
    return sum(grid[i] == solution[i] for i in blanks) / len(blanks)


def validate_example(example: dict, index: int) -> None:
    for field in ("puzzle", "solution"):
        value = example.get(field)
        if not isinstance(value, str) or len(value) != 16 or not value.isascii() or not value.isdigit():
            raise ValueError(f"examples[{index}]['{field}'] must be a string of 16 digits (0 = blank), "
                             f"got {value!r}")


def official_sudoku_reward(completion: str, example: dict) -> float:
    matches = _ANSWER.findall(completion)
    if not matches:
        return 0.0
    digits = "".join(ch for ch in matches[-1].strip() if ch.isdigit())
    if not digits:
        return 0.0
    grid = digits[:16].ljust(16, "0")
    blanks = [i for i, ch in enumerate(example["puzzle"]) if ch == "0"]
    if not blanks:
        return 0.0
    return sum(grid[i] == example["solution"][i] for i in blanks) / len(blanks)
