"""On 8 fake CPU devices, meshes (8,1,1), (2,4,1), (2,2,2): one update of EGSPO, ESPO and diffu-GRPO
gives the single-device loss and parameters (<= 1e-5 relative). Runs in a fresh process because
the device count is fixed when JAX starts."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_sharded_updates_match_single_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-m", "tests.parallel.sharded_check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == 9
    for case, r in results.items():
        assert r["params"] <= 1e-5 and r["loss"] <= 1e-5, (case, r)
    assert all(r["sharded"] for case, r in results.items() if "(8, 1, 1)" not in case)
