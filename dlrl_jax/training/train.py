"""`dlrl-jax train`: SFT warm start (optional), held-out evaluation, RL, evaluation, checkpoints.

Orbax checkpoints are written after SFT (iteration 0), every `run.save_every` RL iterations, at the
end, after every evaluation when `run.keep_best_checkpoints` asks to keep the best ones by held-out
reward (besides the newest `run.keep_checkpoints`), and when the process gets SIGTERM (preemption: it finishes the current iteration, saves and
exits cleanly). With `run.resume` (`dlrl-jax train --resume`) a run continues from its newest
checkpoint: parameters, optimizer state, reference, RNG key and data-iterator position come back, the
metrics written after that checkpoint are dropped, and the continuation is bit-identical to a run
that was never interrupted (on the same machine and devices).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import jax
from flax import nnx

from dlrl_jax.checkpoints import save_pretrained
from dlrl_jax.checkpoints.peft import save_adapter
from dlrl_jax.checkpoints.train_state import TrainStateCheckpointer
from dlrl_jax.config import Config, ConfigError, to_dict
from dlrl_jax.models.lora import has_lora, merge_lora, trainable_mask
from dlrl_jax.parallel.distributed import is_lead_process, to_host
from dlrl_jax.training import loop, precision
from dlrl_jax.training.metrics import truncate_metrics

# Fields a resumed run may change: how long it runs, how it reports and on which mesh (the checkpoint
# restores onto any), not what it computes.
_RESUMABLE_CHANGES = ("run.iterations", "run.resume", "run.progress", "run.eval_every", "run.save_every",
                      "run.keep_checkpoints", "run.keep_best_checkpoints", "run.tensorboard", "run.wandb_project", "run.keep_best", "mesh.data",
                      "mesh.fsdp", "mesh.tensor")


class _StopFlag:
    """Set by SIGTERM; checked between iterations."""

    def __init__(self):
        self.set = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.set = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_same_run(saved: dict, cfg: Config, directory: str) -> None:
    old, new = _flatten(saved), _flatten(to_dict(cfg))
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in _RESUMABLE_CHANGES)
    if changed:
        raise ConfigError(f"run.resume: the checkpoints in {directory} were written with different settings "
                          f"({', '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in changed)}); resume with "
                          "the original settings, or choose a new run.out_dir")


def train(cfg: Config, log=print) -> dict:
    """Runs (or resumes) the configured job and returns its summary (also RUN_DIR/summary.json)."""
    start = time.time()
    ckpt_dir = os.path.join(cfg.run.out_dir, "checkpoints")
    checkpointer = None
    latest = None
    if cfg.algorithm.name != "sft":
        checkpointer = TrainStateCheckpointer(ckpt_dir, max_to_keep=cfg.run.keep_checkpoints,
                                              keep_best=cfg.run.keep_best_checkpoints)
        latest = checkpointer.latest_step()
        if latest is not None and not cfg.run.resume:
            raise ConfigError(f"run.out_dir {cfg.run.out_dir} already holds checkpoints (newest: iteration {latest}); "
                              "set run.resume=true (dlrl-jax train --resume) to continue it, or choose a new "
                              "run.out_dir")
    metrics_path = os.path.join(cfg.run.out_dir, "metrics.jsonl")
    if latest is None and os.path.exists(metrics_path) and is_lead_process():
        os.remove(metrics_path)  # a fresh start: metrics of an earlier, checkpoint-less run in this folder go
    run = None
    try:
        if latest is not None and is_lead_process():
            truncate_metrics(cfg.run.out_dir, latest)
        run = loop.Run(cfg)
        with jax.set_mesh(run.mesh):  # the model then keeps activations split by rows (constrain_rows)
            summary = _train(cfg, run, checkpointer, latest, start, log)
    finally:
        if checkpointer is not None:
            checkpointer.close()
        if run is not None:
            run.writer.close()
    return summary


def _train(cfg: Config, run: loop.Run, checkpointer, latest, start, log) -> dict:
    eval_batch = cfg.algorithm.prompts_per_batch * cfg.algorithm.group_size
    params = run.params
    summary: dict = {"seed": cfg.seed, "algorithm": cfg.algorithm.name, "eval_examples": len(run.task.eval)}
    log(f"[dlrl-jax] task {cfg.task.name}: {len(run.task.train)} train / {len(run.task.eval)} held-out records; "
        f"model {cfg.model.path or cfg.model.preset}; run dir {run.out_dir}")

    def evaluate(phase, step, p, candidate=True):
        t = time.perf_counter()
        result = loop.evaluate(run, p, run.task.eval, eval_batch, step)
        run.writer.write("eval", step, dict(result, seconds=time.perf_counter() - t))
        log(f"[dlrl-jax] eval {phase}: reward {result['reward']:.3f}, solved {result['solved']:.1%}")
        if candidate and cfg.run.keep_best and result["reward"] > summary.get("best", {}).get("reward", -1.0):
            summary["best"] = dict(result, step=step)
            _export(run, p, os.path.join(run.out_dir, "best_model"))
            log(f"[dlrl-jax] best held-out reward so far: exported to {run.out_dir}/best_model")
        return result

    if cfg.algorithm.name == "sft":
        if cfg.sft.steps:
            summary["initial"] = evaluate("initial", 0, params, candidate=False)
            params = loop.run_sft(run, params, cfg.sft.steps, cfg.run.progress)
        summary["before"] = evaluate("after SFT", 0, params)
        return _finish(cfg, run, params, summary, start, log)

    if latest is None:
        if cfg.sft.steps:
            summary["initial"] = evaluate("initial", 0, params, candidate=False)
            params = loop.run_sft(run, params, cfg.sft.steps, cfg.run.progress)
        summary["before"] = evaluate("before RL", 0, params)
        # the update donates params; the reference stays (a copy, or the base itself with LoRA)
        rl = loop.RLLoop(run, params, run.reference(params), cfg.run.progress)
        _save(checkpointer, rl, summary, cfg, summary["before"])
    else:
        rl = loop.RLLoop(run, params, run.reference(params), cfg.run.progress)
        tree, meta = checkpointer.restore(latest, rl.state_tree())
        _check_same_run(meta["config"], cfg, checkpointer.directory)
        rl.load(tree, meta)
        summary.update(meta["summary"])
        if rl.iteration < cfg.run.iterations:
            summary.pop("after", None)  # resumed with more iterations: the old final evaluation is not final
        log(f"[dlrl-jax] resumed from the checkpoint at iteration {latest}")

    with _StopFlag() as stop:
        while rl.iteration < cfg.run.iterations:
            rl.step()
            it = rl.iteration
            evaluated = None
            if cfg.run.eval_every and it % cfg.run.eval_every == 0 and it < cfg.run.iterations:
                evaluated = evaluate(f"at iteration {it}", it, rl.params)
            periodic = cfg.run.save_every and it % cfg.run.save_every == 0 and it < cfg.run.iterations
            if stop.set or periodic or (cfg.run.keep_best_checkpoints and evaluated is not None):
                _save(checkpointer, rl, summary, cfg, evaluated)
            if stop.set:
                rl.close()
                checkpointer.wait()
                log(f"[dlrl-jax] stopped by SIGTERM after iteration {it}; checkpoint saved, continue with --resume")
                summary["stopped_at"] = it
                return summary
    rl.close()
    if "after" not in summary:  # (a run resumed from its final checkpoint has it already)
        summary["after"] = evaluate("after RL", cfg.run.iterations, rl.params)
    _save(checkpointer, rl, summary, cfg, summary["after"])
    return _finish(cfg, run, rl.params, summary, start, log)


def _save(checkpointer: TrainStateCheckpointer, rl: loop.RLLoop, summary: dict, cfg: Config,
          evaluation: dict | None = None) -> None:
    """A checkpoint of the current iteration, ranked by the held-out reward of an evaluation made at it."""
    if rl.iteration in checkpointer.all_steps():
        return
    t = time.perf_counter()
    checkpointer.save(rl.iteration, rl.state_tree(), dict(rl.meta(), summary=summary, config=to_dict(cfg)),
                      eval_reward=None if evaluation is None else evaluation["reward"])
    rl.run.writer.write("checkpoint", rl.iteration, {"seconds": time.perf_counter() - t})  # the blocking part


def _finish(cfg: Config, run: loop.Run, params, summary: dict, start: float, log) -> dict:
    summary["seconds"] = round(time.time() - start, 1)
    _export(run, params, os.path.join(run.out_dir, "model"))
    if run.lead:
        with open(os.path.join(run.out_dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        log(format_summary(summary))
    return summary


def _export(run: loop.Run, params, folder: str) -> None:
    """The model (LoRA merged) and tokenizer as a Hugging Face folder, and a LoRA adapter also as a PEFT
    adapter folder inside it. Every process joins the gather of the weights; process 0 writes."""
    params = precision.cast_to(params, run.param_dtypes)  # float32 master weights leave in the model dtype
    graphdef, merged = nnx.split(merge_lora(nnx.merge(run.graphdef, params)))
    merged = jax.tree.map(to_host, merged)
    if run.lead:
        save_pretrained(nnx.merge(graphdef, merged), folder)
        run.tokenizer.hf.save_pretrained(folder)
    if has_lora(params):  # the adapter alone as well, in PEFT's format: FOLDER/adapter
        adapter = jax.tree.map(lambda x, m: to_host(x) if m else x, params, trainable_mask(params))
        if run.lead:
            save_adapter(nnx.merge(run.graphdef, adapter), os.path.join(folder, "adapter"))


def format_summary(summary: dict) -> str:
    rows = [(name, summary[key]) for key, name in
            (("initial", "initial (random init)"), ("before", "before RL"), ("after", "after RL")) if key in summary]
    lines = [f"{'held-out (' + str(summary['eval_examples']) + ')':<24} {'reward':>8} {'solved':>8}"]
    lines += [f"{name:<24} {r['reward']:>8.3f} {r['solved']:>8.1%}" for name, r in rows]
    lines.append(f"seed {summary['seed']}, {summary['algorithm']}, {summary['seconds']} s")
    return "\n".join(lines)
