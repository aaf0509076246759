"""The mixed warm start of the Sudoku demo (issue 28): SFT targets from a heuristic teacher for a
fraction of the training puzzles, from the true solution for the rest.

The heuristic fills each row's missing digits in increasing order, left to right: every row then
holds 1-4 once, but columns and boxes are often wrong. A model fine-tuned on the mix decodes the
heuristic's habit greedily while its samples still reach correct grids: the room RL can use (RL
amplifies what the start samples; it cannot add what it never samples)."""

from __future__ import annotations

import numpy as np

TEACHER_STREAM = 0x7EAC  # the selection's own seed stream: the puzzles and batch orders are unchanged


def row_order_fill(puzzle: str) -> str:
    """The heuristic's grid for a 16-digit puzzle (0 = blank): in each row, the digits the row lacks,
    in increasing order, fill its blanks from left to right."""
    out = []
    for r in range(4):
        row = puzzle[4 * r:4 * r + 4]
        missing = iter(sorted(set("1234") - set(row)))
        out += [next(missing) if ch == "0" else ch for ch in row]
    return "".join(out)


def heuristic_indices(seed: int, n: int, fraction: float) -> np.ndarray:
    """Sorted indices of the `round(fraction * n)` training records whose SFT target is the heuristic's:
    the first of a permutation of range(n) drawn from (seed, TEACHER_STREAM)."""
    count = int(round(fraction * n))
    return np.sort(np.random.default_rng([seed, TEACHER_STREAM]).permutation(n)[:count])
