"""The mixed Sudoku warm start (task.sft_teacher=mixed): the row-order heuristic on hand-worked
puzzles, and which training records it teaches, re-derived with numpy from the documented rule."""

import numpy as np

from dlrl_jax import config
from dlrl_jax.data.sudoku import _UNITS
from dlrl_jax.data.sudoku_teacher import TEACHER_STREAM, row_order_fill
from dlrl_jax.tasks import build_task
from dlrl_jax.tasks.build import sft_teacher


def test_row_order_fill_on_hand_worked_puzzles():
    # Row 1 "0200" lacks 1, 3, 4 -> 1 2 3 4; row 2 "3000" lacks 1, 2, 4 -> 3 1 2 4; row 3 "0003" lacks
    # 1, 2, 4 -> 1 2 4 3; row 4 "4000" lacks 1, 2, 3 -> 4 1 2 3. Rows right, but column 1 reads 1 3 1 4
    # and column 2 reads 2 1 2 1 (the solution is 1234 / 3412 / 2143 / 4321).
    puzzle = "0200" "3000" "0003" "4000"
    grid = row_order_fill(puzzle)
    assert grid == "1234" "3124" "1243" "4123"
    assert all(sorted(grid[4 * r:4 * r + 4]) == list("1234") for r in range(4))
    assert [grid[r * 4] for r in range(4)] == list("1314")  # column 1 repeats 1: wrong
    # givens are kept where they stand
    assert all(p == g for p, g in zip(puzzle, grid) if p != "0")
    # a puzzle whose blanks, filled in increasing order, happen to be the solution stays right everywhere
    assert row_order_fill("0234" "0412" "2103" "4301") == "1234" "3412" "2143" "4321"
    # a full grid is returned as it is
    assert row_order_fill("1234341221434321") == "1234341221434321"


def test_row_order_fill_rows_always_right_on_generated_puzzles():
    cfg = config.load(None, ["task.train_size=64", "task.eval_size=8"])
    wrong_units = 0
    for r in build_task(cfg.task, cfg.seed).train:
        grid = row_order_fill(r["puzzle"])
        assert all(sorted(grid[4 * i:4 * i + 4]) == list("1234") for i in range(4))
        wrong_units += sum(sorted(grid[c] for c in unit) != list("1234") for unit in _UNITS[4:])
    assert wrong_units > 0  # columns or boxes wrong somewhere: the heuristic is not a solver


def test_mixed_teacher_picks_the_documented_fraction_per_seed():
    base = config.load(None, ["task.train_size=200", "task.eval_size=16", "task.sft_teacher=solution"])
    for seed, fraction in ((0, 0.6), (3, 0.25)):
        solution_task = build_task(base.task, seed)
        cfg = config.load(None, [f"seed={seed}", "task.train_size=200", "task.eval_size=16", "task.sft_teacher=mixed",
                                 f"task.heuristic_fraction={fraction}"])
        task = build_task(cfg.task, cfg.seed)
        n = len(task.train)
        # the rule, re-derived: the first round(f n) of a permutation from default_rng([seed, stream])
        chosen = set(np.random.default_rng([seed, TEACHER_STREAM]).permutation(n)[:int(round(fraction * n))])
        assert len(chosen) == round(fraction * n)
        # the same records, puzzles and solutions as today's warm start: only the SFT targets differ
        assert [(r["puzzle"], r["solution"]) for r in task.train] == \
            [(r["puzzle"], r["solution"]) for r in solution_task.train]
        assert task.eval == solution_task.eval
        for i, r in enumerate(task.train):
            # the heuristic re-done by hand: each row's missing digits in increasing order
            rows = [list(r["puzzle"][4 * k:4 * k + 4]) for k in range(4)]
            for row in rows:
                fill = iter(sorted(set("1234") - set(row)))
                row[:] = [next(fill) if ch == "0" else ch for ch in row]
            expected = "".join("".join(row) for row in rows) if i in chosen else r["solution"]
            assert task.target_text(r) == expected
        assert solution_task.target_text(solution_task.train[0]) == solution_task.train[0]["solution"]


def test_auto_teacher_is_mixed_for_the_generated_sudoku_only(tmp_path):
    """task.sft_teacher auto (the default): the demo's generated Sudoku gets the mixed warm start (at the
    default fraction 0.6), a Sudoku file or another task the true answers; an explicit choice stands."""
    csv = tmp_path / "sudoku.csv"
    csv.write_text("Puzzle,Solution\n" + "\n".join(["1200340000120000,1234341221434321"] * 4) + "\n")
    cases = {("sudoku", None): "mixed", ("sudoku", str(csv)): "solution", ("countdown", None): "solution"}
    for (name, train_file), expected in cases.items():
        task = config.load(None, [f"task.name={name}"] + ([f"task.train_file={train_file}"] if train_file else [])).task
        assert (task.sft_teacher, sft_teacher(task)) == ("auto", expected), (name, train_file)
    assert sft_teacher(config.load(None, ["task.sft_teacher=solution"]).task) == "solution"
    assert sft_teacher(config.load(None, ["task.name=sudoku", f"task.train_file={csv}",
                                          "task.sft_teacher=mixed"]).task) == "mixed"
    demo = build_task(config.load(None, ["task.train_size=200", "task.eval_size=16"]).task, 0)
    taught = sum(demo.target_text(r) != r["solution"] for r in demo.train)
    assert config.TaskSection().heuristic_fraction == 0.6 and 0 < taught <= round(0.6 * len(demo.train))


def test_the_seeded_program_learns_the_same_mixed_targets():
    """app/seeded.py's SFT targets (token ids) are the digits of the heuristic's grid on the chosen
    records and of the solution elsewhere (the character tokenizer: one token per digit, then EOS)."""
    from dlrl_jax.app import seeded

    cfg = config.load(None, ["seed=2", "task.train_size=40", "task.eval_size=8", "task.sft_teacher=mixed",
                             "task.heuristic_fraction=0.5", "sft.steps=1", "run.iterations=1"])
    data = seeded.seed_data(cfg, 2)
    task = build_task(cfg.task, cfg.seed)
    _, _, tokenizer, _ = seeded._build(cfg.model)
    chosen = set(np.random.default_rng([2, TEACHER_STREAM]).permutation(len(task.train))[:20])
    for i, r in enumerate(task.train):
        grid = row_order_fill(r["puzzle"]) if i in chosen else r["solution"]
        assert list(data.train_target_ids[i]) == tokenizer.encode(grid) + [tokenizer.eos_id] * (16 - len(grid))
