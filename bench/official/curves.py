"""Issue 27 item 4: learning curves of the official trainer and of dlrl_jax from the shared warm start
(bench/official/warm_start.py), seed by seed, scored by ONE evaluator, with an equivalence test whose
margins are fixed here, before any run (MARGINS).

For each seed it runs, one after the other on the same machine:
  official  bench/official/curve_official.py in the trainer's venv (its real trainer, data builder and
            reward function), writing OUT/official/seedS/{rewards.json, model/};
  ours      `dlrl-jax train` with the same settings (OUT/ours/seedS/config.yaml), from the same folder;
then evaluates both final models with `evaluate` (this project's held-out evaluation: greedy decoding at
the warm start's sampler settings, the same truncated d1 prompt, the d1 parser's accuracy = the fraction of
blanks filled right, on the warm start's test.csv) and appends one JSON line per (system, seed) to
OUT/curves.jsonl. A seed already in the file is skipped (rerun to resume).

`--report` prints the table (mean +- standard error per system), the equivalence verdicts and, with
--plot, draws the mean reward curves. The settings are d1's Sudoku recipe scaled down to the tiny model
(SETTINGS; REPRODUCTION.md states each change).

Usage (this project's venv):
    python -m bench.official.curves --algorithm diffu_grpo --warm /work/official_warm \
        --repo D1_CLONE --official-python /work/official_envs/d1/bin/python --seeds 8 --out OUT
    python -m bench.official.curves --report --out OUT [--plot OUT/curves.png]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# Fixed before the runs (issue 27 item 4): two one-sided tests at these margins, alpha 0.05 each side
# (equivalence when the 90% confidence interval of the difference of means lies inside +-margin).
MARGINS = {"accuracy": 3.0,        # held-out accuracy, percentage points (the primary test)
           "mean_reward": 0.03}    # the mean rollout reward over all iterations (secondary)
ALPHA = 0.05

# d1's Sudoku recipe (configs/paper/llada8b_sudoku_diffu_grpo.yaml) scaled down to the tiny model: one
# prompt x 8 completions per iteration (d1: 16 x 6), mu 2 (d1: 12 in run.sh), gen 64 in blocks of 32 with
# 32 steps (d1: 256, 32, 128: 2 tokens a step both), prompts cut to 100 tokens (d1: 200 BPE tokens; the
# character tokenizer spells the prompt in 709), full fine-tuning with beta 0 (d1: LoRA r 128 and beta 0.04;
# its reference is the adapter switched off, which needs LoRA), lr 1e-5 constant (d1: 3e-6 on LoRA of 8B;
# at 1e-4 and 3e-5 a 5- and a 40-iteration pilot of ours lost held-out accuracy).
# Unchanged: p_mask_prompt 0.15, eps 0.5, temperature 0.9, AdamW betas (0.9, 0.99), weight decay 0.1,
# gradient clip 0.2, the batch token mean.
# EGSPO-SA (configs/paper/llada8b_sudoku_egspo_sa.yaml, EGSPO's egspo/train.sh) scaled down the same way:
# one prompt x 8 (EGSPO: 6 x 8), K 4 of 32 steps (EGSPO: 8 of 128), 2 columns per AdamW step and one pass
# (as EGSPO), lambda 0.5 with normalized returns, eps 0.2 / 0.5, the rest as diffu-GRPO's above.
# ESPO (configs/paper/llada8b_sudoku_espo.yaml, ESPO's recipes/run_sudoku_llada.sh and train.yaml) scaled
# down the same way: one prompt x 8 (ESPO: 16 x 6), mu 2 (ESPO: 8), 2 Monte-Carlo ELBO samples (num_mc, as
# ESPO) in strata over the 8 rows of the micro-step, beta 0.01 against a reference copy (full fine-tuning;
# ESPO: LoRA, reference = adapter off), eps 0.2 both sides, weight decay 0.01, temperature 1.0 (ESPO's
# generation_temperature), lr 1e-5 constant (ESPO: 3e-6 on LoRA of 8B), ESPO's own Sudoku prompt (its
# worked example; cut to the last 100 tokens it ends as d1's does but for "Now, s") and ESPO's reward.
# EGSPO-SA's and ESPO's set before any of their runs (REPRODUCTION.md).
SETTINGS = {"diffu_grpo": {"group": 8, "mu": 2, "p_mask_prompt": 0.15, "eps": 0.5, "lr": 1e-5,
                           "weight_decay": 0.1, "grad_clip": 0.2, "temperature": 0.9},
            "egspo_sa": {"group": 8, "mu": 1, "k": 4, "columns": 2, "lam": 0.5, "eps": 0.2, "eps_high": 0.5,
                         "lr": 1e-5, "weight_decay": 0.1, "grad_clip": 0.2, "temperature": 0.9},
            "espo": {"group": 8, "mu": 2, "num_mc": 2, "beta": 0.01, "eps": 0.2, "lr": 1e-5, "weight_decay": 0.01,
                     "grad_clip": 0.2, "temperature": 1.0}}
TRAINER = {"diffu_grpo": "d1", "egspo_sa": "egspo", "espo": "espo"}
# whose prompt and reward each algorithm's official trainer uses (EGSPO's Sudoku text and reward are d1's)
RECIPE = {"diffu_grpo": "d1", "egspo_sa": "d1", "espo": "espo"}


def warm_settings(warm: str) -> dict:
    import yaml
    with open(os.path.join(warm, "sft.yaml")) as f:
        return yaml.safe_load(f)


def our_config(algorithm: str, warm: str, seed: int, iterations: int, out_dir: str,
               eval_size: int | None = None) -> dict:
    """The `dlrl-jax train` config of one curve run: the warm start's task and sampler, SETTINGS.
    `eval_size`: the held-out puzzles the run itself scores before and after RL (the curves read the
    evaluator's numbers, `evaluate`, on all of them; a small number here saves the run's time)."""
    base, s = warm_settings(warm), SETTINGS[algorithm]
    task = dict(base["task"], train_file=os.path.join(warm, "train.csv"), eval_file=os.path.join(warm, "test.csv"),
                sft_teacher="solution", prompt_recipe=RECIPE[algorithm], reward_set=RECIPE[algorithm])
    if eval_size is not None:
        task["eval_size"] = eval_size
    algo = {"name": algorithm, "prompts_per_batch": 1, "group_size": s["group"], "mu": s["mu"],
            "beta": s.get("beta", 0.0)}
    if algorithm == "espo":  # one micro-batch: the strata span the micro-step's rows, as ESPO's per-device batch
        algo.update(elbo_samples=s["num_mc"], elbo_strata=s["group"], micro_batches=1, eps_low=s["eps"],
                    eps_high=s["eps"])
    elif algorithm == "diffu_grpo":
        algo.update(p_mask_prompt=s["p_mask_prompt"], eps_low=s["eps"], token_mean="batch")
    else:  # EGSPO-SA: top-K entropy steps, summed per step, the official column schedule
        algo.update(k=s["k"], selection="top_k_entropy", aggregation="sum", lam=s["lam"], eps_low=s["eps"],
                    eps_high=s["eps_high"], columns_per_update=s["columns"])
    return {
        "seed": seed,
        "model": {"path": os.path.join(warm, "model"), "dtype": "float32"},
        "task": task,
        "sampler": dict(base["sampler"], temperature=s["temperature"]),
        "sft": {"steps": 0},
        "algorithm": algo,
        "optim": {"learning_rate": s["lr"], "weight_decay": s["weight_decay"], "b1": 0.9, "b2": 0.99,
                  "grad_clip": s["grad_clip"], "schedule": "constant"},
        "run": {"iterations": iterations, "eval_every": 0, "eval_samples": 0, "out_dir": out_dir},
    }


def official_command(args, seed: int, out_dir: str) -> list[str]:
    s, base = SETTINGS[args.algorithm], warm_settings(args.warm)
    sampler = base["sampler"]
    return [args.official_python, os.path.join(HERE, "curve_official.py"), "--trainer", TRAINER[args.algorithm],
            "--repo", args.repo, "--model", os.path.join(args.warm, "model"),
            "--train-csv", os.path.join(args.warm, "train.csv"), "--out", out_dir, "--seed", str(seed),
            "--iterations", str(args.iterations), "--group", str(s["group"]), "--mu", str(s["mu"]),
            *{"diffu_grpo": lambda: ["--p-mask-prompt", str(s["p_mask_prompt"])],
              "egspo_sa": lambda: ["--k", str(s["k"]), "--columns", str(s["columns"]), "--lambda1", str(s["lam"]),
                                   "--eps-high", str(s["eps_high"])],
              "espo": lambda: ["--num-mc", str(s["num_mc"]), "--beta", str(s["beta"])]}[args.algorithm](),
            "--eps", str(s["eps"]), "--lr", str(s["lr"]),
            "--weight-decay", str(s["weight_decay"]), "--grad-clip", str(s["grad_clip"]),
            "--temperature", str(s["temperature"]), "--max-prompt-length", str(base["task"]["max_prompt_length"]),
            "--gen-length", str(sampler["gen_length"]), "--block-length", str(sampler["block_length"]),
            "--steps", str(sampler["steps"])]


def evaluate(warm: str, model_folder: str, out_dir: str, algorithm: str = "diffu_grpo") -> dict:
    """Held-out accuracy of a model folder: greedy, the warm start's sampler, the algorithm's official prompt
    and parser (RECIPE: d1's for diffu-GRPO and EGSPO-SA, ESPO's for ESPO)."""
    from dlrl_jax.app.evaluation import held_out
    from dlrl_jax.app.run import Run
    from dlrl_jax.config import from_dict

    raw = our_config(algorithm, warm, 0, 1, out_dir)
    raw["model"]["path"] = model_folder
    run = Run(from_dict(raw))
    result = held_out(run, run.params, run.task.eval, batch_size=64, samples=False)
    return {"accuracy": 100 * result["eval_correct"], "solved": 100 * result["solved"], "reward": result["reward"]}


def our_rewards(run_dir: str) -> tuple[list[float], float]:
    rewards, seconds = [], 0.0
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            if row.get("phase") == "rl":
                rewards.append(float(row["reward_mean"]))
                seconds += float(row["time_iteration"])
    return rewards, seconds


def run_seed(args, seed: int) -> list[dict]:
    import yaml

    rows = []
    official_dir = os.path.join(args.out, "official", f"seed{seed}")
    start = time.perf_counter()
    subprocess.run(official_command(args, seed, official_dir), check=True)
    with open(os.path.join(official_dir, "rewards.json")) as f:
        log = json.load(f)
    rows.append({"system": "official", "seed": seed, "rewards": log["rewards"],
                 "wall_s": time.perf_counter() - start,
                 **evaluate(args.warm, os.path.join(official_dir, "model"), os.path.join(official_dir, "eval"),
                             args.algorithm)})
    ours_dir = os.path.join(args.out, "ours", f"seed{seed}")
    config = os.path.join(args.out, "ours", f"seed{seed}.yaml")
    os.makedirs(os.path.dirname(config), exist_ok=True)
    with open(config, "w") as f:
        yaml.safe_dump(our_config(args.algorithm, args.warm, seed, args.iterations, ours_dir, eval_size=16), f,
                       sort_keys=False)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dlrl_jax.cli", "train", "--config", config], check=True, cwd=ROOT)
    rewards, _ = our_rewards(ours_dir)
    rows.append({"system": "ours", "seed": seed, "rewards": rewards, "wall_s": time.perf_counter() - start,
                 **evaluate(args.warm, os.path.join(ours_dir, "model"), os.path.join(ours_dir, "eval"),
                             args.algorithm)})
    return rows


def iteration_seconds(out: str, system: str, seed: int) -> list[float]:
    """Seconds of each RL iteration of one run, as each system's files hold them: the official runner's
    time between reward calls (the first includes the trainer's start), our loop's time_iteration (the
    first includes compilation)."""
    run_dir = os.path.join(out, system, f"seed{seed}")
    if system == "official":
        with open(os.path.join(run_dir, "rewards.json")) as f:
            return json.load(f)["seconds"]
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line)["time_iteration"] for line in f if '"phase": "rl"' in line]


def read_rows(path: str) -> list[dict]:
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def mean_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    m = sum(values) / n
    var = sum((v - m) ** 2 for v in values) / (n - 1) if n > 1 else float("nan")
    return m, math.sqrt(var / n)


def tost(a: list[float], b: list[float], margin: float, alpha: float = ALPHA) -> dict:
    """Two one-sided Welch tests of |mean(a) - mean(b)| < margin: equivalent when the (1 - 2 alpha)
    confidence interval of the difference lies inside (-margin, margin)."""
    from scipy import stats

    (ma, sa), (mb, sb) = mean_se(a), mean_se(b)
    diff, se = ma - mb, math.sqrt(sa ** 2 + sb ** 2)
    df = (sa ** 2 + sb ** 2) ** 2 / (sa ** 4 / (len(a) - 1) + sb ** 4 / (len(b) - 1))
    t = stats.t.ppf(1 - alpha, df)
    p = max(stats.t.sf((diff + margin) / se, df), stats.t.cdf((diff - margin) / se, df))
    return {"diff": diff, "se": se, "df": df, "low": diff - t * se, "high": diff + t * se, "p": p,
            "equivalent": bool(-margin < diff - t * se and diff + t * se < margin)}


def report(rows: list[dict], plot: str | None = None, out: str | None = None) -> str:
    systems = {s: [r for r in rows if r["system"] == s] for s in ("official", "ours")}
    speed = {}
    if out is not None:  # the median iteration after the first, pooled over seeds
        import statistics
        for name, rs in systems.items():
            pooled = [t for r in rs for t in iteration_seconds(out, name, r["seed"])[1:]]
            if pooled:
                speed[name] = statistics.median(pooled)
    lines = ["| system | seeds | reward, first 10 its | reward, last 10 its | mean reward (all its) "
             "| held-out accuracy | solved |", "|---|---|---|---|---|---|---|"]
    values = {}
    for name, rs in systems.items():
        if not rs:
            continue
        first = [sum(r["rewards"][:10]) / 10 for r in rs]
        last = [sum(r["rewards"][-10:]) / 10 for r in rs]
        mean_reward = [sum(r["rewards"]) / len(r["rewards"]) for r in rs]
        acc = [r["accuracy"] for r in rs]
        solved = [r["solved"] for r in rs]
        values[name] = {"accuracy": acc, "mean_reward": mean_reward}
        cell = lambda v, d=3: "{:.{d}f} +- {:.{d}f}".format(*mean_se(v), d=d)  # noqa: E731
        lines.append(f"| {name} | {len(rs)} | {cell(first)} | {cell(last)} | {cell(mean_reward)} | "
                     f"{cell(acc, 1)}% | {cell(solved, 1)}% |")
    if len(values) == 2 and min(len(v["accuracy"]) for v in values.values()) > 1:
        lines.append("")
        for metric, margin in MARGINS.items():
            t = tost(values["ours"][metric], values["official"][metric], margin)
            verdict = "equivalent" if t["equivalent"] else "NOT shown equivalent"
            lines.append(f"{metric}: ours - official = {t['diff']:+.3f} +- {t['se']:.3f}, 90% CI "
                         f"[{t['low']:+.3f}, {t['high']:+.3f}], margin +-{margin}: {verdict} (TOST p = {t['p']:.3f})")
    if len(speed) == 2:
        lines.append(f"seconds per iteration (median, first excluded): official {speed['official']:.2f}, ours "
                     f"{speed['ours']:.2f}, official / ours {speed['official'] / speed['ours']:.2f}x")
    if plot:
        _plot(systems, plot)
    return "\n".join(lines)


def _plot(systems: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, rs in systems.items():
        if not rs:
            continue
        n = min(len(r["rewards"]) for r in rs)
        curves = np.array([r["rewards"][:n] for r in rs])
        kernel = np.ones(5) / 5  # a 5-iteration moving average: one prompt a rollout is noisy
        smooth = np.array([np.convolve(c, kernel, mode="valid") for c in curves])
        x = np.arange(smooth.shape[1]) + 3
        m = smooth.mean(0)
        se = smooth.std(0, ddof=1) / np.sqrt(len(rs)) if len(rs) > 1 else np.zeros_like(m)
        ax.plot(x, m, label=f"{name} ({len(rs)} seeds)")
        ax.fill_between(x, m - se, m + se, alpha=0.3)
    ax.set_xlabel("RL iteration")
    ax.set_ylabel("mean rollout reward (5-iteration average)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algorithm", default="diffu_grpo", choices=sorted(SETTINGS))
    p.add_argument("--warm", help="the warm start's folder (bench/official/warm_start.py --out)")
    p.add_argument("--repo", help="your clone of the algorithm's official repository")
    p.add_argument("--official-python", help="the trainer's venv interpreter (bench/official/setup.sh)")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--out", required=True)
    p.add_argument("--report", action="store_true")
    p.add_argument("--plot")
    args = p.parse_args(argv)
    path = os.path.join(args.out, "curves.jsonl")
    if not args.report:
        missing = [n for n in ("warm", "repo", "official_python") if getattr(args, n) is None]
        if missing:
            p.error("running needs " + ", ".join("--" + n.replace("_", "-") for n in missing))
        os.makedirs(args.out, exist_ok=True)
        done = {(r["system"], r["seed"]) for r in read_rows(path)}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            if ("official", seed) in done and ("ours", seed) in done:
                continue
            for row in run_seed(args, seed):
                with open(path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{row['system']} seed {seed}: accuracy {row['accuracy']:.1f}%, mean reward "
                      f"{sum(row['rewards']) / len(row['rewards']):.3f}, {row['wall_s']:.0f} s", flush=True)
    print(report(read_rows(path), args.plot, args.out))


if __name__ == "__main__":
    main()
