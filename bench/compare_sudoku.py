"""EGSPO-SA, EGSPO, ESPO, diffu-GRPO and wd1 on the embedded tiny 4x4 Sudoku task over many seeds, each
algorithm's seeds in one compiled program (`jax.jit(jax.vmap(train))`, dlrl_jax/app/seeded.py).

Each seed: the pure SFT warm start of configs/tiny_sudoku_*.yaml (or, with --config, that config's, e.g.
the demo's mixed one, with each algorithm's own method settings, METHOD below; the same warm start for
every algorithm, so runs pair by seed), then `--iterations` RL iterations, held-out greedy evaluation
before and after. With --warm-once the warm starts are computed once (one vmapped SFT program, cached
beside --out) and every algorithm continues each seed's run from its warm start's parameters and key:
the RL part of the very run `dlrl-jax train --set seed=S` makes, without repeating its SFT per
algorithm. Results go to a JSON-lines file (one line per algorithm and timing), so algorithms can run
in separate invocations; `--report` prints the table (mean +- standard error over seeds) and the
paired comparisons.

    python bench/compare_sudoku.py --seeds 8 --iterations 100 --out runs/compare/results.jsonl
    python bench/compare_sudoku.py --config configs/tiny_sudoku_mixed.yaml --warm-once --seeds 8 ...  # the demo
    python bench/compare_sudoku.py --sequential 1 --algorithms egspo_sa ...   # + one seed at a time, timed
    python bench/compare_sudoku.py --report --out runs/compare/results.jsonl
    python bench/compare_sudoku.py --cli --seeds 2                              # the old path: dlrl-jax train per run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlrl_jax import config
from dlrl_jax.app import seeded

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"egspo_sa": "tiny_sudoku_egspo_sa.yaml", "egspo": "tiny_sudoku_egspo_sa.yaml",
           "espo": "tiny_sudoku_espo.yaml", "diffu_grpo": "tiny_sudoku_diffu_grpo.yaml", "wd1": "tiny_sudoku_wd1.yaml"}
# With --config (one config for every algorithm): what makes each method itself, from its tiny config
# (the papers' clip ranges, ESPO's ELBO samples, d1's prompt masking); the optimizer, KL weight, group
# and sampler stay the given config's, so that the objectives differ and nothing else.
METHOD = {"egspo_sa": [], "egspo": [], "espo": ["algorithm.eps_low=0.2", "algorithm.elbo_samples=2"],
          "diffu_grpo": ["algorithm.eps_low=0.5", "algorithm.eps_high=0.5", "algorithm.p_mask_prompt=0.15"],
          "wd1": ["algorithm.p_mask_prompt=0.15", "algorithm.wd1_negative_term=true"]}
# the papers' claims, as (better, worse): EGSPO-SA >= EGSPO > diffu-GRPO; ESPO > diffu-GRPO; wd1 > diffu-GRPO
CLAIMS = [("egspo_sa", "egspo"), ("egspo", "diffu_grpo"), ("egspo_sa", "diffu_grpo"), ("espo", "diffu_grpo"),
          ("wd1", "diffu_grpo")]


def load_config(algorithm: str, iterations: int, extra=(), path: str | None = None, eval_every: int = 0):
    """The algorithm's tiny Sudoku config, or `path` (one config for every algorithm, e.g. the mixed warm
    start's demo) with `algorithm.name` and the algorithm's METHOD settings set."""
    method = METHOD[algorithm] if path else []
    path = path or os.path.join(ROOT, "configs", CONFIGS[algorithm])
    return config.load(path, [f"algorithm.name={algorithm}", *method, f"run.iterations={iterations}",
                              f"run.eval_every={eval_every}", *extra])


def warm_starts(cfg, seeds: list[int], cache: str):
    """Each seed's SFT warm start (params, key data) of `cfg`, one vmapped program; cached in `cache`
    (.npz, keyed by the SFT settings, task and seeds) so that separate invocations share it."""
    import hashlib

    settings = config.to_dict(cfg)
    tag = json.dumps({"sft": settings["sft"], "task": settings["task"], "model": settings["model"], "seeds": seeds},
                     sort_keys=True)
    path = f"{cache}.warm-{hashlib.sha256(tag.encode()).hexdigest()[:12]}.npz"
    treedef = jax.tree.structure(seeded._build(cfg.model)[3])
    if os.path.exists(path):
        saved = np.load(path)
        leaves = [saved[f"leaf{i}"] for i in range(treedef.num_leaves)]
        print(f"[warm start] read {path}", file=sys.stderr, flush=True)
        return jax.tree.unflatten(treedef, leaves), saved["key"], saved["sft_loss"], float(saved["seconds"])
    data = seeded.stack_seed_data([seeded.seed_data(cfg, s) for s in seeds])
    t = time.perf_counter()
    params, key, losses = jax.block_until_ready(jax.jit(jax.vmap(seeded.make_warm_start(cfg)))(
        jnp.asarray(seeds, jnp.int32), data))
    seconds = time.perf_counter() - t
    leaves = jax.tree.leaves(params)
    np.savez(path, key=np.asarray(key), sft_loss=np.asarray(losses), seconds=seconds,
             **{f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)})
    print(f"[warm start] {len(seeds)} seeds x {cfg.sft.steps} SFT steps in {seconds:.0f} s (compile included); "
          f"final SFT loss {np.round(np.asarray(losses)[:, -1], 3).tolist()}; saved {path}", file=sys.stderr, flush=True)
    return params, np.asarray(key), np.asarray(losses), seconds


def _host(tree):
    return jax.tree.map(lambda x: np.asarray(x).tolist(), tree)


def run_algorithm(algorithm: str, seeds: list[int], iterations: int, sequential: int, extra=(),
                  path: str | None = None, eval_every: int = 0, warm=None) -> list[dict]:
    """The vmapped run of `seeds` (and, with `sequential`, that many of them again one at a time with
    the same function jitted without vmap), timed; compile time apart from run time. `warm`: each
    seed's (params, key) to continue from (`warm_starts`); the config's SFT is then not run again."""
    cfg = load_config(algorithm, iterations, list(extra) + (["sft.steps=0"] if warm else []), path, eval_every)
    t = time.perf_counter()
    start = time.perf_counter()

    arrived: dict[int, list] = {}

    def progress(iteration, reward):  # called once per seed (JAX unbatches debug callbacks under vmap)
        rewards = arrived.setdefault(int(iteration), [])
        rewards.extend(np.ravel(np.asarray(reward)).tolist())
        if int(iteration) % 10 == 9 and len(rewards) == len(seeds):
            print(f"[{algorithm}] iteration {int(iteration) + 1}, {time.perf_counter() - start:.0f} s, rollout "
                  f"reward {np.round(rewards, 3).tolist()}", file=sys.stderr, flush=True)

    train = seeded.make_train(cfg, progress=progress)
    if warm:
        params, keys = warm
        per_seed = [seeded.seed_data(cfg, s, jax.tree.map(lambda x, i=i: x[i], params), keys[i])
                    for i, s in enumerate(seeds)]
    else:
        per_seed = [seeded.seed_data(cfg, s) for s in seeds]
    host_s = time.perf_counter() - t
    data = seeded.stack_seed_data(per_seed)
    seed_array = jnp.asarray(seeds, jnp.int32)
    t = time.perf_counter()
    compiled = jax.jit(jax.vmap(train)).lower(seed_array, data).compile()
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    metrics = jax.block_until_ready(compiled(seed_array, data))
    run_s = time.perf_counter() - t
    out = [{"kind": "vmap", "algorithm": algorithm, "seeds": seeds, "iterations": iterations, "host_s": host_s,
            "compile_s": compile_s, "run_s": run_s, "warm_once": bool(warm), "eval_before": _host(metrics["eval_before"]),
            "eval_after": _host(metrics["eval_after"]), "config": path, "overrides": list(extra),
            "eval_iterations": seeded.eval_iterations(cfg), "eval_mid": _host(metrics["eval"]),
            "rl_reward_mean": _host(metrics["rl"]["reward_mean"]) if iterations else []}]
    print(json.dumps({k: v for k, v in out[0].items() if k != "rl_reward_mean"}), flush=True)
    for i, seed in enumerate(seeds):
        solved = [out[0]["eval_before"]["solved"][i], *out[0]["eval_mid"]["solved"][i],
                  out[0]["eval_after"]["solved"][i]]
        before, after = solved[0], solved[-1]
        print(f"[{algorithm}] seed {seed}: held-out solved " + " -> ".join(f"{100 * x:.1f}%" for x in solved) +
              f" (x{after / max(before, 1e-9):.2f}, {100 * (after - before):+.1f} points)", file=sys.stderr, flush=True)
    if sequential:
        t = time.perf_counter()
        single = jax.jit(train).lower(seed_array[0], per_seed[0]).compile()
        compile_one = time.perf_counter() - t
        for i in range(min(sequential, len(seeds))):
            t = time.perf_counter()
            m = jax.block_until_ready(single(seed_array[i], per_seed[i]))
            out.append({"kind": "sequential", "algorithm": algorithm, "seed": seeds[i], "iterations": iterations,
                        "compile_s": compile_one, "run_s": time.perf_counter() - t,
                        "eval_before": _host(m["eval_before"]), "eval_after": _host(m["eval_after"]),
                        "vmapped_eval_after": {k: v[i] for k, v in out[0]["eval_after"].items()}})
            print(json.dumps(out[-1]), flush=True)
    return out


def _mean_se(x):
    x = np.asarray(x, np.float64)
    return x.mean(), (x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else float("nan"))


def _paired_t(a, b):
    """(mean difference, its standard error, two-sided p) of a - b paired by seed (Student's t, n - 1 df)."""
    from scipy import stats  # a dependency of jax

    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    mean, se = _mean_se(d)
    if len(d) < 2 or se == 0:
        return mean, se, float("nan")
    return mean, se, float(2 * stats.t.sf(abs(mean / se), len(d) - 1))


def report(rows: list[dict]) -> str:
    runs = {}
    for r in rows:
        if r["kind"] == "vmap":
            runs[r["algorithm"]] = r  # the newest run of an algorithm wins
    lines = [("| algorithm | seeds | RL iterations | cell reward before | cell reward after | solved before | "
              "solved after | gain in reward | gain in solved |"), "|---|---|---|---|---|---|---|---|---|"]
    for name in [n for n in CONFIGS if n in runs]:
        r = runs[name]
        rb, ra = r["eval_before"]["reward"], r["eval_after"]["reward"]
        sb, sa = r["eval_before"]["solved"], r["eval_after"]["solved"]
        cells = [_mean_se(rb), _mean_se(ra), _mean_se(np.multiply(sb, 100)), _mean_se(np.multiply(sa, 100)),
                 _mean_se(np.subtract(ra, rb)), _mean_se(np.subtract(sa, sb) * 100)]
        fmt = ["{:.3f} ± {:.3f}", "{:.3f} ± {:.3f}", "{:.1f}% ± {:.1f}", "{:.1f}% ± {:.1f}", "{:+.3f} ± {:.3f}",
               "{:+.1f} ± {:.1f} pts"]
        lines.append(f"| {name} | {len(r['seeds'])} | {r['iterations']} | " +
                     " | ".join(f.format(*c) for f, c in zip(fmt, cells)) + " |")
    lines += ["", ("Paired by seed (same warm start), after RL: difference of means ± standard error, two-sided "
                   "paired t p-value (n - 1 degrees of freedom)."), "",
              "| claim | seeds | cell reward diff | p | solved diff | p | holds significantly (p < 0.05)? |",
              "|---|---|---|---|---|---|---|"]
    for better, worse in CLAIMS:
        if better not in runs or worse not in runs:
            continue
        a, b = runs[better], runs[worse]
        common = [s for s in a["seeds"] if s in b["seeds"]]

        def pick(r, field, common=common):
            return [r["eval_after"][field][r["seeds"].index(s)] for s in common]

        dr, ser, pr = _paired_t(pick(a, "reward"), pick(b, "reward"))
        ds, ses, ps = _paired_t(pick(a, "solved"), pick(b, "solved"))
        verdict = []
        for d, p, what in ((dr, pr, "reward"), (ds, ps, "solved")):
            verdict.append(f"{what}: " + ("yes" if p < 0.05 and d > 0 else
                                          "reversed" if p < 0.05 and d < 0 else "not significant"))
        lines.append(f"| {better} > {worse} | {len(common)} | {dr:+.3f} ± {ser:.3f} | {pr:.3f} | "
                     f"{100 * ds:+.1f} ± {100 * ses:.1f} pts | {ps:.3f} | {'; '.join(verdict)} |")
    lines += ["", "| algorithm | program | seeds | compile s | run s | seeds per hour (run) | seeds per hour (with compile) |",
              "|---|---|---|---|---|---|---|"]
    for name in [n for n in CONFIGS if n in runs]:
        r = runs[name]
        n = len(r["seeds"])
        lines.append(f"| {name} | jit(vmap(train)), {n} seeds at once | {n} | {r['compile_s']:.0f} | {r['run_s']:.0f} | "
                     f"{3600 * n / r['run_s']:.1f} | {3600 * n / (r['run_s'] + r['compile_s']):.1f} |")
        seq = [s for s in rows if s["kind"] == "sequential" and s["algorithm"] == name]
        if seq:
            run_s = float(np.mean([s["run_s"] for s in seq]))
            lines.append(f"| {name} | jit(train), one seed at a time | {len(seq)} | {seq[0]['compile_s']:.0f} | "
                         f"{run_s:.0f} per seed | {3600 / run_s:.1f} | "
                         f"{3600 * len(seq) / (len(seq) * run_s + seq[0]['compile_s']):.1f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: str) -> str:
    """Two panels, each algorithm's mean over seeds with a band of +- one standard error: the rollout
    reward per RL iteration (smoothed over 5 iterations) and the held-out greedy solved rate at each
    evaluation (before RL, every --eval-every iterations, after)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {r["algorithm"]: r for r in rows if r["kind"] == "vmap"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name in [n for n in CONFIGS if n in runs]:
        r = runs[name]
        reward = np.asarray(r["rl_reward_mean"], np.float64)  # [seeds, iterations]
        if reward.size:
            kernel = np.ones(5) / 5
            smooth = np.stack([np.convolve(np.pad(x, (4, 0), mode="edge"), kernel, mode="valid") for x in reward])
            mean, se = smooth.mean(0), smooth.std(0, ddof=1) / math.sqrt(len(smooth))
            steps = np.arange(1, len(mean) + 1)
            left.plot(steps, mean, label=name)
            left.fill_between(steps, mean - se, mean + se, alpha=0.2)
        solved = np.asarray([[b, *m, a] for b, m, a in zip(r["eval_before"]["solved"], r["eval_mid"]["solved"],
                                                             r["eval_after"]["solved"])], np.float64) * 100
        at = [0, *r["eval_iterations"], r["iterations"]]
        mean, se = solved.mean(0), solved.std(0, ddof=1) / math.sqrt(len(solved))
        right.errorbar(at, mean, yerr=se, marker="o", capsize=3, label=name)
    left.set(xlabel="RL iteration", ylabel="rollout cell reward (5-iteration mean)", title="training rollouts")
    right.set(xlabel="RL iteration", ylabel="held-out greedy solved (%)", title="held-out puzzles, greedy")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    n = len(next(iter(runs.values()))["seeds"])
    fig.suptitle(f"tiny 4x4 Sudoku, mean +- standard error over {n} seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_cli(seeds: list[int], iterations: int, algorithms: list[str], out_dir: str) -> None:
    """The old path: one `dlrl-jax train` (host rewards, checkpoints, metrics files) per run."""
    from dlrl_jax.app.train import train

    for algorithm in algorithms:
        for seed in seeds:
            cfg = load_config(algorithm, iterations, [f"seed={seed}", f"run.out_dir={out_dir}/{algorithm}_seed{seed}",
                                                      "run.progress=false", "run.tensorboard=false"])
            s = train(cfg, log=lambda *_: None)
            print(json.dumps({"algorithm": algorithm, "seed": seed, "before": s["before"], "after": s["after"],
                              "seconds": s["seconds"]}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=8, help="seeds 0 .. N-1")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--algorithms", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--sequential", type=int, default=0,
                        help="also run this many of the seeds one at a time (jit without vmap), for seeds per hour")
    parser.add_argument("--set", action="append", default=[], help="extra config overrides (key=value)")
    parser.add_argument("--config", default=None,
                        help="one config for every algorithm (e.g. configs/tiny_sudoku_mixed.yaml) instead of "
                             "each algorithm's tiny Sudoku config")
    parser.add_argument("--eval-every", type=int, default=0, help="also evaluate every N RL iterations")
    parser.add_argument("--warm-once", action="store_true",
                        help="compute each seed's SFT warm start once (cached beside --out) and continue every "
                             "algorithm's run from it")
    parser.add_argument("--out", default="runs/compare/results.jsonl")
    parser.add_argument("--report", action="store_true", help="print the table from --out and exit")
    parser.add_argument("--plot", default=None, help="also draw the curves (rollout reward, held-out solved) here")
    parser.add_argument("--cli", action="store_true", help="the old path: dlrl-jax train once per (algorithm, seed)")
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    if args.cli:
        return run_cli(seeds, args.iterations, args.algorithms, os.path.dirname(args.out) or ".")
    if not args.report:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        warm = None
        if args.warm_once:
            cfg = load_config(args.algorithms[0], args.iterations, args.set, args.config, args.eval_every)
            params, keys, losses, seconds = warm_starts(cfg, seeds, args.out)
            warm = (params, keys)
            with open(args.out, "a") as f:
                f.write(json.dumps({"kind": "warm_start", "seeds": seeds, "sft_steps": cfg.sft.steps,
                                    "seconds": seconds, "final_sft_loss": losses[:, -1].tolist()}) + "\n")
        for algorithm in args.algorithms:
            rows = run_algorithm(algorithm, seeds, args.iterations, args.sequential, args.set, args.config,
                                 args.eval_every, warm)
            with open(args.out, "a") as f:
                f.writelines(json.dumps(row) + "\n" for row in rows)
    with open(args.out) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    print(report(rows))
    if args.plot:
        print(f"curves: {plot(rows, args.plot)}")


if __name__ == "__main__":
    main()
