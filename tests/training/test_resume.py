"""Exact resume: a run killed with SIGKILL at a seeded random SFT step, resumed, killed again after its
RL checkpoint at iteration k and resumed again gives metrics and final parameters bit-identical to a
run that was never interrupted (the SFT checkpoints kept: every sft.save_every steps, the newest
run.keep_checkpoints, each with its manifest); a
half-written (uncommitted) checkpoint is ignored; SIGTERM saves and exits with 75 (preempted); a resumed run
with changed settings is refused by name; a flipped byte in the newest checkpoint's array file is named
and the previous checkpoint used; a passing thread shortage while restoring moves nothing (exit 75);
`dlrl-jax sft` into a finished RL run's folder is refused, changing nothing."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from dlrl_jax import cli
from dlrl_jax.app.metrics import read_metrics
from dlrl_jax.checkpoints.train_state import TrainStateCheckpointer
from dlrl_jax.folders.manifest import MANIFEST

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SFT_STEPS, SFT_EVERY, KEEP = 8, 2, 3  # (KEEP: run.keep_checkpoints' default)
SETTINGS = [f"sft.steps={SFT_STEPS}", f"sft.save_every={SFT_EVERY}", "sft.batch_size=8", "task.train_size=64", "task.eval_size=8",
            "algorithm.prompts_per_batch=2", "algorithm.group_size=4", "run.save_every=1", "run.eval_every=2",
            "run.tensorboard=false", "run.progress=false"]
VOLATILE = ("time", "tokens_per_s", "seconds", "time_rollout", "time_reward", "time_reference", "time_update",
            "time_iteration")  # wall-clock measurements
# The CLI with SFTLoop.step patched to SIGKILL the process as it is about to run step sys.argv[1] (the
# SFT checkpoint just started may still be being written in the background: a torn one is ignored).
SFT_KILLER = """
import os, signal, sys
from dlrl_jax import cli
from dlrl_jax.training import loop
kill_at, step = int(sys.argv[1]), loop.SFTLoop.step
def step_or_die(self):
    if self.step_index == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    step(self)
