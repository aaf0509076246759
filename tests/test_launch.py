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
                                 "configs/paper/llada8b_gsm8k_egspo_sa.yaml", "--resume", "--set", "run.iterations=5"]


def test_slurm_runs_one_task_per_node_with_preemption_signal():
    [line] = _dry("slurm_gpu.sbatch", "--set", "mesh.fsdp=16", CONFIG="c.yaml", SLURM_JOB_NUM_NODES="2")
    assert shlex.split(line) == ["nodes=2", "srun", "--kill-on-bad-exit=1", "dlrl-jax", "train", "--config", "c.yaml",
                                 "--resume", "--set", "mesh.fsdp=16"]
    header = open(os.path.join(ROOT, "launch", "slurm_gpu.sbatch")).read()
    for directive in ("#SBATCH --ntasks-per-node=1", "#SBATCH --signal=TERM@120", "#SBATCH --requeue"):
        assert directive in header


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
    assert remote == ["dlrl-jax", "train", "--config", "configs/x y.yaml", "--resume", "--set",
                      "run.out_dir=gs://bucket/run one"]


@pytest.mark.parametrize("script,missing", [("single_gpu.sh", "CONFIG"), ("tpu_pod.sh", "TPU_NAME")])
def test_missing_settings_are_named(script, missing):
    env = {k: v for k, v in os.environ.items() if k not in ("CONFIG", "TPU_NAME", "ZONE")}
    out = subprocess.run(["bash", os.path.join(ROOT, "launch", script)], cwd=ROOT, capture_output=True, text=True,
                         env=dict(env, DRY_RUN="1"), timeout=30)
    assert out.returncode != 0 and missing in out.stderr
