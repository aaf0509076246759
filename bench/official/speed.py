"""Issue 27 item 5: seconds per RL iteration, phase by phase, of the official trainers' real code and of
dlrl_jax, at the same shapes and settings, in one invocation, the two systems alternating so that both
see the same machine state.

For each algorithm and dtype: the official trainer (bench/official/time_official.py in its own venv: the
runner's trainer with its run-time patches, W warm-up + N timed iterations) and this project's
`RLLoop.step` (the `dlrl-jax train` loop, built from the same runner settings by the replay's config:
bench/official/{egspo,espo,d1}_replay.py; its metrics' time_rollout / time_reward / time_reference /
time_update), one after the other, their order swapped from one case to the next. The first W
iterations (the first one compiles, on our side) are left out and reported apart; the rest give
medians. The machine's load average is recorded before and after every measurement.

Phases do not cut the same work on both sides: the official "reference" is everything in
`_generate_and_score_completions` outside generate and the reward (its old and reference log-probs or
ELBOs), while ours runs the old and reference forwards inside its one jitted update, so our "reference"
is only host work and our "update" holds them. Compare totals, and rollout against rollout.

    python -m bench.official.speed --egspo-repo C --espo-repo C --d1-repo C --model /work/official_model \\
        --prompt-length 16 [--gen 32 --block 32 --steps 16] [--dtypes float32,bfloat16] [--warmup 1] \\
        [--iterations 5] [--rounds 1] [--json out.json] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PHASES = ("rollout", "reward", "reference", "update")
# algorithm -> (the runner's trainer name, the runner's options that pick the algorithm)
ALGORITHMS = {"egspo_sa": ("egspo", ["--lambda1", "0.5"]), "espo": ("espo", []), "diffu_grpo": ("d1", [])}
MARKER = "SPEED_JSON "


def runner_argv(algorithm: str, repo: str, model: str, dtype: str, group: int, gen: int, block: int,
                steps: int) -> list[str]:
    """The runner's command line (run_egspo.py / run_espo.py / run_d1.py) for one case: its defaults
    otherwise (full fine-tuning, the stand-in reward, K 4 in 2 columns, M 2 and mu 2, p_mask 0.3)."""
    trainer, extra = ALGORITHMS[algorithm]
    argv = [f"--{trainer}-repo", repo, "--model", model, "--out", os.devnull, "--dtype", dtype, "--group", str(group),
            "--gen-length", str(gen), "--steps", str(steps), *extra]
    if trainer == "espo":
        if block != 32:
            raise SystemExit(f"--block {block}: ESPO's trainer hard-codes blocks of 32")
        return argv
    return argv + ["--block-length", str(block)]


def summarize(runs: list[list[dict]], warmup: int) -> dict:
    """Over one system's runs of a case (each a list of per-iteration phase seconds): the medians of
    every phase and of the iteration over all the iterations after each run's first `warmup`, pooled;
    the median of the runs' first iterations (compilation on our side); how many iterations were timed."""
    timed = [it for run in runs for it in run[warmup:]]
    if not timed:
        raise ValueError(f"runs of {[len(r) for r in runs]} iterations, all of them warm-up ({warmup}): "
                         "nothing to time; raise --iterations")
    out = {k: statistics.median(r[k] for r in timed) for k in (*PHASES, "iteration")}
    out["first"] = statistics.median(run[0]["iteration"] for run in runs)
    out["timed"] = len(timed)
    return out


def table(rows: list[dict]) -> str:
    """Markdown: one line per (algorithm, shape, dtype, threads, system); on our line the ratio of the
    official trainer's iteration to ours at the same thread count."""
    lines = ["| algorithm | shape | dtype | threads | system | " + " | ".join(PHASES) + " | iteration s | "
             "official / ours | first iteration s | timed | load before-after |",
             "|---|---|---|---|---|" + "---|" * (len(PHASES) + 5)]
    official = {(r["algorithm"], r["shape"], r["dtype"], r["threads"]): r["iteration"] for r in rows
                if r["system"] == "official"}
    for r in rows:
        key = (r["algorithm"], r["shape"], r["dtype"], r["threads"])
        ratio = f"{official[key] / r['iteration']:.2f}x" if r["system"] == "dlrl_jax" and key in official else ""
        lines.append(f"| {r['algorithm']} | {r['shape']} | {r['dtype']} | {r['threads']} | {r['system']} | "
                     + " | ".join(f"{r[k]:.3f}" for k in PHASES)
                     + f" | {r['iteration']:.3f} | {ratio} | {r['first']:.2f} | {r['timed']} | {r['load']} |")
    return "\n".join(lines)


