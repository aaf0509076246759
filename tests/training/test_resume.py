"""Exact resume: a run killed with SIGKILL after its checkpoint at iteration k and resumed gives, for
iterations k+1..N, metrics and final parameters bit-identical to a run that was never interrupted; a
half-written (uncommitted) checkpoint is ignored; SIGTERM saves and exits with 75 (preempted); a resumed run
with changed settings is refused by name."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
from safetensors.numpy import load_file

from dlrl_jax import cli
from dlrl_jax.app.metrics import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETTINGS = ["sft.steps=2", "sft.batch_size=8", "task.train_size=64", "task.eval_size=8",
            "algorithm.prompts_per_batch=2", "algorithm.group_size=4", "run.save_every=1", "run.eval_every=2",
            "run.tensorboard=false", "run.progress=false"]
VOLATILE = ("time", "tokens_per_s", "seconds", "time_rollout", "time_reward", "time_reference", "time_update",
            "time_iteration")  # wall-clock measurements


def _args(out, iterations, *extra):
    args = ["train"]
    for s in SETTINGS + [f"run.out_dir={out}", f"run.iterations={iterations}"]:
        args += ["--set", s]
    return args + list(extra)


def _launch(out, iterations):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.Popen([sys.executable, "-m", "dlrl_jax.cli"] + _args(out, iterations), cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_checkpoint(proc, out, step, limit=240):
    deadline = time.time() + limit
    while not os.path.isdir(os.path.join(out, "checkpoints", str(step))):  # committed by an atomic rename
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "no checkpoint in time"
        time.sleep(0.2)


def _stable(records):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def test_kill9_and_resume_is_bit_identical(tmp_path):
    full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
    proc = _launch(killed, 5)
    _wait_for_checkpoint(proc, killed, 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(os.path.join(killed, "summary.json"))  # it did not finish
    assert cli.main(_args(full, 5)) == 0  # the uninterrupted run
    # a save torn by a kill: Orbax's temporary folder, never committed
    torn = os.path.join(killed, "checkpoints", "4.orbax-checkpoint-tmp-1700000000")
    if not os.path.isdir(os.path.join(killed, "checkpoints", "4")):
        os.makedirs(os.path.join(torn, "state"))
        open(os.path.join(torn, "state", "garbage"), "w").write("half written")
    assert cli.main(_args(killed, 5, "--resume")) == 0
    assert _stable(read_metrics(killed)) == _stable(read_metrics(full))
    a, b = load_file(os.path.join(full, "model", "model.safetensors")), load_file(os.path.join(killed, "model",
                                                                                               "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    summary = json.load(open(os.path.join(killed, "summary.json")))
    assert summary["after"] == json.load(open(os.path.join(full, "summary.json")))["after"]


def test_sigterm_saves_and_exits_75_and_resume_rules(tmp_path, capsys):
    out = str(tmp_path / "run")
    proc = _launch(out, 200)
    _wait_for_checkpoint(proc, out, 1)
    proc.send_signal(signal.SIGTERM)
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode == 75, log  # preempted, resumable
    stopped = int(log.split("checkpoint at iteration ")[1].split(" ")[0])
    assert stopped >= 1 and os.path.isdir(os.path.join(out, "checkpoints", str(stopped)))
    assert [r["step"] for r in read_metrics(out) if r["phase"] == "rl"] == list(range(stopped))
    # the same folder without --resume is refused; with a changed algorithm setting too
    assert cli.main(_args(out, 200)) == 2
    assert "already holds checkpoints" in capsys.readouterr().err
    config_before = open(os.path.join(out, "config.json")).read()
    assert cli.main(_args(out, 200, "--resume", "--set", "algorithm.k=2")) == 2
    assert "algorithm.k: 4 -> 2" in capsys.readouterr().err
    assert open(os.path.join(out, "config.json")).read() == config_before  # a refused resume writes nothing
    # moved elsewhere, with its newest checkpoint damaged: it resumes there from the previous one
    moved = str(tmp_path / "moved")
    os.rename(out, moved)
    for folder, _, files in os.walk(os.path.join(moved, "checkpoints", str(stopped), "state")):
        for name in files:
            os.truncate(os.path.join(folder, name), os.path.getsize(os.path.join(folder, name)) // 2)
    assert cli.main(_args(moved, stopped, "--resume")) == 0
    log = capsys.readouterr().out
    [line] = [x for x in log.splitlines() if "unreadable" in x]
    assert f"checkpoint step {stopped} in {moved}" in line and "using the previous one" in line
    assert f"resumed from the checkpoint at iteration {stopped - 1}" in log
    assert [r["step"] for r in read_metrics(moved) if r["phase"] == "rl"] == list(range(stopped))
    assert os.listdir(os.path.join(moved, "checkpoints.unreadable"))[0].startswith(f"{stopped}-")
