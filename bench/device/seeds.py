"""Phase seeds: seeds per hour of the tiny Sudoku run (SFT warm start, RL iterations, held-out evaluation
before and after, one pure function of the seed: dlrl_jax/training/seeded.py) with `jit(vmap(train))`
over N seeds at once against `jit(train)` one seed at a time, by bench/compare_sudoku.py's
`run_algorithm`. The first call also times one seed at a time; each larger N is skipped when its
compile plus a run scaled from the previous N would not finish before the phase's deadline."""

from __future__ import annotations

import compare_sudoku  # bench/compare_sudoku.py

import common


def run():
    s = common.shapes("seeds")
    algorithm, previous = s["algorithm"], None
    for i, n in enumerate(s["counts"]):
        name = f"jit(vmap(train)), {n} seeds"
        if previous is not None:
            n0, compile0, run0 = previous
            needed = compile0 + run0 * n / n0
            if needed > common.remaining() - 5:
                common.skip("program", name, f"needs ~{needed:.0f} s (from {n0} seeds), {common.remaining():.0f} s left")
                continue

        def one(i=i, n=n, name=name):
            nonlocal previous
            sequential = s["sequential"] if i == 0 else 0
            rows = compare_sudoku.run_algorithm(algorithm, list(range(n)), s["iterations"], sequential, s["overrides"])
            vmapped = rows[0]
            previous = (n, vmapped["compile_s"], vmapped["run_s"])
            common.emit(program=name, algorithm=algorithm, seeds=n, compile_s=vmapped["compile_s"],
                        run_s=vmapped["run_s"], host_s=vmapped["host_s"], seeds_per_hour=3600 * n / vmapped["run_s"],
                        solved_after_mean=sum(vmapped["eval_after"]["solved"]) / n,
                        note=f"{s['iterations']} RL iterations; " + " ".join(s["overrides"]))
            for row in rows[1:]:
                common.emit(program="jit(train), one seed at a time", algorithm=algorithm, seeds=1,
                            compile_s=row["compile_s"], run_s=row["run_s"], seeds_per_hour=3600 / row["run_s"],
                            solved_after_mean=row["eval_after"]["solved"], note=f"seed {row['seed']}")
        common.guarded("program", name, one)


if __name__ == "__main__":
    run()
