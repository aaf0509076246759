"""`dlrl-jax train`: SFT warm start (optional), held-out evaluation, RL, evaluation, checkpoints.

Orbax checkpoints are written every `sft.save_every` SFT steps and after the last one
(checkpoints_sft/, the newest `run.keep_checkpoints` kept, removed once RL's first checkpoint
exists), after SFT (RL iteration 0), every `run.save_every` RL iterations, at the end, and after every
evaluation when `run.keep_best_checkpoints` asks to keep the best ones by held-out reward (besides the
newest `run.keep_checkpoints`). Each carries a manifest of content hashes (folders.manifest).

With `run.resume` (`dlrl-jax train --resume`) a run continues from its newest good checkpoint:
parameters, optimizer state, reference, RNG key and data-iterator position come back, the metrics
written after that checkpoint are dropped, and the continuation is bit-identical to a run that was
never interrupted (on the same machine and devices). Only the settings that change the result are
compared, before anything is written. A checkpoint whose content is shown bad (a file that differs
from its manifest or is missing, or restored parameters that are not finite; for a checkpoint without
a manifest, any failure to read it that is not a passing shortage) is reported in one line, moved to
checkpoints.unreadable/ and the previous one used. A passing shortage of threads, memory or file
handles while reading a checkpoint moves and drops nothing: the run stops with TemporaryFailure and
the same command continues.

SIGTERM (preemption) at any phase saves what it can and raises `Preempted` (the CLI exits with 75):
during SFT, an SFT checkpoint after the current step (checkpoints_sft/; resumed SFT continues
bit-identically); during the evaluation before RL, the same SFT checkpoint (the evaluation is redone);
during RL, a checkpoint after the current iteration; during an evaluation at iteration n, the
checkpoint at n, and the resumed run makes that evaluation first; during start-up or the initial
evaluation there is nothing to save and the run starts again. A `kill -9` loses the work since the
newest checkpoint (in SFT, at most `sft.save_every` steps).

A run folder holds one kind of run: `dlrl-jax sft` into an RL run's folder, or `train` into an SFT
run's, is refused before anything is written.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import errno
import glob
import json
import os
import shutil
import time

import jax
from flax import nnx

from dlrl_jax.app.evaluation import held_out
from dlrl_jax.app.health import GuardError, Halted, HaltWatch, parse_guards
from dlrl_jax.app.metrics import open_run_metrics, truncate_metrics, truncate_sft_metrics
from dlrl_jax.app.preemption import Preempted, StopFlag, TemporaryFailure
from dlrl_jax.app.run import Run
from dlrl_jax.app.run_lock import RunLock
from dlrl_jax.checkpoints import CheckpointError, save_pretrained
from dlrl_jax.checkpoints.peft import save_adapter
from dlrl_jax.checkpoints.train_state import TrainStateCheckpointer, nonfinite_leaves
from dlrl_jax.config import Config, ConfigError, to_dict
from dlrl_jax.folders.atomic import replace_folder
from dlrl_jax.folders.manifest import ManifestMismatch
from dlrl_jax.models.lora import has_lora, merge_lora, trainable_mask
from dlrl_jax.parallel.transfer import is_lead_process, to_host
from dlrl_jax.training import loop, precision

SFT_CHECKPOINTS = "checkpoints_sft"  # the SFT warm start's, until RL's first checkpoint supersedes them
# Fields a resumed run may change: how long it runs, how it reports, where the folder is (a moved run
# resumes) and on which mesh (the checkpoint restores onto any), not what it computes.
_RESUMABLE_CHANGES = ("run.iterations", "run.resume", "run.out_dir", "run.progress", "run.eval_every", "run.eval_samples",
                      "run.save_every", "run.halt_on", "run.halt_patience",
                      "run.keep_checkpoints", "run.keep_best_checkpoints", "run.tensorboard", "run.wandb_project", "run.keep_best", "mesh.data",
                      "mesh.fsdp", "mesh.tensor", "sft.save_every")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# Fields whose default is not what the code did before the field existed: the demo's schedule became a
# cosine when optim.schedule was added (before it, every run was constant), and task.sft_teacher's auto
# picks the mixed teacher for the generated Sudoku (before it, the solution).
FIELDS_BEFORE_THEY_EXISTED = {"optim.schedule": "constant", "task.sft_teacher": "solution"}


def _check_same_run(saved: dict, cfg: Config, directory: str) -> None:
    old, new = _flatten(saved), _flatten(to_dict(cfg))
    # A field added since the checkpoint was written ran as the code then did: its default, or, where the
    # default has moved on, the value that spells the earlier behaviour (FIELDS_BEFORE_THEY_EXISTED).
    defaults = {**_flatten(to_dict(Config())), **FIELDS_BEFORE_THEY_EXISTED}
    old = {**{k: v for k, v in defaults.items() if k not in old}, **old}
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in _RESUMABLE_CHANGES)
    if changed:
        raise ConfigError(f"run.resume: the checkpoints in {directory} were written with different settings "
                          f"({', '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in changed)}); resume with "
                          "the original settings, or choose a new run.out_dir")


DATA_FINGERPRINTS = "data_sha256.json"  # RUN_DIR/: the bytes of the data files the run started on


def _check_same_data(cfg: Config, resuming: bool) -> None:
    """A resumed run must read the records it started on: another train/eval file would continue on
    other data, cut another held-out split and compare "before" and "after" on two sets (issue 26).
    The settings compare file names; this compares their bytes (sha256, recorded at the start). A hub
    source (hf:) is its name only."""
    from dlrl_jax.data.readers import source_fingerprint

    now = {field: source_fingerprint(path) for field, path in (("task.train_file", cfg.task.train_file),
                                                               ("task.eval_file", cfg.task.eval_file))
           if path is not None and not path.startswith("hf:")}
    record = os.path.join(cfg.run.out_dir, DATA_FINGERPRINTS)
    if resuming and os.path.exists(record):  # (a run started before these records: nothing to compare)
        with open(record) as f:
            started = json.load(f)
        for field, sha in now.items():
            if started.get(field, sha) != sha:
                path = getattr(cfg.task, field.split(".")[1])
                raise ConfigError(f"run.resume: {field} {path} changed since this run started (sha256 "
                                  f"{started[field][:12]} in {record}, {sha[:12]} now): resuming would train on other "
                                  "records and cut another held-out split; restore the original file, or start a new "
                                  f"run.out_dir (or delete {record} to continue on the new data anyway)")
    if is_lead_process() and now:
        os.makedirs(cfg.run.out_dir, exist_ok=True)
        with open(record + ".tmp", "w") as f:
            json.dump(now, f, indent=2)
        os.replace(record + ".tmp", record)
    elif is_lead_process() and not resuming and os.path.exists(record):  # a fresh start on generated data
        os.remove(record)


class _Interrupted(Exception):
    """SIGTERM arrived during a held-out evaluation: the evaluation stops between batches."""


@dataclasses.dataclass
class _ResumePoint:
    kind: str                         # "rl" (an RL checkpoint) or "sft" (an SFT checkpoint of the warm start)
    checkpointer: TrainStateCheckpointer
    step: int
    meta: dict
    verified: bool                    # its files matched its manifest (False: it has none)


class _SFTCheckpoints:
    """The warm start's checkpointer (checkpoints_sft/), opened when first needed (an RL resume never
    needs it) and closed with the run, or when RL's first checkpoint makes it superfluous."""

    def __init__(self, cfg: Config, stack: contextlib.ExitStack):
        self.directory = os.path.join(cfg.run.out_dir, SFT_CHECKPOINTS)
        self._keep, self._stack, self._opened = cfg.run.keep_checkpoints, stack, None
        if is_lead_process():  # what a kill in the middle of `drop` left
            for stale in glob.glob(glob.escape(self.directory) + ".removing-*"):
                shutil.rmtree(stale, ignore_errors=True)
        if os.path.isdir(self.directory):
            self.get()

    @property
    def opened(self) -> TrainStateCheckpointer | None:
        return self._opened

    def get(self) -> TrainStateCheckpointer:
        if self._opened is None:
            self._opened = TrainStateCheckpointer(self.directory, max_to_keep=self._keep)
            self._stack.callback(self._opened.close)
        return self._opened

    def drop(self, lead: bool) -> None:
        """Removes them (renamed first, so that a kill mid-removal never leaves half a checkpoint)."""
        if self._opened is not None:
            self._opened.close()
        if lead and os.path.isdir(self.directory):
            doomed = f"{self.directory}.removing-{os.getpid()}"
            os.rename(self.directory, doomed)
            shutil.rmtree(doomed, ignore_errors=True)


