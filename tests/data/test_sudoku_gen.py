"""Every generated puzzle has exactly one solution (an independent brute-force solver) equal to the
recorded one, the asked number of blanks, and generation is deterministic for a seed."""

import itertools

import pytest

from dlrl_jax.data import generate_sudoku

ROWS = list(itertools.permutations("1234"))


def _valid(grid):
    cols = [grid[c::4] for c in range(4)]
    boxes = [grid[r * 4 + c] + grid[r * 4 + c + 1] + grid[r * 4 + c + 4] + grid[r * 4 + c + 5]
             for r in (0, 2) for c in (0, 2)]
    return all(len(set(u)) == 4 for u in cols + boxes)


def brute_force(puzzle):
    """All completions: every choice of 4 permuted rows consistent with the clues (24^4 at most)."""
    options = [[r for r in ROWS if all(p in ("0", d) for p, d in zip(puzzle[i * 4:i * 4 + 4], r))]
               for i in range(4)]
    return ["".join(a + b + c + d) for a, b, c, d in itertools.product(*options) if _valid("".join(a + b + c + d))]


@pytest.mark.parametrize("blanks", [0, 4, 8, 10, 12])
def test_unique_solution_and_blank_count(blanks):
    for record in generate_sudoku(blanks, 40, blanks):
        assert record["puzzle"].count("0") == blanks
        assert brute_force(record["puzzle"]) == [record["solution"]]


def test_deterministic_for_a_seed_and_rejects_impossible_blanks():
    assert generate_sudoku(3, 5, 8) == generate_sudoku(3, 5, 8)
    assert generate_sudoku(3, 5, 8) != generate_sudoku(4, 5, 8)
    with pytest.raises(ValueError, match="num_blanks must be in"):
        generate_sudoku(0, 1, 13)