loop.SFTLoop.step = step_or_die
sys.exit(cli.main(sys.argv[2:]))
"""


def _args(out, iterations, *extra):
    args = ["train"]
    for s in SETTINGS + [f"run.out_dir={out}", f"run.iterations={iterations}"]:
        args += ["--set", s]
    return args + list(extra)


def _launch(out, iterations, *extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.Popen([sys.executable, "-m", "dlrl_jax.cli"] + _args(out, iterations, *extra), cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_in_sft(args, kill_at, every, keep):
    """Runs `dlrl-jax ARGS`, SIGKILLed as it is about to run SFT step `kill_at`, and checks the SFT
    checkpoints it left: at multiples of `every` up to the kill, the newest `keep` of them, each (but a
    newest one still being written) with its manifest. Returns their steps."""
    proc = subprocess.run([sys.executable, "-c", SFT_KILLER, str(kill_at)] + args, cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    out = next(a for a in args if a.startswith("run.out_dir=")).split("=", 1)[1]
    assert not os.path.exists(os.path.join(out, "summary.json"))
    folder = os.path.join(out, "checkpoints_sft")
    kept = sorted(int(n) for n in os.listdir(folder) if n.isdigit()) if os.path.isdir(folder) else []
    assert len(kept) <= keep and all(s % every == 0 and s <= kill_at for s in kept), kept
    # a save waits for the one before it: every save but the last one started has committed, manifest included
    committed = kill_at // every * every - every
    if committed > 0:
        assert committed in kept and os.path.exists(os.path.join(folder, str(committed), MANIFEST)), kept
    return kept


def _wait_for_checkpoint(proc, out, step, limit=240):
    deadline = time.time() + limit
    while not os.path.isdir(os.path.join(out, "checkpoints", str(step))):  # committed by an atomic rename
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "no checkpoint in time"
        time.sleep(0.2)


def _stable(records):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


# slow (about 2 min on 2 cores): test_sigterm_saves_and_exits_75_and_resume_rules resumes the same run in the suite
@pytest.mark.slow
def test_kill9_in_sft_and_in_rl_and_resume_is_bit_identical(tmp_path, capsys):
    full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
    kill_at = random.Random(26).randrange(2 * SFT_EVERY + 1, SFT_STEPS)  # after two SFT saves began
    kept = kill_in_sft(_args(killed, 5), kill_at, SFT_EVERY, KEEP)
    proc = _launch(killed, 5, "--resume")  # resumes SFT from the newest SFT checkpoint, then goes on into RL
    _wait_for_checkpoint(proc, killed, 3)
    proc.send_signal(signal.SIGKILL)
    log = proc.communicate()[0]
    assert f"resumed SFT at step {kept[-1]} of {SFT_STEPS}" in log, log
    assert not os.path.exists(os.path.join(killed, "summary.json"))  # it did not finish
    assert not os.path.exists(os.path.join(killed, "checkpoints_sft"))  # superseded by RL's first checkpoint
    # the uninterrupted run, without SFT checkpoints: saving one changes nothing of the run
    assert cli.main(_args(full, 5, "--set", "sft.save_every=0")) == 0
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

    # finding 2: `dlrl-jax sft` into the finished RL run's folder is refused by name, changing nothing
    before = {name: open(os.path.join(full, name), "rb").read() for name in ("metrics.jsonl", "config.json",
                                                                            "summary.json", "model/model.safetensors")}
    for extra in ([], ["--resume-or-start"]):
        args = _args(full, 5, *extra)
        args[0] = "sft"
        assert cli.main(args) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and f"run.out_dir {full} holds an RL run (egspo_sa)" in err[0], err
    assert "choose another run.out_dir" in err[0] and "dlrl-jax train --resume" in err[0]
    assert {name: open(os.path.join(full, name), "rb").read() for name in before} == before


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
    # finding 1: no threads while restoring is no reason to set a good checkpoint aside or drop rows
    metrics_before, steps_before = open(os.path.join(out, "metrics.jsonl")).read(), os.listdir(
        os.path.join(out, "checkpoints"))

    def no_threads(*_, **__):
        raise RuntimeError("can't start new thread")

    real_restore = TrainStateCheckpointer.restore
    TrainStateCheckpointer.restore = no_threads
    try:
        assert cli.main(_args(out, 200, "--resume")) == 75  # EX_TEMPFAIL: a launcher requeues it
    finally:
        TrainStateCheckpointer.restore = real_restore
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "temporary failure: restoring checkpoint step" in err, err
    assert "can't start new thread" in err and "nothing was moved or dropped" in err
    assert open(os.path.join(out, "metrics.jsonl")).read() == metrics_before
    assert os.listdir(os.path.join(out, "checkpoints")) == steps_before
    assert not os.path.exists(os.path.join(out, "checkpoints.unreadable"))
    # moved elsewhere, with one byte flipped inside an array file of its newest checkpoint: named, set
    # aside, and the run resumes there from the previous one
    moved = str(tmp_path / "moved")
    os.rename(out, moved)
    step_folder = os.path.join(moved, "checkpoints", str(stopped))
    victim = max((os.path.join(root, name) for root, _, names in os.walk(os.path.join(step_folder, "state"))
                  if os.path.basename(root) == "d" for name in names), key=os.path.getsize)  # array chunks
    data = bytearray(open(victim, "rb").read())
    data[len(data) // 3] ^= 0x20
    open(victim, "wb").write(bytes(data))
    assert cli.main(_args(moved, stopped, "--resume")) == 0
    log = capsys.readouterr().out
    [line] = [x for x in log.splitlines() if "unreadable" in x]
    assert f"checkpoint step {stopped} in {moved}" in line and "using the previous one" in line
    assert "fails its integrity check" in line and os.path.relpath(victim, step_folder) in line, line
    assert f"resumed from the checkpoint at iteration {stopped - 1}" in log
    assert [r["step"] for r in read_metrics(moved) if r["phase"] == "rl"] == list(range(stopped))
    assert os.listdir(os.path.join(moved, "checkpoints.unreadable"))[0].startswith(f"{stopped}-")
