"""Test-session settings: JAX on the CPU, and one persistent compilation cache for the whole session.

Many tests (and the `dlrl-jax` subprocesses they start, which inherit the environment) compile the
same tiny programs again: the resume test runs one config three times, the end-to-end tests share
shapes. A session-wide cache turns those recompiles into loads; it starts empty, so every test still
compiles what it needs at least once and nothing leaks between sessions."""

import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="dlrl_jax_test_cache_")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    # No size limit: with one, JAX's LRU cache takes a file lock and, on every write, stats every entry
    # and reads its access-time file to choose what to evict. The suite writes thousands of entries, so
    # each compile late in the session paid a directory scan: the suite ran 1,174 s instead of ~750 s
    # (2-core AMD EPYC, 2026-12-07). Without the lock a process can read an entry another is still
    # writing; JAX then warns and compiles that program itself (compiler.py catches the read's error).

# Implicit rank promotion (adding [B] to [B, G] and the like) is an error in tests, as in nanodo: every
# broadcast in the library is written out. The environment variable reaches `dlrl-jax` subprocesses.
os.environ["JAX_NUMPY_RANK_PROMOTION"] = "raise"

# XLA:CPU with LLVM's cheap passes. The suite's programs are tiny, so compiling them is most of its time,
# and these flags take a sixth of the suite's time off (measured on the 2-core AMD EPYC, 2026-12-07).
# They compile the same operations, vectorised differently, so values move only by summation order: the
# golden values hold (tests/training/test_golden_iteration.py's tolerances are for that), and every suite
# run checks them at another order than the one they were taken at. The test processes' own children
# (the CLI runs, the fake-device and two-process checks) inherit the flags: they append to XLA_FLAGS.
FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAGS}".strip()

import jax  # noqa: E402  (after the environment above, which JAX reads on import)

jax.config.update("jax_numpy_rank_promotion", "raise")


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny LLaDA-layout model folder (seed 3) with the character tokenizer, one per test module: the
    CLI tests write their results beside it (eval's default MODEL/eval), so modules do not share it."""
    from dlrl_jax import checkpoints, models
    from dlrl_jax.models.tokenizer import write_char_tokenizer

    path = tmp_path_factory.mktemp("tiny") / "model"
    checkpoints.save_pretrained(models.init_model(models.preset("tiny"), seed=3), str(path))
    write_char_tokenizer(str(path))
    return str(path)
