"""How much can RL add to a model on the tiny Sudoku task? RL sharpens what the policy already samples:
this prints, for an exported model, the held-out solved rate of greedy decoding (what the demo reports)
next to that of sampling -- per sample, and pass@n (a puzzle counts when any of n samples solves it) --
at several rollout temperatures and blank counts (issue 17, bench/RESULTS.md).

    python bench/headroom.py --model runs/default/sft_model [--samples 16] [--temperatures 0.9,1.3,2.0] \\
        [--blanks 8] [--puzzles 256]

`--blanks 8` is the demo's held-out set itself (d1's test difficulty, `task.eval_size` puzzles of the
run config); other counts draw fresh puzzles with that many blanks from the generator (seed 12345).
"""

from __future__ import annotations

import argparse
import os
import tempfile

import jax
import numpy as np

from dlrl_jax import config, rollout
from dlrl_jax.app.run import Run
from dlrl_jax.data.sudoku import generate_sudoku
from dlrl_jax.tasks.sudoku import D1_TEST_BLANKS


def solved_rates(run, records, settings, samples: int, key, batch: int = 8):
    """(mean solved per sample, pass@samples, mean cell reward) over `records`."""
    per_sample, any_solved, cells = [], [], []
    for start in range(0, len(records), batch):
        chunk = records[start:start + batch]
        rows = [r for r in chunk for _ in range(samples)]
        ids, mask = run.encode(rows)
        traj = rollout.generate(run.graphdef, run.params, ids, mask, jax.random.fold_in(key, start), settings)
        reward = run.task.score(run.decode(traj.completion), rows).reshape(len(chunk), samples)
        per_sample += list((reward == 1).mean(axis=1))
        any_solved += list((reward == 1).any(axis=1))
        cells += list(reward.mean(axis=1))
    return float(np.mean(per_sample)), float(np.mean(any_solved)), float(np.mean(cells))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="an exported model folder (config.json + safetensors)")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--temperatures", default="0.9,1.3,2.0")
    p.add_argument("--blanks", default=str(D1_TEST_BLANKS))
    p.add_argument("--puzzles", type=int, default=256)
    args = p.parse_args()
    cfg = config.load(None, [f"model.path={args.model}", "sft.steps=0", f"task.eval_size={args.puzzles}",
                             f"run.out_dir={tempfile.mkdtemp(prefix='dlrl_headroom_')}", "run.progress=false",
                             "run.tensorboard=false"])
    run = Run(cfg)
    print(f"model {os.path.abspath(args.model)}; {args.samples} samples per puzzle; {jax.device_count()} "
          f"{jax.devices()[0].platform} device(s)")
    print("| blanks | temperature | greedy solved | sampled solved per sample | pass@n | sampled cell reward |")
    print("|---|---|---|---|---|---|")
    for blanks in (int(b) for b in args.blanks.split(",")):
        records = run.task.eval if blanks == D1_TEST_BLANKS else generate_sudoku(12345, args.puzzles, blanks)
        greedy = solved_rates(run, records, run.sampler(0.0), 1, jax.random.key(0))[0]
        for temperature in (float(t) for t in args.temperatures.split(",")):
            per_sample, pass_n, cell = solved_rates(run, records, run.sampler(temperature), args.samples,
                                                    jax.random.key(1))
            print(f"| {blanks} | {temperature} | {greedy:.1%} | {per_sample:.1%} | {pass_n:.1%} | {cell:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
