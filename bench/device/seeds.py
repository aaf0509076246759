"""Phase seeds: seeds per hour of the tiny Sudoku run (SFT warm start, RL iterations, held-out evaluation
before and after: one pure function of the seed, dlrl_jax/app/seeded.py) one seed at a time with
`jit(train)` against N seeds at once with `jit(vmap(train))`, with bench/compare_sudoku.py's configs.

The host data (puzzles, encoded prompts, batch orders) of `distinct` seeds is made once and reused
round-robin for larger N: making it takes ~1 s per seed in Python, and the program's work does not
depend on which puzzles it gets; every seed still has its own initialisation and key chain. One seed at
a time runs first (the baseline), then each N in the order given (the largest first on a GPU)."""

from __future__ import annotations

import time

import compare_sudoku  # bench/compare_sudoku.py
import jax
import jax.numpy as jnp

import common


def _timed(fn):
    t = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - t


def run():
    from dlrl_jax.app import seeded

    s = common.shapes("seeds")
    algorithm = s["algorithm"]
    cfg = compare_sudoku.load_config(algorithm, s["iterations"], s["overrides"])
    train = seeded.make_train(cfg)
    data, host_s = _timed(lambda: [seeded.seed_data(cfg, i) for i in range(s["distinct"])])
    note = f"{s['iterations']} RL iterations, {cfg.sft.steps} SFT steps; " + " ".join(s["overrides"])
    last = None  # (seeds, compile s, run s)

    def single():
        nonlocal last
        seed = jnp.asarray(0, jnp.int32)
        compiled, compile_s = _timed(lambda: jax.jit(train).lower(seed, data[0]).compile())
        runs = [_timed(lambda i=i: compiled(jnp.asarray(i, jnp.int32), data[i % len(data)]))[1]
                for i in range(s["sequential"])]
        run_s = sum(runs) / len(runs)
        last = (1, compile_s, run_s)
        common.emit(program="jit(train), one seed at a time", algorithm=algorithm, seeds=len(runs), compile_s=compile_s,
                    run_s=run_s, seeds_per_hour=3600 / run_s, host_s_per_seed=host_s / len(data),
                    note=f"run s per seed, mean of {len(runs)}; {note}")

    common.guarded("program", "jit(train)", single)
    for n in s["counts"]:
        name = f"jit(vmap(train)), {n} seeds"
        # vmap's cost on an accelerator is far from linear in N: skip only what cannot even compile and
        # run as long as the last program did (a run cut off by the deadline loses only itself)
        if last is not None and last[1] + last[2] > common.remaining() - 5:
            common.skip("program", name, f"needs over {last[1] + last[2]:.0f} s, {common.remaining():.0f} s left")
            continue

        def vmapped(n=n, name=name):
            nonlocal last
            seeds = jnp.arange(n, dtype=jnp.int32)
            stacked = seeded.stack_seed_data([data[i % len(data)] for i in range(n)])
            compiled, compile_s = _timed(lambda: jax.jit(jax.vmap(train)).lower(seeds, stacked).compile())
            metrics, run_s = _timed(lambda: compiled(seeds, stacked))
            solved = float(jnp.mean(metrics["eval_after"]["solved"]))
            last = (n, compile_s, run_s)
            common.emit(program=name, algorithm=algorithm, seeds=n, compile_s=compile_s, run_s=run_s,
                        seeds_per_hour=3600 * n / run_s, solved_after_mean=solved, note=note)
        common.guarded("program", name, vmapped)


if __name__ == "__main__":
    run()
