"""SFT like RL (issue 26), more kill points than the suite's case (tests/training/test_resume.py kills
one run at a seeded random SFT step, then in RL): an SFT-only run (`dlrl-jax sft`) killed with SIGKILL
at seeded random SFT steps (before its first checkpoint, as a save starts, late) and resumed gives
metrics rows and model bytes identical to an uninterrupted one; its model/ export is listed whole in
its manifest."""

import os
import random

import pytest

from dlrl_jax import cli
from dlrl_jax.app.metrics import read_metrics
from dlrl_jax.folders.manifest import MANIFEST, verify_manifest
from tests.training.test_preemption import _same_weights, _stable
from tests.training.test_resume import kill_in_sft

STEPS, EVERY, KEEP = 12, 3, 2
SETTINGS = [f"sft.steps={STEPS}", f"sft.save_every={EVERY}", "sft.batch_size=8", "task.train_size=64",
            "task.eval_size=8", f"run.keep_checkpoints={KEEP}", "run.tensorboard=false", "run.progress=false"]


def _args(out, *extra):
    args = ["sft"]
    for s in SETTINGS + [f"run.out_dir={out}"]:
        args += ["--set", s]
    return args + list(extra)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("sft") / "full")
    assert cli.main(_args(out, "--set", "sft.save_every=0")) == 0  # no SFT checkpoint: saving changes nothing
    assert not os.path.exists(os.path.join(out, "checkpoints_sft"))
    return out


@pytest.mark.slow  # an uninterrupted SFT run and three interrupted ones (minutes on 2 cores): `pytest -m slow`
@pytest.mark.parametrize("seed", [1, 2, 5])  # kill at steps 3 (as its save starts), 1 (none yet), 10
def test_kill9_at_random_sft_steps_resumes_bit_identically(tmp_path, uninterrupted, seed, capsys):
    kill_at = random.Random(seed).randrange(1, STEPS)
    out = str(tmp_path / "killed")
    kept = kill_in_sft(_args(out), kill_at, EVERY, KEEP)
    assert cli.main(_args(out, "--resume" if kept else "--resume-or-start")) == 0  # (none committed: it starts)
    if kept:
        assert f"resumed SFT at step {kept[-1]} of {STEPS}" in capsys.readouterr().out
    assert _stable(read_metrics(out)) == _stable(read_metrics(uninterrupted))
    assert [r["step"] for r in read_metrics(out) if r["phase"] == "sft"] == [0, 10, 11]
    _same_weights(uninterrupted, out)
    # the run's model/ export is listed whole (weights, config and tokenizer files) in its manifest
    listed = [line.rstrip("\n").split("  ")[1] for line in open(os.path.join(out, "model", MANIFEST))]
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(listed)
    assert verify_manifest(os.path.join(out, "model"))
