"""4x4 Sudoku reward (d1's rule): the fraction of the puzzle's blank cells that the answer fills correctly.

The answer is the text of the last <answer>...</answer> (the whole completion when there is none);
its ASCII digits, in order, are the 16 cells, padded with '0' or cut to 16. Other characters
(including non-ASCII digits such as '４') are ignored.
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
