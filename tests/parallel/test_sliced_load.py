"""HF checkpoints load straight onto a mesh: each shard read from its own block of the safetensors
(a fraction of each weight per read), bit-identical to the plain load (fresh 8-device process)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.multiprocess
def test_sliced_loading_onto_meshes():
    proc = subprocess.run([sys.executable, "-m", "tests.parallel.sliced_load_check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(facts) == 6
    for name, f in facts.items():
        assert f["equal"] and f["on_mesh"] and f["sharded"] >= 9, name
    # fsdp x tensor = 4 or 8 devices split the MLP weight: no read takes more than that share of it
    assert facts["llada (2, 2, 2)"]["w_up_read_fraction"] == 0.25
    assert facts["llada (1, 8, 1)"]["w_up_read_fraction"] == 0.125
