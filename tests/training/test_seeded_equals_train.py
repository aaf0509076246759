"""One engine: the seeded program (app/seeded.py, `jit(train)` for one seed) gives what `dlrl-jax
train` (app/train.py: the loop, its metrics file) gives for the same config and seed, algorithm by
algorithm: the SFT losses, every RL iteration's rewards, loss, gradient norm and the loss's other
metrics, and the held-out greedy reward and solved rate before, during and after RL.

The oracle is the real `dlrl-jax train` run, written to its run folder and read back from
metrics.jsonl. The two are different XLA programs (the loop jits its pieces one by one; the seeded run
is one program), so floats agree to float32 rounding, not bit for bit: losses and norms are means of
O(1) terms, held to 1e-5 of their scale (relative and absolute, as tests/training/test_seeded.py
holds the vmapped program to the single one). Rewards are exact as long as every sampled token is the
same; a flip would move a reward by a whole cell's share, far outside the tolerance, and the run is
too short (2 iterations) for float32 rounding to reach a Gumbel-max tie in practice.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlrl_jax import config
from dlrl_jax.app import seeded
from dlrl_jax.app.metrics import read_metrics
from dlrl_jax.app.train import train as dlrl_train

# The shapes of tests/training/test_end_to_end.py (the loop's programs then come from the suite's
# compilation cache for EGSPO-SA): 64 training / 16 held-out puzzles, SFT 3 steps of 8, 2 prompts x 4.
TINY = ["task.train_size=64", "task.eval_size=16", "sft.steps=3", "sft.batch_size=8", "algorithm.prompts_per_batch=2",
        "algorithm.group_size=4", "run.iterations=2", "run.eval_every=1", "run.progress=false",
        "run.tensorboard=false", "run.keep_checkpoints=1"]
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
# what the loop's metrics rows hold that the seeded program does not compute (host clocks, EGSPO's
# host-side K and step histogram)
HOST_ONLY = {"k", "tokens_per_s", "selected_histogram"}


def _close(actual, expected, what, atol=1e-5):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64), rtol=1e-5, atol=atol,
                               err_msg=what)


# Held-out greedy scores after RL steps are discrete: the two programs' parameters differ by float32
# rounding (the CPU decides how much), and a near-tie in greedy decoding can then flip one cell of one
# puzzle, which moves the mean reward of 16 puzzles by 1/(16 x blanks) <= 1/64 and the solved rate by
# 1/16. Allowed: one such flip (seen on a 2-core AMD EPYC on 2026-12-07: 0.2617 vs 0.2539 after wd1).
HELD_OUT_ATOL = {"reward": 1 / 64 + 1e-6, "solved": 1 / 16 + 1e-6}


def _compare(tmp_path, overrides):
    cfg = config.load(None, TINY + [f"run.out_dir={tmp_path / 'run'}"] + overrides)
    dlrl_train(cfg, log=lambda *_: None)
    rows = read_metrics(str(tmp_path / "run"))

    train = seeded.make_train(cfg)
    data = seeded.seed_data(cfg, cfg.seed)
    seed = jnp.int32(cfg.seed)
    out = jax.jit(train).lower(seed, data).compile(FAST_COMPILE)(seed, data)

    sft = {r["step"]: r["loss"] for r in rows if r["phase"] == "sft"}
    if cfg.sft.steps:
        assert sorted(sft) == [0, cfg.sft.steps - 1]
    for step, loss in sft.items():
        _close(out["sft_loss"][step], loss, f"SFT loss at step {step}")

    rl = [r for r in rows if r["phase"] == "rl"]
    assert [r["step"] for r in rl] == list(range(cfg.run.iterations))
    names = (set(out["rl"]) & set(rl[0])) - HOST_ONLY
    assert {"reward_mean", "reward_std", "loss", "grad_norm", "zero_variance_fraction"} <= names
    missing = {n for n in out["rl"] if n not in rl[0]} - {"solved"}  # the loop logs no training solved rate
    assert not missing, f"the seeded program reports {missing}, which the loop does not"
    for r in rl:
        for name in sorted(names):
            _close(np.asarray(out["rl"][name])[r["step"]], r[name], f"RL iteration {r['step']}: {name}")

    evals = [r for r in rows if r["phase"] == "eval"]
    before = evals[-2 - len(seeded.eval_iterations(cfg))]  # the evaluation before RL (after SFT)
    for name in ("reward", "solved"):
        _close(out["eval_before"][name], before[name], f"held-out {name} before RL")
        _close(out["eval_after"][name], evals[-1][name], f"held-out {name} after RL", HELD_OUT_ATOL[name])
        for i, step in enumerate(seeded.eval_iterations(cfg)):
            during = next(r for r in evals if r["step"] == step)
            _close(out["eval"][name][i], during[name], f"held-out {name} at iteration {step}", HELD_OUT_ATOL[name])
    return out, rl


# slow, every case (egspo_sa: about 50 s on 2 cores, a whole run compiled as one program; the suite ran over
# 15 minutes on a 2-core AMD EPYC with them): the seeded program is built from the pieces of `dlrl-jax train`
# (app/seeded.py), which the suite tests one by one
@pytest.mark.parametrize("algorithm", [pytest.param("egspo_sa", marks=pytest.mark.slow),
                                       pytest.param("wd1", marks=pytest.mark.slow),
                                       pytest.param("egspo", marks=pytest.mark.slow),
                                       pytest.param("espo", marks=pytest.mark.slow),
                                       pytest.param("diffu_grpo", marks=pytest.mark.slow)])
def test_seeded_program_equals_dlrl_jax_train(tmp_path, algorithm):
    extra = {"espo": ["algorithm.elbo_samples=1", "algorithm.beta=0.01"],
             "diffu_grpo": ["algorithm.eps_low=0.5"], "wd1": ["algorithm.beta=0.01"]}.get(algorithm, [])
    out, rl = _compare(tmp_path, [f"algorithm.name={algorithm}"] + extra)
    assert np.all(np.isfinite(np.asarray(out["rl"]["loss"])))


# slow (over a minute on 2 cores): the seeded program's equality with `dlrl-jax train` stays in the suite (egspo_sa)
@pytest.mark.slow
def test_what_the_seeded_program_no_longer_refuses(tmp_path, model_dir):
    """A model folder as the start (no SFT; handed in as SeedData.init_params), the approximate KV cache
    in the training rollouts and reference syncing (each refused before the one-engine rebuild):
    still the same run as `dlrl-jax train`."""
    out, rl = _compare(tmp_path, [f"model.path={model_dir}", "sft.steps=0", "algorithm.name=diffu_grpo",
                                  "algorithm.eps_low=0.5", "algorithm.beta=0.04", "sampler.cache=prefix",
                                  "sampler.block_length=8", "algorithm.ref_sync_every=1",
                                  "algorithm.ref_sync_mix=0.5"])
    assert out["sft_loss"].shape == (0,)
    # the policy moves only where a group's rewards differ (from this random folder they are often all
    # equal, how often depends on the CPU's rounding); once it has moved, the synced reference lags it
    if any(r["zero_variance_fraction"] < 1.0 for r in rl[:-1]):
        assert any(r["kl"] > 0 for r in rl[1:])  # the reference moved with the policy, and the KL sees it
