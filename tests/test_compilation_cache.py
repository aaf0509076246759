"""The `dlrl-jax` commands turn JAX's persistent compilation cache on by default (issue 19)."""

import os
import subprocess
import sys

PROBE = """
import os, sys
import jax, jax.numpy as jnp
from dlrl_jax.cli import enable_compilation_cache
folder = enable_compilation_cache()
print(folder)
jax.jit(lambda x: jnp.sin(x) * 3.0)(jnp.arange(5.0)).block_until_ready()
"""


def _probe(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION_CACHE", "DLRL_JAX_COMP",
                                                                      "XDG_CACHE"))}
    done = subprocess.run([sys.executable, "-c", PROBE], env=dict(base, HOME=str(tmp_path), JAX_PLATFORMS="cpu", **env),
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip().splitlines()[-1]


def _entries(folder):
    return [f for _, _, files in os.walk(folder) for f in files] if os.path.isdir(folder) else []


def test_default_folder_fills_with_compiled_programs(tmp_path):
    folder = _probe(tmp_path)
    assert folder == str(tmp_path / ".cache" / "dlrl_jax" / "jax")
    assert _entries(folder), "a jitted program compiled under the CLI's defaults left nothing in the cache"


def test_existing_jax_setting_wins_and_off_switch(tmp_path):
    mine = tmp_path / "mine"
    assert _probe(tmp_path, JAX_COMPILATION_CACHE_DIR=str(mine)) == str(mine)
    assert _probe(tmp_path, DLRL_JAX_COMPILATION_CACHE="0") == "None"
    assert not _entries(tmp_path / ".cache" / "dlrl_jax" / "jax")
    other = tmp_path / "other"
    assert _probe(tmp_path, DLRL_JAX_COMPILATION_CACHE=str(other)) == str(other) and _entries(other)
