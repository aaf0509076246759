"""SFT like RL (issue 26): `kill -9` at a seeded random SFT step, then `--resume`, gives metrics rows
and model bytes identical to an SFT run that was never interrupted; the SFT checkpoints kept are the
newest `run.keep_checkpoints` of every `sft.save_every` steps, each with a manifest. A run folder holds
one kind of run: `train` into a finished SFT run's folder is refused by name, changing nothing."""

import os
import random
import signal
import subprocess
import sys

import pytest

from dlrl_jax import cli
from dlrl_jax.app.metrics import read_metrics
from dlrl_jax.checkpoints.manifest import MANIFEST, verify_manifest
from tests.training.test_preemption import _same_weights, _stable

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS, EVERY, KEEP = 12, 3, 2
SETTINGS = [f"sft.steps={STEPS}", f"sft.save_every={EVERY}", "sft.batch_size=8", "task.train_size=64",
            "task.eval_size=8", f"run.keep_checkpoints={KEEP}", "run.tensorboard=false", "run.progress=false"]
# The CLI with SFTLoop.step patched to SIGKILL the process when it is about to run step KILL_AT (the
# checkpoint of an earlier step may still be being written in the background: a torn one is ignored).
KILLER = """
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


def _args(command, out, *extra):
    args = [command]
    for s in SETTINGS + [f"run.out_dir={out}"]:
        args += ["--set", s]
    return args + list(extra)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("sft") / "full")
    assert cli.main(_args("sft", out)) == 0
    assert not os.path.exists(os.path.join(out, "checkpoints_sft"))  # dropped once the run is done
    return out


def _kill_and_resume(out, kill_at):
    """Runs SFT into `out`, killed at `kill_at`, checks what it left and resumes it; returns the step it
    resumed from (None: no checkpoint had committed yet, and the run started again)."""
    proc = subprocess.run([sys.executable, "-c", KILLER, str(kill_at)] + _args("sft", out), cwd=ROOT,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not os.path.exists(os.path.join(out, "summary.json"))
    folder = os.path.join(out, "checkpoints_sft")
    kept = sorted(int(n) for n in os.listdir(folder) if n.isdigit()) if os.path.isdir(folder) else []
    # every sft.save_every steps up to the kill, the newest KEEP of them (the newest save may not have
    # committed: it is written in the background while SFT goes on)
    assert len(kept) <= KEEP and all(s % EVERY == 0 and s <= kill_at for s in kept), kept
    for step in kept[:-1]:  # (the newest's manifest may have been cut off by the kill)
        assert os.path.exists(os.path.join(folder, str(step), MANIFEST))
    assert cli.main(_args("sft", out, "--resume" if kept else "--resume-or-start")) == 0
    return kept[-1] if kept else None


def test_kill9_at_a_random_sft_step_resumes_bit_identically(tmp_path, uninterrupted, capsys):
    kill_at = random.Random(26).randrange(EVERY + 1, STEPS)  # a step after at least one checkpoint
    out = str(tmp_path / "killed")
    resumed_from = _kill_and_resume(out, kill_at)
    if resumed_from is not None:
        assert f"resumed SFT at step {resumed_from} of {STEPS}" in capsys.readouterr().out
    assert _stable(read_metrics(out)) == _stable(read_metrics(uninterrupted))
    assert [r["step"] for r in read_metrics(out) if r["phase"] == "sft"] == [0, 10, 11]
    _same_weights(uninterrupted, out)
    # the run's model/ export is listed whole (weights, config and tokenizer files) in its manifest
    listed = [line.split("  ")[1] for line in open(os.path.join(out, "model", MANIFEST))]
    assert "model.safetensors\n" in listed and "config.json\n" in listed and len(listed) > 2
    assert verify_manifest(os.path.join(out, "model"))

    # finding 2: `train` into the finished SFT run's folder is refused, naming it and the fix
    before = {name: open(os.path.join(out, name), "rb").read() for name in ("metrics.jsonl", "config.json",
                                                                           "summary.json")}
    assert cli.main(_args("train", out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"run.out_dir {out} holds an SFT run" in err, err
    assert "choose another run.out_dir" in err and "dlrl-jax sft --resume" in err
    assert cli.main(_args("train", out, "--resume-or-start")) == 2
    assert {name: open(os.path.join(out, name), "rb").read() for name in before} == before
    _same_weights(uninterrupted, out)


@pytest.mark.slow  # three more interrupted runs (a minute or two on 2 cores): `pytest -m slow`
@pytest.mark.parametrize("seed", [1, 2, 5])  # kill at steps 3 (as its save starts), 1 (none yet), 10
def test_kill9_at_more_random_sft_steps(tmp_path, uninterrupted, seed):
    kill_at = random.Random(seed).randrange(1, STEPS)  # also before the first checkpoint
    out = str(tmp_path / "killed")
    _kill_and_resume(out, kill_at)
    assert _stable(read_metrics(out)) == _stable(read_metrics(uninterrupted))
    _same_weights(uninterrupted, out)
