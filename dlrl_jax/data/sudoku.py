"""4x4 Sudoku: puzzles with exactly one solution, generated procedurally (no download).

Records: {"puzzle": 16 digits with '0' for blanks, "solution": 16 digits}, row-major.
"""

from __future__ import annotations

import numpy as np

_UNITS = ([[r * 4 + c for c in range(4)] for r in range(4)] + [[r * 4 + c for r in range(4)] for c in range(4)]
          + [[(br + r) * 4 + bc + c for r in range(2) for c in range(2)] for br in (0, 2) for bc in (0, 2)])
_PEERS = [sorted({j for unit in _UNITS if i in unit for j in unit} - {i}) for i in range(16)]


def count_solutions(grid: list[int], limit: int = 2) -> int:
    """Solutions of a 16-cell grid (0 = blank), counting stops at `limit`."""
    try:
        i = grid.index(0)
    except ValueError:
        return 1
    used = {grid[j] for j in _PEERS[i]}
    total = 0
    for digit in range(1, 5):
        if digit not in used:
            grid[i] = digit
            total += count_solutions(grid, limit - total)
            grid[i] = 0
            if total >= limit:
                break
    return total


def _random_full_grid(rng: np.random.Generator) -> list[int]:
    grid = [0] * 16

    def fill(i):
        if i == 16:
            return True
        used = {grid[j] for j in _PEERS[i]}
        for digit in rng.permutation(4) + 1:
            if digit not in used:
                grid[i] = int(digit)
                if fill(i + 1):
                    return True
        grid[i] = 0
        return False

    fill(0)
    return grid


def generate_sudoku(seed, n: int, num_blanks: int = 8) -> list[dict]:
    """`n` puzzles with `num_blanks` blanks each and exactly one solution; deterministic for a seed.
    The default, 8, is what every puzzle of d1's test set (dataset/4x4_test_sudoku.csv, 500 rows) has.

    Blanks are removed one cell at a time in random order, keeping a removal only while the puzzle
    stays uniquely solvable; a grid that cannot reach `num_blanks` is drawn again. 4x4 Sudoku admits
    at most 12 blanks with a unique solution."""
    if not 0 <= num_blanks <= 12:
        raise ValueError(f"num_blanks must be in [0, 12] for a unique 4x4 solution, got {num_blanks}")
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        solution = _random_full_grid(rng)
        puzzle = list(solution)
        blanks = 0
        for cell in rng.permutation(16):
            if blanks == num_blanks:
                break
            kept, puzzle[cell] = puzzle[cell], 0
            if count_solutions(list(puzzle)) == 1:
                blanks += 1
            else:
                puzzle[cell] = kept
        if blanks == num_blanks:
            out.append({"puzzle": "".join(map(str, puzzle)), "solution": "".join(map(str, solution))})
    return out
