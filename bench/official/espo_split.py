"""Where dlrl_jax's ESPO post-reward time goes at the speed comparison's settings (issue 27 item 5):
the jitted iteration's update phase as `RLLoop.step` measures it, then its parts compiled and timed
alone -- `prepare` (the old and reference ELBOs, advantages, the items) and one optimizer step (M
coupled ELBO passes forward + backward, AdamW) -- and one item's loss forward, for the backward's share.
Compare with the official trainer's "reference" and "update" phases in bench/official/speed.py's table.

    python -m bench.official.speed ... (the table)
    python -m bench.official.espo_split --espo-repo C --model /work/official_model --prompt-length 16 \\
        [--dtype float32] [--set algorithm.elbo_remat=true ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def median_seconds(fn, repeats: int = 7) -> float:
    """Median wall seconds of `fn()` (its arrays waited for) after one untimed call (the compile)."""
    import jax

    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--espo-repo", required=True, help="a clone of ML-GSAI/ESPO (the runner's settings parser needs it)")
    p.add_argument("--model", default="/work/official_model")
    p.add_argument("--prompt-length", type=int, default=16)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--set", action="append", default=[], help="extra config overrides (key=value)")
    args = p.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import numpy as np

    from dlrl_jax import rollout
    from dlrl_jax.app.run import Run
    from dlrl_jax.training import loop

    sys.path.insert(0, HERE)
    import run_espo

    from bench.official import espo_replay

    s = vars(run_espo.parse(["--espo-repo", args.espo_repo, "--model", args.model, "--out", os.devnull, "--dtype",
                             args.dtype, "--group", str(args.group), "--gen-length", "32", "--steps", "16"]))
    with tempfile.TemporaryDirectory() as out_dir:
        cfg = espo_replay._config(s, s["model"], out_dir, s["group"], extra=[
            f"task.max_prompt_length={args.prompt_length}", "sampler.block_length=32", *args.set])
        run = Run(cfg)
        rl = loop.RLLoop(run, run.params, run.reference(run.params), progress=False)
        rows = [rl.step() for _ in range(6)]
        update = statistics.median(r["time_update"] for r in rows[1:])
        records = [r for r in next(rl.batches) for _ in range(rl.G)]
        ids, mask = run.encode(records)
        traj = rollout.generate(run.graphdef, rl.state.params, ids, mask, jax.random.key(0), rl.sampler)
        traj = traj.replace(greedy=None)
        reward = jnp.asarray(np.linspace(0.0, 1.0, rl.B), jnp.float32)
        prepare = jax.jit(lambda p_, r_, b, rw: rl.algorithm.prepare(p_, r_, b, rw, None, 0, cfg.algorithm.k))
        state = rl.state
        t_prepare = median_seconds(lambda: prepare(state.params, state.ref_params, traj, reward))
        items, _ = prepare(state.params, state.ref_params, traj, reward)
        first = jax.tree.map(lambda x: x[0], items)  # the first optimizer step's items
        step = jax.jit(rl.iteration_fn.step)
        t_step = median_seconds(lambda: step(state.params, state.opt_state, first))
        forward = jax.jit(lambda p_, it: rl.algorithm.loss(p_, jax.tree.map(lambda x: x[0], it)))
        t_forward = median_seconds(lambda: forward(state.params, first))
        rl.close()
        run.writer.close()
    mu = cfg.algorithm.mu
    print(f"ESPO, P{args.prompt_length} + G32, {args.dtype}, 1 prompt x {args.group}, M {cfg.algorithm.elbo_samples}, "
          f"mu {mu}{', ' + ' '.join(args.set) if args.set else ''}: update phase of the iteration {update:.3f} s | "
          f"prepare alone {t_prepare:.3f} s | one optimizer step {t_step:.3f} s (x mu = {mu * t_step:.3f}) | "
          f"one item's loss forward {t_forward:.3f} s")


if __name__ == "__main__":
    main()