def pinned(cmd: list[str], threads: int) -> list[str]:
    """`cmd` on the first `threads` cores (taskset), or unchanged when that is every core: both systems
    size their thread pools from the cores they may run on."""
    return cmd if threads >= (os.cpu_count() or 1) else ["taskset", "-c", f"0-{threads - 1}", *cmd]


def _parse_child(done: subprocess.CompletedProcess, what: str) -> dict:
    lines = [x for x in done.stdout.splitlines() if x.startswith(MARKER)]
    if done.returncode or not lines:
        raise SystemExit(f"{what} failed (exit {done.returncode}):\n{done.stderr[-3000:]}\n{done.stdout[-2000:]}")
    return json.loads(lines[-1][len(MARKER):])


def run_official(args, algorithm: str, argv: list[str], threads: int) -> dict:
    trainer = ALGORITHMS[algorithm][0]
    python = os.path.join(args.envs, trainer, "bin", "python")
    cmd = pinned([python, "time_official.py", "--trainer", trainer, "--prompt-length", str(args.prompt_length),
                  "--warmup", str(args.warmup), "--iterations", str(args.iterations), "--threads", str(threads), "--",
                  *argv], threads)
    return _parse_child(subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, check=False),
                        f"the official {trainer} trainer ({' '.join(cmd)})")


def run_ours(args, algorithm: str, argv: list[str], threads: int) -> dict:
    cmd = pinned([sys.executable, "-m", "bench.official.speed", "--child", algorithm, "--prompt-length",
                  str(args.prompt_length), "--warmup", str(args.warmup), "--iterations", str(args.iterations), "--",
                  *argv], threads)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.path.dirname(os.path.dirname(HERE)),
                                                                     os.environ.get("PYTHONPATH")])))
    return _parse_child(subprocess.run(cmd, capture_output=True, text=True, check=False, env=env),
                        f"dlrl_jax ({' '.join(cmd)})")


def child(algorithm: str, prompt_length: int, warmup: int, iterations: int, argv: list[str]) -> dict:
    """Our side of one case, in its own process: the replay's config from the runner's settings, the
    prompt padded to `prompt_length`, then W + N `RLLoop.step` calls."""
    import jax

    from dlrl_jax.app.run import Run
    from dlrl_jax.training import loop

    sys.path.insert(0, HERE)
    trainer = ALGORITHMS[algorithm][0]
    s = vars(__import__(f"run_{trainer}").parse(argv))
    replay = __import__(f"bench.official.{trainer}_replay", fromlist=["_config"])
    extra = [f"task.max_prompt_length={prompt_length}"]
    with tempfile.TemporaryDirectory() as out_dir:
        if trainer == "espo":
            cfg = replay._config(s, s["model"], out_dir, s["group"], extra=extra + ["sampler.block_length=32"])
        else:
            cfg = replay._config(s, s["model"], out_dir, extra=extra)
        run = Run(cfg)
        rl = loop.RLLoop(run, run.params, run.reference(run.params), progress=False)
        rows = [rl.step() for _ in range(warmup + iterations)]
        rl.close()
        run.writer.close()
    return {"system": "dlrl_jax", "jax": jax.__version__, "devices": str(jax.devices()),
            "iterations": [{k: float(r[f"time_{k}"]) for k in (*PHASES, "iteration")} for r in rows]}


