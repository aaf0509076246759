"""Runs that stop and go on: SIGTERM at every phase (start-up, SFT, RL, the final evaluation) saves
what it can and exits with 75; a preempted SFT resumes from its own checkpoint, in a moved folder, to
exactly the uninterrupted result; an unreadable newest checkpoint is reported in one line and the
previous one used (again to exactly the uninterrupted result); one run per folder (a lock that a dead
process does not keep); `--resume` with nothing to resume fails by name, `--resume-or-start` starts."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from dlrl_jax import cli
from dlrl_jax.app.metrics import read_metrics
from dlrl_jax.app.run_lock import RunLock, RunLockedError
from tests.training.test_resume import VOLATILE  # the wall-clock fields of metrics.jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETTINGS = ["sft.steps=40", "sft.batch_size=8", "task.train_size=64", "task.eval_size=8",
            "algorithm.prompts_per_batch=2", "algorithm.group_size=4", "run.save_every=1", "run.iterations=2",
            "run.tensorboard=false", "run.progress=false"]


def _args(out, *extra, settings=SETTINGS):
    args = ["train"]
    for s in settings + [f"run.out_dir={out}"]:
        args += ["--set", s]
    return args + list(extra)


def _launch(out, settings=SETTINGS, *extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.Popen([sys.executable, "-u", "-m", "dlrl_jax.cli"] + _args(out, *extra, settings=settings),
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait(proc, condition, what, limit=240):
    deadline = time.time() + limit
    while not condition():
        assert proc.poll() is None, f"exited {proc.returncode} before {what}: {proc.communicate()}"
        assert time.time() < deadline, f"no {what} in time"
        time.sleep(0.01)


def _rows(out, phase):
    try:
        return [r for r in read_metrics(out) if r["phase"] == phase]
    except (OSError, ValueError):  # not there yet, or a line being written
        return []


def _catches_sigterm(pid):
    """The process has installed its SIGTERM handler (bit 15 of SigCgt)."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt"))
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def _stable(records):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def _same_weights(a_dir, b_dir):
    a, b = load_file(os.path.join(a_dir, "model", "model.safetensors")), load_file(
        os.path.join(b_dir, "model", "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.slow  # three training runs and one interrupted (about a minute on 2 cores): `pytest -m slow`
def test_sigterm_in_sft_resumes_moved_and_falls_back_from_a_corrupt_checkpoint(tmp_path, capsys):
    reference, run, moved = (str(tmp_path / n) for n in ("reference", "run", "moved"))
    proc = _launch(run)
    _wait(proc, lambda: any(r["step"] >= 10 for r in _rows(run, "sft")), "SFT step 10")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err
    assert err.count("\n") == 1 and "preempted: stopped by SIGTERM at SFT step" in err
    step = int(err.split("SFT checkpoint at step ")[1].split(" ")[0])
    assert 10 < step < 40 and os.listdir(os.path.join(run, "checkpoints_sft")) == [str(step)]
    assert not os.listdir(os.path.join(run, "checkpoints"))

    assert cli.main(_args(reference)) == 0  # the uninterrupted run
    os.rename(run, moved)  # a moved run resumes: the folder's name is not a setting
    capsys.readouterr()
    assert cli.main(_args(moved, "--resume")) == 0
    assert f"resumed SFT at step {step} of 40" in capsys.readouterr().out
    assert _stable(read_metrics(moved)) == _stable(read_metrics(reference))
    _same_weights(reference, moved)
    # a changed setting that changes the result is refused before anything is written
    config_before = open(os.path.join(moved, "config.json")).read()
    assert cli.main(_args(moved, "--resume", "--set", "optim.b2=0.9")) == 2
    assert "optim.b2: 0.99 -> 0.9" in capsys.readouterr().err
    assert open(os.path.join(moved, "config.json")).read() == config_before
    assert not os.path.exists(os.path.join(moved, "checkpoints_sft"))  # superseded by the RL checkpoints

    # the newest checkpoint is damaged (truncated files): one line, then the previous one, same result
    newest = os.path.join(moved, "checkpoints", "2")
    for folder, _, files in os.walk(os.path.join(newest, "state")):
        for name in files:
            path = os.path.join(folder, name)
            os.truncate(path, os.path.getsize(path) // 2)
    assert cli.main(_args(moved, "--resume")) == 0
    out = capsys.readouterr().out
    [line] = [x for x in out.splitlines() if "unreadable" in x]
    assert "checkpoint step 2 in" in line and "using the previous one" in line
    assert "resumed from the checkpoint at iteration 1" in out
    assert os.listdir(os.path.join(moved, "checkpoints.unreadable"))[0].startswith("2-")
    assert _stable(read_metrics(moved)) == _stable(read_metrics(reference))
    _same_weights(reference, moved)


def test_sigterm_at_start_up_exits_75_with_nothing_saved(tmp_path):
    out = str(tmp_path / "early")
    proc = _launch(out)
    _wait(proc, lambda: _catches_sigterm(proc.pid), "SIGTERM handler")
    proc.send_signal(signal.SIGTERM)  # while JAX loads and the run is built (or, if that was quick, in the
    _, err = proc.communicate(timeout=120)  # initial evaluation): nothing to save yet
    assert proc.returncode == 75 and err.count("\n") == 1, err
    assert "preempted: stopped by SIGTERM during " in err and "before anything was saved" in err, err
    assert not os.path.isdir(os.path.join(out, "checkpoints")) or not os.listdir(os.path.join(out, "checkpoints"))


@pytest.mark.slow  # two training runs with 512 held-out puzzles evaluated twice (about a minute on 2 cores)
def test_sigterm_during_the_final_evaluation(tmp_path):
    settings = [s for s in SETTINGS if not s.startswith(("sft.steps", "task.eval_size", "run.iterations"))] + [
        "sft.steps=0", "task.eval_size=512", "run.iterations=1"]
    out = str(tmp_path / "final")
    proc = _launch(out, settings, "--resume-or-start")  # nothing to resume: it starts
    _wait(proc, lambda: _rows(out, "rl"), "the RL iteration")
    proc.send_signal(signal.SIGTERM)  # the final evaluation (512 held-out puzzles) is running
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75 and "during the final evaluation; checkpoint at iteration 1 saved" in err, err
    assert not os.path.exists(os.path.join(out, "summary.json"))
    assert cli.main(_args(out, "--resume", settings=settings)) == 0
    assert "after" in json.load(open(os.path.join(out, "summary.json")))
    assert [r["step"] for r in _rows(out, "eval")] == [0, 1]  # before RL, after RL: none lost, none twice


def test_one_run_per_folder_and_a_dead_holder_is_taken_over(tmp_path, capsys):
    out = str(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from dlrl_jax.app.run_lock import "
                               "RunLock\nwith RunLock(sys.argv[1]):\n print('held', flush=True); time.sleep(600)", out],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert cli.main(_args(out)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"pid {holder.pid}" in err and "another run is writing" in err
        with pytest.raises(RunLockedError):
            RunLock(out).__enter__()
    finally:
        holder.kill()  # SIGKILL: its lock file stays behind, naming it
        holder.wait()
    messages = []
    with RunLock(out, log=messages.append):
        assert json.load(open(os.path.join(out, "run.lock")))["pid"] == os.getpid()
    assert len(messages) == 1 and f"stale lock of host" in messages[0] and f"pid {holder.pid}" in messages[0]
    with RunLock(out, log=messages.append):  # released cleanly last time: nothing to take over
        pass
    assert len(messages) == 1


def test_resume_needs_a_checkpoint_unless_asked_to_start(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(_args(out, "--resume")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no checkpoint to resume from" in err and "--resume-or-start" in err
    assert not os.path.exists(os.path.join(out, "config.json"))  # nothing written by a refused run
    assert cli.main(_args(out, "--resume", "--set", "sft.learning_rate=nan")) == 2
    assert "'sft.learning_rate' must be a finite number" in capsys.readouterr().err
    file_dir = tmp_path / "a_file"
    file_dir.write_text("not a folder")
    assert cli.main(_args(str(file_dir))) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_sigterm_during_eval_stops_between_batches_and_the_rerun_completes(tmp_path):
    from dlrl_jax import checkpoints, models
    from dlrl_jax.models.tokenizer import write_char_tokenizer

    model, out = str(tmp_path / "model"), str(tmp_path / "ev")
    checkpoints.save_pretrained(models.init_model(models.preset("tiny"), seed=3), model)
    write_char_tokenizer(model)
    argv = ["eval", "--model", model, "--task", "sudoku", "--gen-lengths", "16", "--out", out, "--num-examples",
            "96", "--prompt-style", "plain", "--block-length", "8", "--batch-size", "2", "--no-progress"]
    rows = os.path.join(out, "eval_sudoku_16.jsonl")
    proc = subprocess.Popen([sys.executable, "-m", "dlrl_jax.cli"] + argv, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    _wait(proc, lambda: os.path.exists(rows) and os.path.getsize(rows) > 0, "the first rows")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75 and "run the same command again to continue" in err, err
    written = [json.loads(line)["index"] for line in open(rows)]
    assert written == list(range(len(written))) and len(written) % 2 == 0 and len(written) < 96  # whole batches
    assert cli.main(argv) == 0
    assert [json.loads(line)["index"] for line in open(rows)] == list(range(96))