def train(cfg: Config, log=print, stop: StopFlag | None = None) -> dict:
    """Runs (or resumes) the configured job and returns its summary (also RUN_DIR/summary.json).

    Holds RUN_DIR/run.lock while it runs (a second run into the same folder fails by name). On SIGTERM
    it saves what it can and raises `Preempted` (the CLI exits with PREEMPTED_EXIT): a resumed run
    continues from there. `stop`: a StopFlag installed earlier (the CLI installs one before JAX loads)."""
    start = time.time()
    with contextlib.ExitStack() as stack:
        if stop is None:
            stop = stack.enter_context(StopFlag())
        if is_lead_process():
            stack.enter_context(RunLock(cfg.run.out_dir, log))
        return _start(cfg, log, stop, start, stack)


def _start(cfg: Config, log, stop: StopFlag, start: float, stack: contextlib.ExitStack) -> dict:
    """Finds what to resume from and checks it against the settings before anything is written."""
    out = cfg.run.out_dir
    _check_same_kind(cfg)
    try:
        parse_guards(cfg.run.halt_on)
    except GuardError as e:
        raise ConfigError(str(e)) from None
    rl_ckpt = None
    if cfg.algorithm.name != "sft":
        rl_ckpt = TrainStateCheckpointer(os.path.join(out, "checkpoints"), max_to_keep=cfg.run.keep_checkpoints,
                                         keep_best=cfg.run.keep_best_checkpoints)
        stack.callback(rl_ckpt.close)
    sft_checkpoints = _SFTCheckpoints(cfg, stack)
    sft_ckpt = sft_checkpoints.opened
    existing = [(c, c.latest_step()) for c in (rl_ckpt, sft_ckpt) if c is not None and c.latest_step() is not None]
    if existing and not cfg.run.resume:
        raise ConfigError(f"run.out_dir {out} already holds checkpoints (newest: {existing[0][0].directory} step "
                          f"{existing[0][1]}); set run.resume=true (dlrl-jax train --resume) to continue it, or "
                          "choose a new run.out_dir")
    resume = None
    if cfg.run.resume:
        for kind, checkpointer in (("rl", rl_ckpt), ("sft", sft_ckpt)):
            found = checkpointer and _newest_readable(checkpointer, log)
            if found:
                resume = _ResumePoint(kind, checkpointer, *found)
                _check_same_run(resume.meta["config"], cfg, checkpointer.directory)
                break
    if resume is None and cfg.run.resume is True:
        raise ConfigError(f"run.resume: {out} holds no checkpoint to resume from; start it without --resume, or "
                          "with --resume-or-start (run.resume=auto), which starts fresh when there is none")
    _check_same_data(cfg, resume is not None)
    metrics_path = os.path.join(out, "metrics.jsonl")
    if is_lead_process():
        if resume is None and os.path.exists(metrics_path):
            os.remove(metrics_path)  # a fresh start: metrics of an earlier, checkpoint-less run in this folder go
        elif resume is not None:
            _truncate(resume)
    if resume is not None:
        log(f"[dlrl-jax] resuming from {resume.checkpointer.directory} step {resume.step}")
    run = Run(cfg, open_metrics=open_run_metrics)  # (writes config.json: only after the settings check above)
    stack.callback(run.writer.close)
    stop.defer()  # from here on every phase can save: SIGTERM sets the flag the phases check
    with jax.set_mesh(run.mesh):  # the model then keeps activations split by rows (constrain_rows)
        return _train(cfg, run, rl_ckpt, sft_checkpoints, resume, start, log, stop)


