"""`dlrl-jax train` as a real 2-process job on localhost (jax.distributed, gloo CPU collectives,
2 processes x 2 devices) gives the metrics and model of the same run in one process with 4 devices.
Slow (three fresh processes compile the whole run): `python -m pytest -m slow`."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETTINGS = ["sft.steps=2", "sft.batch_size=8", "task.train_size=64", "task.eval_size=8",
            "algorithm.prompts_per_batch=2", "algorithm.group_size=4", "run.iterations=2", "run.eval_every=0",
            "run.tensorboard=false", "run.progress=false"]


def _launch(out, devices, **env):
    args = [sys.executable, "-m", "dlrl_jax.cli", "train"]
    for s in SETTINGS + [f"run.out_dir={out}"]:
        args += ["--set", s]
    xla_flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags, **env)
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _metrics(out):
    return [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_process_training_matches_one_process(tmp_path):
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    multi, single = str(tmp_path / "multi"), str(tmp_path / "single")
    procs = [_launch(multi, 2, DLRL_COORDINATOR=f"localhost:{port}", DLRL_NUM_PROCESSES="2", DLRL_PROCESS_ID=str(i))
             for i in range(2)]
    procs.append(_launch(single, 4))
    for p in procs:
        out, _ = p.communicate(timeout=1200)
        assert p.returncode == 0, out[-3000:]
    a, b = _metrics(multi), _metrics(single)
    assert [(r["phase"], r["step"]) for r in a] == [(r["phase"], r["step"]) for r in b]
    for x, y in zip(a, b):
        if x["phase"] in ("rl", "eval"):
            assert x.get("reward_mean", x.get("reward")) == y.get("reward_mean", y.get("reward"))  # same samples
        for key in ("loss", "grad_norm", "kl"):
            if key in x:
                np.testing.assert_allclose(x[key], y[key], rtol=1e-4, atol=1e-6, err_msg=f"{x['phase']} {key}")
    pa, pb = load_file(os.path.join(multi, "model", "model.safetensors")), load_file(
        os.path.join(single, "model", "model.safetensors"))
    for name in pa:
        np.testing.assert_allclose(pa[name], pb[name], rtol=1e-4, atol=1e-6, err_msg=name)
    assert os.path.isdir(os.path.join(multi, "checkpoints", "2"))  # Orbax saved across both processes
