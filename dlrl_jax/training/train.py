"""`dlrl-jax train`: SFT warm start (optional), held-out evaluation, RL, evaluation, checkpoint."""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
from flax import nnx

from dlrl_jax.checkpoints import save_pretrained
from dlrl_jax.checkpoints.train_state import TrainStateCheckpointer
from dlrl_jax.config import Config
from dlrl_jax.training import loop


def train(cfg: Config, log=print) -> dict:
    """Runs the configured job and returns its summary (also written to RUN_DIR/summary.json)."""
    start = time.time()
    run = loop.Run(cfg)
    eval_batch = cfg.algorithm.prompts_per_batch * cfg.algorithm.group_size
    params = run.params
    summary: dict = {"seed": cfg.seed, "algorithm": cfg.algorithm.name, "eval_examples": len(run.task.eval)}
    log(f"[dlrl-jax] task {cfg.task.name}: {len(run.task.train)} train / {len(run.task.eval)} held-out records; "
        f"model {cfg.model.path or cfg.model.preset}; run dir {run.out_dir}")

    def evaluate(phase, step, p):
        result = loop.evaluate(run, p, run.task.eval, eval_batch, step)
        run.writer.write("eval", step, result)
        log(f"[dlrl-jax] eval {phase}: reward {result['reward']:.3f}, solved {result['solved']:.1%}")
        return result

    if cfg.sft.steps:
        summary["initial"] = evaluate("initial", 0, params)
        params = loop.run_sft(run, params, cfg.sft.steps, cfg.run.progress)
    summary["before"] = evaluate("before RL", 0, params)
    if cfg.algorithm.name != "sft":
        ref_params = jax.tree.map(jnp.copy, params)  # the update donates params; the reference stays
        params, opt_state = loop.run_rl(run, params, ref_params, cfg.run.progress,
                                        on_eval=lambda step, p: evaluate(f"at iteration {step}", step, p))
        summary["after"] = evaluate("after RL", cfg.run.iterations, params)
        checkpointer = TrainStateCheckpointer(os.path.join(run.out_dir, "checkpoints"))
        checkpointer.save(cfg.run.iterations, params, opt_state, run.key)
        checkpointer.close()
    summary["seconds"] = round(time.time() - start, 1)
    model = nnx.merge(run.graphdef, params)
    save_pretrained(model, os.path.join(run.out_dir, "model"))
    run.tokenizer.hf.save_pretrained(os.path.join(run.out_dir, "model"))
    with open(os.path.join(run.out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    run.writer.close()
    log(format_summary(summary))
    return summary


def format_summary(summary: dict) -> str:
    rows = [(name, summary[key]) for key, name in
            (("initial", "initial (random init)"), ("before", "before RL"), ("after", "after RL")) if key in summary]
    lines = [f"{'held-out (' + str(summary['eval_examples']) + ')':<24} {'reward':>8} {'solved':>8}"]
    lines += [f"{name:<24} {r['reward']:>8.3f} {r['solved']:>8.1%}" for name, r in rows]
    lines.append(f"seed {summary['seed']}, {summary['algorithm']}, {summary['seconds']} s")
    return "\n".join(lines)