def _run_kind(algorithm: str) -> str:
    return "sft" if algorithm == "sft" else "rl"


def _check_same_kind(cfg: Config) -> None:
    """Refuses to run into a folder that holds the other kind of run (its config.json says which): an
    SFT run there would delete an RL run's metrics and replace its model, and the other way round."""
    out = cfg.run.out_dir
    try:
        with open(os.path.join(out, "config.json")) as f:
            algorithm = json.load(f)["algorithm"]["name"]
    except (OSError, ValueError, KeyError, TypeError):  # no run there yet (or no config.json to tell)
        return
    if not isinstance(algorithm, str) or _run_kind(algorithm) == _run_kind(cfg.algorithm.name):
        return
    if _run_kind(algorithm) == "rl":
        raise ConfigError(f"run.out_dir {out} holds an RL run ({algorithm}); `dlrl-jax sft` would delete its "
                          "metrics and replace its model: choose another run.out_dir, or continue that run with "
                          "`dlrl-jax train --resume`")
    raise ConfigError(f"run.out_dir {out} holds an SFT run; `dlrl-jax train` would delete its metrics and replace its "
                      "model: choose another run.out_dir (its model/ can be the new run's model.path), or continue "
                      "that run with `dlrl-jax sft --resume`")


# A passing shortage (threads, memory, file handles) says nothing of a checkpoint's content.
_SHORTAGE_ERRNOS = (errno.EAGAIN, errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.EINTR)
_SHORTAGE_TEXTS = ("can't start new thread", "Resource temporarily unavailable", "Cannot allocate memory",
                   "Too many open files", "RESOURCE_EXHAUSTED", "out of memory", "Out of memory")


