"""Side by side on the embedded tiny 4x4 Sudoku task: EGSPO-SA, EGSPO, ESPO and diffu-GRPO from the
same SFT warm start (same seed, same SFT steps) and the same number of RL iterations.

    python bench/compare_sudoku.py --seeds 0 1 --iterations 100
"""

from __future__ import annotations

import argparse
import json
import os

from dlrl_jax import config
from dlrl_jax.app.train import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"egspo_sa": "tiny_sudoku_egspo_sa.yaml", "egspo": "tiny_sudoku_egspo_sa.yaml",
           "espo": "tiny_sudoku_espo.yaml", "diffu_grpo": "tiny_sudoku_diffu_grpo.yaml"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--algorithms", nargs="+", default=list(CONFIGS))
    parser.add_argument("--out", default="runs/compare")
    args = parser.parse_args()
    rows = []
    for algorithm in args.algorithms:
        for seed in args.seeds:
            out = os.path.join(args.out, f"{algorithm}_seed{seed}")
            cfg = config.load(os.path.join(ROOT, "configs", CONFIGS[algorithm]), [
                f"algorithm.name={algorithm}", f"seed={seed}", f"run.iterations={args.iterations}",
                f"run.out_dir={out}", "run.progress=false", "run.eval_every=0", "run.tensorboard=false"])
            summary = train(cfg, log=lambda *_: None)
            rows.append((algorithm, seed, summary))
            print(json.dumps({"algorithm": algorithm, "seed": seed, "before": summary["before"],
                              "after": summary["after"], "seconds": summary["seconds"]}), flush=True)
    print(f"| algorithm | seed | RL iterations | reward before | reward after | solved before | solved after | s |")
    print("|---|---|---|---|---|---|---|---|")
    for algorithm, seed, s in rows:
        print(f"| {algorithm} | {seed} | {args.iterations} | {s['before']['reward']:.3f} | {s['after']['reward']:.3f} | "
              f"{s['before']['solved']:.1%} | {s['after']['solved']:.1%} | {s['seconds']:.0f} |")


if __name__ == "__main__":
    main()
