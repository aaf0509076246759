"""Seconds per RL iteration, phase by phase, at the settings of the official-trainer comparison (issue 19):
a tiny LLaDA-layout checkpoint (d 64, ff 128, 2 layers, vocab 128), LoRA r128 alpha 64 on q,k,v,up
(the official PEFT targets on LLaDA), 1 prompt x 8 samples, gen 32, 16 steps; EGSPO-SA block 16, K 4,
lambda 0.5; ESPO block 32, M 2, mu 2. Each (algorithm, dtype, prompt length) runs in its own process:
the first iteration with an empty persistent compilation cache (cold), the first iteration of a second
process on that cache (warm), and the median of the later iterations of the first process per phase.

    python bench/iteration.py [--prompts 16,200] [--dtypes bfloat16,float32] [--iterations 8]
    python bench/iteration.py --layers 8 --d-model 512 --ff 1536 --heads 8 --prompts 200 --gen 256 \\
        --block 32 --steps 128 --dtypes float32     # the papers' shapes scaled down (~30M parameters)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

PHASES = ("rollout", "reward", "reference", "update")
# seconds per iteration of the official trainers at these settings, measured once on this project's 2-core
# CPU (issue 19): (prompt, algorithm) -> seconds. Frozen constants, kept for the history tables in
# bench/RESULTS.md; bench/official/speed.py times the official trainers' real code beside ours in one run
# and supersedes them (issue 27 item 5)
OFFICIAL = {(16, "egspo_sa"): 0.253, (200, "egspo_sa"): 0.446, (16, "espo"): 0.195, (200, "espo"): 0.512}


def one_run(args) -> dict:
    """Runs in a child process: builds the checkpoint and the run, returns per-iteration metrics."""
    import time

    from dlrl_jax import checkpoints, config, models
    from dlrl_jax.app.run import Run
    from dlrl_jax.training import loop

    folder = os.path.join(args.work, "model")
    if not os.path.isdir(folder):
        cfg = models.preset("tiny", d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
                            n_kv_heads=args.heads, mlp_hidden=args.ff, vocab_size=128)
        checkpoints.save_pretrained(models.init_model(cfg, seed=0), folder)
        from dlrl_jax.models.tokenizer import write_char_tokenizer
        write_char_tokenizer(folder)
    espo = args.algorithm == "espo"
    overrides = [f"model.path={folder}", f"model.dtype={args.dtype}", "model.lora_rank=128", "model.lora_alpha=64",
                 "model.lora_targets=q,k,v,up", "sft.steps=0", "task.train_size=64", "task.eval_size=8",
                 f"task.max_prompt_length={args.prompt}", f"sampler.gen_length={args.gen}",
                 f"sampler.steps={args.steps}", f"sampler.block_length={args.gen if espo else args.block}",
                 "algorithm.prompts_per_batch=1", f"algorithm.group_size={args.group_size}",
                 f"algorithm.name={args.algorithm}",
                 "algorithm.k=4", "algorithm.lam=0.5", "algorithm.elbo_samples=2", f"algorithm.mu={2 if espo else 1}",
                 f"run.out_dir={os.path.join(args.work, 'run')}", "run.progress=false", "run.tensorboard=false"]
    cfg = config.load(None, overrides)
    t = time.perf_counter()
    run = Run(cfg)
    rl = loop.RLLoop(run, run.params, run.reference(run.params), progress=False)
    setup = time.perf_counter() - t
    rows = [rl.step() for _ in range(args.iterations)]
    rl.close()
    run.writer.close()
    return {"setup": setup, "iterations": [{k: float(r[f"time_{k}"]) for k in (*PHASES, "iteration")} for r in rows]}


def measure(args, algorithm, dtype, prompt) -> dict:
    cache = tempfile.mkdtemp(prefix="dlrl_bench_cache_")
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0", JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    out = []
    for iterations in (args.iterations, 1)[:2 if args.warm else 1]:  # cold cache, then warm
        work = tempfile.mkdtemp(prefix="dlrl_bench_")
        cmd = [sys.executable, __file__, "--child", "--algorithm", algorithm, "--dtype", dtype, "--prompt", str(prompt),
               "--iterations", str(iterations), "--work", work, *_shape_args(args)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"{algorithm} {dtype} prompt {prompt} failed:\n{done.stderr[-3000:]}")
        out.append(json.loads(done.stdout.strip().splitlines()[-1]))
    later = out[0]["iterations"][1:]
    return {"steady": {k: statistics.median(r[k] for r in later) for k in (*PHASES, "iteration")},
            "cold": out[0]["iterations"][0]["iteration"],
            "warm": out[1]["iterations"][0]["iteration"] if args.warm else float("nan")}


def _shape_args(args):
    return ["--d-model", str(args.d_model), "--layers", str(args.layers), "--heads", str(args.heads), "--ff",
            str(args.ff), "--gen", str(args.gen), "--block", str(args.block), "--steps", str(args.steps),
            "--group-size", str(args.group_size)]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algorithms", default="egspo_sa,espo")
    p.add_argument("--dtypes", default="bfloat16,float32")
    p.add_argument("--prompts", default="16,200")
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ff", type=int, default=128)
    p.add_argument("--gen", type=int, default=32)
    p.add_argument("--block", type=int, default=16)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--group-size", type=int, default=8, help="completions of the one prompt per iteration")
    p.add_argument("--no-warm", dest="warm", action="store_false", help="skip the second (warm-cache) process")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--algorithm", help=argparse.SUPPRESS)
    p.add_argument("--dtype", help=argparse.SUPPRESS)
    p.add_argument("--prompt", type=int, help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(one_run(args)))
        return
    import jax

    print(f"jax {jax.__version__}, {os.cpu_count()} CPUs; model d {args.d_model}, ff {args.ff}, {args.layers} layers; "
          f"1 prompt x {args.group_size}; gen {args.gen}, {args.steps} steps; median of iterations 2..{args.iterations}")
    print("| algorithm | dtype | prompt | " + " | ".join(PHASES) + " | iteration s | official s | "
          "speed-up | first iteration, cold cache s | warm cache s |")
    print("|---|---|---|" + "---|" * (len(PHASES) + 5))
    for algorithm in args.algorithms.split(","):
        for prompt in (int(x) for x in args.prompts.split(",")):
            for dtype in args.dtypes.split(","):
                r = measure(args, algorithm, dtype, prompt)
                s = r["steady"]
                official = OFFICIAL.get((prompt, algorithm)) \
                    if (args.d_model, args.layers, args.gen, args.group_size) == (64, 2, 32, 8) else None
                ratio = f"{official / s['iteration']:.2f}x" if official else "-"
                print(f"| {algorithm} | {dtype} | {prompt} | " + " | ".join(f"{s[k]:.3f}" for k in PHASES) +
                      f" | {s['iteration']:.3f} | {official or '-'} | {ratio} | {r['cold']:.2f} | {r['warm']:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