def _is_shortage(error: BaseException) -> bool:
    """Whether `error` (or an exception it came from) is a passing lack of threads, memory or file
    handles, however a library wrapped it (Orbax and tensorstore re-raise as ValueError with its text)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, MemoryError) or (isinstance(error, OSError) and error.errno in _SHORTAGE_ERRNOS):
            return True
        if any(text in str(error) for text in _SHORTAGE_TEXTS):
            return True
        error = error.__cause__ or error.__context__
    return False


def _cannot_read(checkpointer: TrainStateCheckpointer, step: int, error: BaseException, what: str) -> Exception:
    """The error for a checkpoint that is kept although it could not be read: a passing shortage
    (TemporaryFailure: run again), or a failure of a checkpoint whose files match their manifest."""
    failed = (f"{what} checkpoint step {step} in {checkpointer.directory} failed ({type(error).__name__}: "
              f"{_first_line(error)}); nothing was moved or dropped")
    if _is_shortage(error):
        return TemporaryFailure(f"{failed}: run the same command again once threads and memory are free")
    return CheckpointError(f"{failed} (its files match their manifest: the cause is not its content; a different "
                           "dlrl_jax or Orbax version?): resume with the version that wrote it, or run again")


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0][:200]


def _newest_readable(checkpointer: TrainStateCheckpointer, log) -> tuple[int, dict, bool] | None:
    """(step, meta, verified) of the newest checkpoint that matches its manifest (or has none) and whose
    metadata reads. A bad one is reported in one line and set aside; a passing shortage while reading
    one raises TemporaryFailure, as does any failure to read a checkpoint whose manifest matched (its
    content is shown good: the cause is elsewhere)."""
    for step in sorted(checkpointer.all_steps(), reverse=True):
        try:
            verified = checkpointer.verify(step)
        except ManifestMismatch as e:
            _set_aside(checkpointer, step, e, log, "fails its integrity check")
            continue
        except Exception as e:  # noqa: BLE001 (not a content error: those are ManifestMismatch)
            if not (_is_shortage(e) or isinstance(e, OSError)):
                raise
            raise TemporaryFailure(f"checking checkpoint step {step} in {checkpointer.directory} failed "
                                   f"({type(e).__name__}: {_first_line(e)}); nothing was moved or dropped: run the "
                                   "same command again") from None
        if not verified:
            log(f"[dlrl-jax] warning: checkpoint step {step} in {checkpointer.directory} has no manifest of content "
                "hashes (written before they existed, or killed before it was written): restored unverified")
        try:
            return step, checkpointer.read_meta(step), verified
        except Exception as e:  # noqa: BLE001 (whatever Orbax raises on a damaged step)
            if verified or _is_shortage(e):
                raise _cannot_read(checkpointer, step, e, "reading") from None
            _set_aside(checkpointer, step, e, log, "is unreadable")
    return None


def _set_aside(checkpointer: TrainStateCheckpointer, step: int, error: Exception | str, log, problem: str) -> None:
    try:
        where = f"moved to {checkpointer.set_aside(step)}"
    except FileNotFoundError:  # another process of the job moved it first
        checkpointer.manager.reload()
        where = "moved aside"
    reason = error if isinstance(error, str) else f"{type(error).__name__}: {_first_line(error)}"
    log(f"[dlrl-jax] checkpoint step {step} in {checkpointer.directory} {problem} ({reason}); {where}; using the "
        "previous one")


def _restore(resume: _ResumePoint, target, cfg: Config, log):
    """(tree, meta) of the resume point; a bad one (see _newest_readable; also one whose floating-point
    arrays hold NaN or infinities) is set aside and the previous one used."""
    checkpointer = resume.checkpointer
    while True:
        try:
            tree, meta = checkpointer.restore(resume.step, target)
        except Exception as e:  # noqa: BLE001
            if resume.verified or _is_shortage(e):
                raise _cannot_read(checkpointer, resume.step, e, "restoring") from None
            _set_aside(checkpointer, resume.step, e, log, "is unreadable")
        else:
            bad = nonfinite_leaves(tree)
            if not bad:
                return tree, meta
            _set_aside(checkpointer, resume.step, f"NaN or infinite values in {', '.join(bad[:3])}"
                       f"{f' and {len(bad) - 3} more arrays' if len(bad) > 3 else ''}", log, "is not finite")
        found = _newest_readable(checkpointer, log)
        if found is None:
            raise ConfigError(f"run.resume: no good checkpoint is left in {checkpointer.directory} (the bad ones are "
                              f"in {checkpointer.directory}.unreadable); start afresh in a new run.out_dir")
        resume.step, resume.meta, resume.verified = found
        _check_same_run(resume.meta["config"], cfg, checkpointer.directory)
        if is_lead_process():
            _truncate(resume)


def _truncate(resume: _ResumePoint) -> None:
    """Drops the metrics written after the resume point, so that the resumed run reads as one."""
    run_dir = os.path.dirname(resume.checkpointer.directory)
    if resume.kind == "rl":
        truncate_metrics(run_dir, resume.step)
    else:
        truncate_sft_metrics(run_dir, resume.step, evaluations=int("initial" in resume.meta.get("summary", {})))


def _train(cfg: Config, run: Run, rl_ckpt, sft_checkpoints: _SFTCheckpoints, resume: _ResumePoint | None, start,
           log, stop: StopFlag) -> dict:
    eval_batch = cfg.algorithm.prompts_per_batch * cfg.algorithm.group_size
    params = run.params
    summary: dict = {"seed": cfg.seed, "algorithm": cfg.algorithm.name, "eval_examples": len(run.task.eval)}
    log(f"[dlrl-jax] task {cfg.task.name}: {len(run.task.train)} train / {len(run.task.eval)} held-out records; "
        f"model {cfg.model.path or cfg.model.preset}; run dir {run.out_dir}")

    def check_stop():
        if stop.set:
            raise _Interrupted()

    def evaluate(phase, step, p, candidate=True):
        t = time.perf_counter()
        # pass@k (run.eval_samples) where the end-of-run table reads it; the curve along the way is greedy
        result = held_out(run, p, run.task.eval, eval_batch, step, stop=check_stop,
                          samples=phase in ("before RL", "after RL", "after SFT"))
        run.writer.write("eval", step, dict(result, seconds=time.perf_counter() - t))
        passes = "".join(f", {k[5:]} {v:.1%}" for k, v in result.items() if k.startswith("eval_pass@"))
        log(f"[dlrl-jax] eval {phase}: reward {result['reward']:.3f}, solved {result['solved']:.1%}, "
            f"correct {result['eval_correct']:.3f}{passes}")
        if candidate and cfg.run.keep_best and result["reward"] > summary.get("best", {}).get("reward", -1.0):
            summary["best"] = dict(result, step=step)
            _export(run, p, os.path.join(run.out_dir, "best_model"))
            log(f"[dlrl-jax] best held-out reward so far: exported to {run.out_dir}/best_model")
        return result

    if resume is None or resume.kind == "sft":
        sft = _warm_start(cfg, run, params, sft_checkpoints, resume, summary, evaluate, log, stop) \
            if cfg.sft.steps else None
        params = sft.params if sft else params
        phase = "before RL" if cfg.algorithm.name != "sft" else "after SFT"
        try:
            summary["before"] = evaluate(phase, 0, params)
        except _Interrupted:
            raise _preempted_in_sft(cfg, run, sft, sft_checkpoints, summary, f"during the evaluation {phase}") from None
        if cfg.algorithm.name == "sft":
            result = _finish(cfg, run, params, summary, start, log)
            sft_checkpoints.drop(run.lead)
            return result
        # the update donates params; the reference stays (a copy, or the base itself with LoRA)
        rl = loop.RLLoop(run, params, run.reference(params), cfg.run.progress)
        _save(rl_ckpt, rl, summary, cfg, summary["before"])
        rl_ckpt.wait()
        sft_checkpoints.drop(run.lead)  # the RL checkpoint at iteration 0 supersedes them
        pending_eval = False
    else:
        rl = loop.RLLoop(run, params, run.reference(params), cfg.run.progress)
        tree, meta = _restore(resume, rl.checkpoint_target(resume.meta), cfg, log)
        rl.load(tree, meta)
        summary.update(meta["summary"])
        if rl.iteration < cfg.run.iterations:
            summary.pop("after", None)  # resumed with more iterations: the old final evaluation is not final
        pending_eval = bool(meta.get("pending_eval"))  # preempted during the evaluation at this iteration
        log(f"[dlrl-jax] resumed from the checkpoint at iteration {rl.iteration}")

    def preempted(during: str):
        _save(rl_ckpt, rl, summary, cfg, pending_eval=during.startswith("during the evaluation at"))
        rl.close()
        rl_ckpt.wait()
        return Preempted(f"stopped by SIGTERM {during}; checkpoint at iteration {rl.iteration} saved in "
                         f"{rl_ckpt.directory}, continue with --resume")

    watch = HaltWatch(parse_guards(cfg.run.halt_on), cfg.run.halt_patience)
    while True:
        evaluated = None
        it = rl.iteration
        if pending_eval:
            pending_eval = False
            try:
                evaluated = evaluate(f"at iteration {it}", it, rl.params)
            except _Interrupted:
                raise preempted(f"during the evaluation at iteration {it}") from None
        if stop.set:
            raise preempted(f"after iteration {it}")
        if it >= cfg.run.iterations:
            break
        metrics = rl.step()
        it = rl.iteration
        try:
            reason = watch.observe(it - 1, metrics)
        except GuardError as e:
            raise ConfigError(str(e)) from None
        if reason is not None:  # a guard held: save where it stands (resumable) and stop by name
            _save(rl_ckpt, rl, summary, cfg)
            rl.close()
            rl_ckpt.wait()
            raise Halted(f"halted by run.halt_on: {reason}; checkpoint at iteration {it} saved in "
                         f"{rl_ckpt.directory}; look at metrics.jsonl, then --resume (with run.halt_on relaxed "
                         "by --set to go on)")
        if cfg.run.eval_every and it % cfg.run.eval_every == 0 and it < cfg.run.iterations:
            try:
                evaluated = evaluate(f"at iteration {it}", it, rl.params)
            except _Interrupted:
                raise preempted(f"during the evaluation at iteration {it}") from None
        periodic = cfg.run.save_every and it % cfg.run.save_every == 0 and it < cfg.run.iterations
        if periodic or (cfg.run.keep_best_checkpoints and evaluated is not None):
            _save(rl_ckpt, rl, summary, cfg, evaluated)
    rl.close()
    if "after" not in summary:  # (a run resumed from its final checkpoint has it already)
        try:
            summary["after"] = evaluate("after RL", cfg.run.iterations, rl.params)
        except _Interrupted:
            raise preempted("during the final evaluation") from None
    _save(rl_ckpt, rl, summary, cfg, summary["after"])
    return _finish(cfg, run, rl.params, summary, start, log)


def _warm_start(cfg: Config, run: Run, params, sft_checkpoints: _SFTCheckpoints, resume, summary: dict,
                evaluate, log, stop) -> loop.SFTLoop:
    """The initial evaluation and the SFT steps, resumed from an SFT checkpoint when there is one. An SFT
    checkpoint (params, optimizer, key, data position) is saved every `sft.save_every` steps, after the
    last step (so that a kill in the evaluation after SFT loses no step), and on SIGTERM between steps."""
    sft = loop.SFTLoop(run, params, cfg.sft.steps, cfg.run.progress)
    if resume is not None:
        tree, meta = _restore(resume, sft.checkpoint_target(resume.meta), cfg, log)
        sft.load(tree, meta)
        summary.update(meta["summary"])
        log(f"[dlrl-jax] resumed SFT at step {sft.step_index} of {cfg.sft.steps}")
    else:
        try:
            summary["initial"] = evaluate("initial", 0, params, candidate=False)
        except _Interrupted:
            raise Preempted("stopped by SIGTERM during the initial evaluation, before anything was saved; start "
                            "the run again (without --resume, or with --resume-or-start)") from None
    while not sft.done:
        if stop.set:
            raise _preempted_in_sft(cfg, run, sft, sft_checkpoints, summary, f"at SFT step {sft.step_index}")
        sft.step()
        every = cfg.sft.save_every
        if every and (sft.step_index % every == 0 or sft.done):
            _save_sft(sft_checkpoints.get(), sft, summary, cfg)
    run.key = sft.close()  # the RL iterations continue the warm start's key chain
    return sft


def _save_sft(checkpointer: TrainStateCheckpointer, sft: loop.SFTLoop, summary: dict, cfg: Config) -> None:
    """Starts saving an SFT checkpoint of the current step (the arrays are copied before this returns;
    the files are written in the background while SFT goes on)."""
    if sft.step_index not in checkpointer.all_steps():
        # (a copy: the metadata is written in the background, and the summary grows meanwhile)
        meta = dict(sft.meta(), summary=copy.deepcopy(summary), config=to_dict(cfg))
        checkpointer.save(sft.step_index, sft.state_tree(), meta)


def _preempted_in_sft(cfg: Config, run: Run, sft: loop.SFTLoop | None, sft_checkpoints: _SFTCheckpoints,
                      summary: dict, during: str) -> Preempted:
    """Saves an SFT checkpoint (when there was SFT) and says what a resumed run redoes."""
    if sft is None:
        return Preempted(f"stopped by SIGTERM {during}, before anything was saved; start the run again "
                         "(without --resume, or with --resume-or-start)")
    checkpointer = sft_checkpoints.get()
    try:
        _save_sft(checkpointer, sft, summary, cfg)
    finally:
        sft.close()
        checkpointer.close()
    return Preempted(f"stopped by SIGTERM {during}; SFT checkpoint at step {sft.step_index} of {cfg.sft.steps} "
                     f"saved in {checkpointer.directory}, continue with --resume")


def _save(checkpointer: TrainStateCheckpointer, rl: loop.RLLoop, summary: dict, cfg: Config,
          evaluation: dict | None = None, pending_eval: bool = False) -> None:
    """A checkpoint of the current iteration, ranked by the held-out reward of an evaluation made at it.
    `pending_eval`: the evaluation due at this iteration was interrupted; a resumed run makes it first."""
    if rl.iteration in checkpointer.all_steps():
        return
    t = time.perf_counter()
    meta = dict(rl.meta(), summary=summary, config=to_dict(cfg), pending_eval=pending_eval)
    checkpointer.save(rl.iteration, rl.state_tree(), meta,
                      eval_reward=None if evaluation is None else evaluation["reward"])
    rl.run.writer.write("checkpoint", rl.iteration, {"seconds": time.perf_counter() - t})  # the blocking part


def _finish(cfg: Config, run: Run, params, summary: dict, start: float, log) -> dict:
    summary["seconds"] = round(time.time() - start, 1)
    _export(run, params, os.path.join(run.out_dir, "model"))
    if run.lead:
        with open(os.path.join(run.out_dir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        log(format_summary(summary, cfg.algorithm.group_size))
    return summary


def _export(run: Run, params, folder: str) -> None:
    """The model (LoRA merged) and tokenizer as a Hugging Face folder, and a LoRA adapter also as a PEFT
    adapter folder inside it. Every process joins the gather of the weights; process 0 writes."""
    params = precision.cast_to(params, run.param_dtypes)  # float32 master weights leave in the model dtype
    graphdef, merged = nnx.split(merge_lora(nnx.merge(run.graphdef, params)))
    merged = jax.tree.map(to_host, merged)
    adapter = jax.tree.map(lambda x, m: to_host(x) if m else x, params, trainable_mask(params)) \
        if has_lora(params) else None
    if run.lead:
        with replace_folder(folder) as tmp:  # whole or not at all: a kill mid-export keeps the previous one
            save_pretrained(nnx.merge(graphdef, merged), tmp)
            run.tokenizer.hf.save_pretrained(tmp)
            if adapter is not None:  # the adapter alone as well, in PEFT's format: FOLDER/adapter
                save_adapter(nnx.merge(run.graphdef, adapter), os.path.join(tmp, "adapter"))


def format_summary(summary: dict, group_size: int | None = None) -> str:
    """The before/after table: held-out cell reward and greedy solved rate; with run.eval_samples also
    the solved rate per sample (eval_pass@1) and pass@k for k = `group_size` (the algorithm's group:
    how often a group holds a solved completion) at the rollout temperature."""
    rows = [(name, summary[key]) for key, name in
            (("initial", "initial (random init)"), ("before", "before RL"), ("after", "after RL")) if key in summary]
    wanted = (("eval_pass@1", "per sample"), (f"eval_pass@{group_size}", f"pass@{group_size}"))
    columns = [(key, head) for key, head in wanted if group_size and any(key in r for _, r in rows)]
    lines = [f"{'held-out (' + str(summary['eval_examples']) + ')':<24} {'reward':>8} {'solved':>8}"
             + "".join(f" {head:>10}" for _, head in columns)]
    lines += [f"{name:<24} {r['reward']:>8.3f} {r['solved']:>8.1%}"
              + "".join(f" {r[key]:>10.1%}" if key in r else f" {'-':>10}" for key, _ in columns) for name, r in rows]
    if "before" in summary and "after" in summary:
        before, after = summary["before"]["solved"], summary["after"]["solved"]
        ratio = f"x{after / before:.2f}" if before > 0 else "from none"
        lines.append(f"{'RL change':<24} {summary['after']['reward'] - summary['before']['reward']:>+8.3f} "
                     f"{100 * (after - before):>+7.1f} points solved ({ratio})")
    lines.append(f"seed {summary['seed']}, {summary['algorithm']}, {summary['seconds']} s")
    return "\n".join(lines)
