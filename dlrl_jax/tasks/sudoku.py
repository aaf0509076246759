"""4x4 Sudoku: fill the blanks so that every row, column and 2x2 box holds 1-4 once.

Record: {"puzzle": 16 digits, '0' for a blank, "solution": 16 digits}, row-major. Generated
procedurally with a unique solution (`dlrl_jax.data.sudoku`), or read from d1's CSV ("Puzzle",
"Solution") or any file with those fields. Rewards (`dlrl_jax.rewards.sudoku`): the fraction of the
blanks filled correctly.
"""

from __future__ import annotations

import numpy as np

from dlrl_jax.data.readers import DataError, field, require
from dlrl_jax.data.sudoku import generate_sudoku
from dlrl_jax.rewards import sudoku as rewards
from dlrl_jax.tasks.spec import TaskSpec, pair

D1_TEST_BLANKS = 8  # every puzzle of d1's test set (dataset/4x4_test_sudoku.csv) has 8 blanks


def normalize(r: dict, where: str) -> dict:
    puzzle = str(require(field(r, "puzzle", "quizzes"), where, "'puzzle' (16 digits, 0 for blanks)"))
    solution = str(require(field(r, "solution", "solutions"), where, "'solution' (16 digits)"))
    puzzle, solution = puzzle.replace(".", "0").strip(), solution.strip()
    if len(puzzle) != 16 or not puzzle.isdigit() or len(solution) != 16 or not solution.isdigit():
        raise DataError(f"{where}: a 4x4 sudoku needs 16-digit 'puzzle' and 'solution', got {puzzle!r}, {solution!r}")
    return {"puzzle": puzzle, "solution": solution}


def question(r: dict) -> str:
    grid = "\n".join(r["puzzle"][i:i + 4] for i in range(0, 16, 4))
    return ("Solve this 4x4 Sudoku. Every row, every column and each of the four 2x2 boxes must hold the "
            "digits 1 to 4 once. Empty cells are 0.\n" + grid + "\nGive the completed grid in the answer as "
            "16 digits, row by row.")


def extract_answer(completion: str, reward_set: str) -> str | None:
    if reward_set != "dlrl":
        found = rewards._ANSWER.findall(completion)
        return "".join(ch for ch in found[-1].strip() if ch.isdigit()) if found else None
    return rewards.extract_grid(completion)


def generate_training(seed: int, n: int, section) -> list[dict]:
    """`n` puzzles whose blank counts are drawn uniformly from [section.min_blanks, section.max_blanks]."""
    rng = np.random.default_rng(seed)
    blanks = rng.integers(section.min_blanks, section.max_blanks + 1, n)
    out = []
    for b in np.unique(blanks):
        out += generate_sudoku(int(rng.integers(2**31)), int((blanks == b).sum()), int(b))
    return [out[i] for i in rng.permutation(len(out))]


TASK = TaskSpec(
    name="sudoku",
    normalize=normalize,
    validate=rewards.validate_example,
    question=question,
    recipe_fields=lambda r: {"puzzle": r["puzzle"]},
    # task.sft_teacher=mixed: the heuristic teacher's grid where build_task put one, else the solution
    sft_answer=lambda r: r.get("teacher_target", r.get("solution")),
    reward_sets={"dlrl": pair(rewards.sudoku_reward, rewards.sudoku_reward),
                 "d1": pair(rewards.official_sudoku_reward, rewards.official_sudoku_reward),
                 "espo": pair(rewards.official_sudoku_reward, rewards.official_sudoku_reward)},
    extract_answer=extract_answer,
    plain_prompt=lambda r: r["puzzle"],
    generate=lambda seed, n: generate_sudoku(seed, n, D1_TEST_BLANKS),
    generate_training=generate_training,
    record_key=lambda r: r["puzzle"],
)