def cpu_description() -> dict:
    model = "unknown"
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown":
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line
    except OSError:
        pass
    return {"model": model, "cpus": os.cpu_count(), "avx512_bf16": "avx512_bf16" in flags.split()}


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"  # the 1-minute load average


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    mine, rest = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--egspo-repo")
    p.add_argument("--espo-repo")
    p.add_argument("--d1-repo")
    p.add_argument("--envs", default="/work/official_envs")
    p.add_argument("--model", default="/work/official_model")
    p.add_argument("--algorithms", default="egspo_sa,espo,diffu_grpo")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--prompt-length", type=int, default=16)
    p.add_argument("--gen", type=int, default=32)
    p.add_argument("--block", type=int, default=32)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--group", type=int, default=8, help="completions of the one prompt per iteration")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--rounds", type=int, default=1, help="measurements of each system per case (pooled)")
    p.add_argument("--threads", default=str(os.cpu_count()),
                   help="thread counts to time both systems at, each its own rows (e.g. 2,1): torch threads, and "
                        "below the machine's cores both processes pinned to that many cores")
    p.add_argument("--json", help="also write every iteration's seconds and the load here, after every measurement")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(mine)
    if args.child:
        print(MARKER + json.dumps(child(args.child, args.prompt_length, args.warmup, args.iterations, rest)))
        return
    sys.path.insert(0, HERE)
    from model_folder import parameter_count

    with open(os.path.join(args.model, "config.json")) as f:
        n_params = parameter_count(json.load(f))
    shape = f"{n_params / 1e6:.1f}M, P{args.prompt_length}+G{args.gen}, block {args.block}, {args.steps} steps"
    cpu = cpu_description()
    print(f"{cpu['model']}, {cpu['cpus']} CPUs, avx512_bf16 {'yes' if cpu['avx512_bf16'] else 'no'}; {shape}; "
          f"1 prompt x {args.group}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; W {args.warmup} + "
          f"N {args.iterations} iterations x {args.rounds} rounds", flush=True)
    threads = [int(t) for t in args.threads.split(",")]
    rows, raw, case = [], [], 0
    for algorithm in args.algorithms.split(","):
        repo = getattr(args, f"{ALGORITHMS[algorithm][0]}_repo")
        if not repo:
            raise SystemExit(f"--algorithms has {algorithm}: pass --{ALGORITHMS[algorithm][0]}-repo CLONE")
        for dtype in args.dtypes.split(","):
            argv_ = runner_argv(algorithm, repo, args.model, dtype, args.group, args.gen, args.block, args.steps)
            systems = [(system, t) for t in threads for system in ("official", "dlrl_jax")]
            got = {key: [] for key in systems}
            loads = []
            for r in range(args.rounds):
                for system, t in (systems if (case + r) % 2 == 0 else systems[::-1]):
                    before = _load()
                    out = (run_ours if system == "dlrl_jax" else run_official)(args, algorithm, argv_, t)
                    loads.append(((system, t), before, _load()))
                    got[system, t].append(out)
                    raw.append({"algorithm": algorithm, "dtype": dtype, "shape": shape, "round": r, "threads": t,
                                "load_before": before, "load_after": loads[-1][2], **out})
                    save(args.json, cpu, shape, args.group, rows, raw)  # a run stopped later keeps this one
            case += 1
            for system, t in systems:
                s = summarize([out["iterations"] for out in got[system, t]], args.warmup)
                load = ", ".join(f"{b}-{a}" for key, b, a in loads if key == (system, t))
                rows.append({"algorithm": algorithm, "shape": shape, "dtype": dtype, "threads": t, "system": system,
                             "load": load, **s})
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table(rows))
    save(args.json, cpu, shape, args.group, rows, raw)


def save(path: str | None, cpu: dict, shape: str, group: int, rows: list[dict], raw: list[dict]) -> None:
    """Every measurement so far (`raw`: each process's per-iteration seconds and the load) and the
    summarised rows, as JSON at `path` (None: nowhere)."""
    if path:
        with open(path, "w") as f:
            json.dump({"cpu": cpu, "shape": shape, "group": group, "rows": rows, "raw": raw}, f, indent=1)


if __name__ == "__main__":
    main()
