"""`dlrl-jax train` on a (2, 2, 2) mesh of 8 fake CPU devices; its checkpoint restores bit-exactly onto
(2, 2, 2), (8, 1, 1) and one device, and the run resumes on another mesh (in a fresh process)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# slow (39 s); tests/parallel/test_sharded_update.py and test_sliced_load.py stay in the suite
@pytest.mark.slow
@pytest.mark.multiprocess
def test_train_on_a_mesh_and_restore_onto_others(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-m", "tests.parallel.mesh_train_check", str(tmp_path / "run")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert facts["devices"] == 8
    assert facts["(2, 2, 2)"] == {"equal": True, "devices_per_array": [8], "sharded": True, "iteration": 1}
    assert facts["(8, 1, 1)"] == {"equal": True, "devices_per_array": [8], "sharded": False, "iteration": 1}
    assert facts["(1, 1, 1)"] == {"equal": True, "devices_per_array": [1], "sharded": False, "iteration": 1}
    assert facts["rl_steps"] == [0, 1, 2, 3]  # iterations 0-1 on (2, 2, 2), 2-3 resumed on (8, 1, 1)
