"""On 8 fake CPU devices, meshes (data, fsdp, tensor) = (2,2,2) and, slow, (8,1,1) and (2,4,1): one update of
EGSPO, ESPO and diffu-GRPO gives the single-device loss and parameters (<= 1e-5 relative). Runs in a
fresh process because the device count is fixed when JAX starts."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# (2,2,2) shards rows (over data x fsdp), parameters (fsdp) and heads (tensor) at once. (8,1,1) (rows only)
# and (2,4,1) (wider fsdp) run nothing it does not, and cost 10-20 s of compiles each: they are slow.
@pytest.mark.parametrize("meshes", [("2,2,2",), pytest.param(("8,1,1", "2,4,1"), marks=pytest.mark.slow)],
                         ids=["all_axes", "data_only_and_fsdp4"])
def test_sharded_updates_match_single_device(meshes):
    xla_flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8"
    env = dict(os.environ, XLA_FLAGS=xla_flags, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-m", "tests.parallel.sharded_check", *meshes], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == 3 * len(meshes)
    for case, r in results.items():
        assert r["params"] <= 1e-5 and r["loss"] <= 1e-5, (case, r)
    assert all(r["sharded"] for case, r in results.items() if "(8, 1, 1)" not in case)  # (8,1,1): replicated
