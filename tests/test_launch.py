"""The launchers print (DRY_RUN=1) exactly the commands they would run; checked by parsing them the
way a shell would."""

import os
import shlex
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dry(script, *args, **env):
    out = subprocess.run(["bash", os.path.join(ROOT, "launch", script), *args], cwd=ROOT, capture_output=True,
                         text=True, env=dict(os.environ, DRY_RUN="1", **env), timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()


def test_single_gpu_resumes_and_passes_overrides():
    [line] = _dry("single_gpu.sh", "--set", "run.iterations=5", CONFIG="configs/paper/llada8b_gsm8k_egspo_sa.yaml")
    assert shlex.split(line) == ["XLA_PYTHON_CLIENT_MEM_FRACTION=0.95", "dlrl-jax", "train", "--config",
                                 "configs/paper/llada8b_gsm8k_egspo_sa.yaml", "--resume-or-start", "--set",
                                 "run.iterations=5"]


def test_slurm_runs_one_task_per_node_with_preemption_signal():
    [line] = _dry("slurm_gpu.sbatch", "--set", "mesh.fsdp=16", CONFIG="c.yaml", SLURM_JOB_NUM_NODES="2")
    assert shlex.split(line) == ["nodes=2", "srun", "--kill-on-bad-exit=1", "dlrl-jax", "train", "--config", "c.yaml",
                                 "--resume-or-start", "--set", "mesh.fsdp=16"]
    header = open(os.path.join(ROOT, "launch", "slurm_gpu.sbatch")).read()
    for directive in ("#SBATCH --ntasks-per-node=1", "#SBATCH --signal=TERM@120", "#SBATCH --requeue"):
        assert directive in header


@pytest.mark.parametrize("train_status,requeued,script_status", [(75, True, 0), (0, False, 0), (1, False, 1),
                                                                   (2, False, 2)])
def test_slurm_requeues_exactly_when_the_run_was_preempted(tmp_path, train_status, requeued, script_status):
    """The real script with stand-ins for SLURM's srun (records its arguments, exits as a training run
    would) and scontrol (records its arguments): status 75 requeues the job, any other is passed on."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, status in (("srun", train_status), ("scontrol", 0)):
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\necho "$0 $*" >> {tmp_path}/calls\nexit {status}\n')
        tool.chmod(0o755)
    env = dict(os.environ, CONFIG="c.yaml", SLURM_JOB_ID="4242", PATH=f"{bin_dir}:{os.environ['PATH']}")
    env.pop("DRY_RUN", None)
    out = subprocess.run(["bash", os.path.join(ROOT, "launch", "slurm_gpu.sbatch"), "--set", "run.iterations=3"],
                         cwd=ROOT, capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == script_status, out.stderr
    calls = [shlex.split(line) for line in (tmp_path / "calls").read_text().splitlines()]
    assert calls[0] == [str(bin_dir / "srun"), "--kill-on-bad-exit=1", "dlrl-jax", "train", "--config", "c.yaml",
                        "--resume-or-start", "--set", "run.iterations=3"]
    assert calls[1:] == ([[str(bin_dir / "scontrol"), "requeue", "4242"]] if requeued else [])


def test_tpu_pod_runs_the_same_command_on_every_worker():
    setup, train = _dry("tpu_pod.sh", "--set", "run.out_dir=gs://bucket/run one", TPU_NAME="my-v4-32",
                        ZONE="us-central2-b", CONFIG="configs/x y.yaml", SETUP="1", REPO="/opt/dlrl",
                        GIT_URL="https://example.org/dlrl_jax.git")
    for line in (setup, train):
        argv = shlex.split(line)
        assert argv[:10] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-v4-32", "--zone", "us-central2-b",
                             "--worker=all", "--command"]
    remote_setup = shlex.split(setup)[10]
    assert "git clone https://example.org/dlrl_jax.git /opt/dlrl" in remote_setup and "jax[tpu]" in remote_setup
    remote = shlex.split(shlex.split(train)[10].split("&&", 1)[1])  # what each worker's shell runs
    assert shlex.split(train)[10].startswith("cd /opt/dlrl &&")
    assert remote == ["dlrl-jax", "train", "--config", "configs/x y.yaml", "--resume-or-start", "--set",
                      "run.out_dir=gs://bucket/run one"]


@pytest.mark.parametrize("script,missing", [("single_gpu.sh", "CONFIG"), ("tpu_pod.sh", "TPU_NAME")])
def test_missing_settings_are_named(script, missing):
    env = {k: v for k, v in os.environ.items() if k not in ("CONFIG", "TPU_NAME", "ZONE")}
    out = subprocess.run(["bash", os.path.join(ROOT, "launch", script)], cwd=ROOT, capture_output=True, text=True,
                         env=dict(env, DRY_RUN="1"), timeout=30)
    assert out.returncode != 0 and missing in out.stderr
