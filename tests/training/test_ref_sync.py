"""algorithm.ref_sync_every / ref_sync_mix: TRL's SyncRefModelCallback (ESPO's full fine-tune of code:
every 64 optimizer steps, alpha 0.6): after every N-th optimizer step
ref <- alpha * policy + (1 - alpha) * ref (callbacks.py `target.mul_(1 - alpha).add_(model, alpha=alpha)`),
checked against numpy on the tiny model in a real RL loop."""

import jax
import numpy as np
import pytest

from dlrl_jax import config
from dlrl_jax.app.run import Run
from dlrl_jax.config import ConfigError
from dlrl_jax.training import loop


def _numpy(tree):
    return [np.asarray(x, np.float32) for x in jax.tree.leaves(tree)]


def test_sync_reference_is_the_trl_mixture():
    rng = np.random.default_rng(0)
    ref = {"a": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=5).astype(np.float32)}
    pol = {"a": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=5).astype(np.float32)}
    out = loop.sync_reference(ref, pol, 0.6)
    for k in ref:
        np.testing.assert_allclose(out[k], 0.4 * ref[k] + 0.6 * pol[k], rtol=1e-6)


def test_reference_follows_the_policy_every_n_optimizer_steps(tmp_path):
    # mu 2 updates per iteration, sync every 4 updates: none after iteration 1, one after iteration 2
    cfg = config.load(None, [f"run.out_dir={tmp_path}", "sft.steps=0", "task.train_size=16", "task.eval_size=4",
                             "algorithm.name=espo", "algorithm.prompts_per_batch=2", "algorithm.group_size=2",
                             "algorithm.mu=2", "algorithm.elbo_samples=1", "sampler.gen_length=8",
                             "sampler.block_length=8", "sampler.steps=4", "optim.learning_rate=0.01",
                             "algorithm.ref_sync_every=4", "algorithm.ref_sync_mix=0.6", "run.progress=false",
                             "run.tensorboard=false"])
    run = Run(cfg)
    rl = loop.RLLoop(run, run.params, run.reference(run.params), progress=False)
    ref0 = _numpy(rl.ref_params)
    rl.step()
    assert rl.optimizer_steps == 2
    for r, r0 in zip(_numpy(rl.ref_params), ref0):
        np.testing.assert_array_equal(r, r0)
    rl.step()
    assert rl.optimizer_steps == 4 and rl.meta()["optimizer_steps"] == 4
    moved = 0
    for r, r0, p in zip(_numpy(rl.ref_params), ref0, _numpy(rl.params)):
        np.testing.assert_allclose(r, 0.6 * p + 0.4 * r0, rtol=1e-5, atol=1e-7)
        moved += int(not np.array_equal(r, r0))
    assert moved > 0  # the policy did move, so the check above is not vacuous
    rl.close()
    run.writer.close()


def test_sync_needs_a_full_fine_tune_and_a_mix_in_range():
    with pytest.raises(ConfigError, match="ref_sync_every 64 needs a full fine-tune"):
        config.load(None, ["algorithm.ref_sync_every=64", "model.lora_rank=8"])
    with pytest.raises(ConfigError, match=r"ref_sync_mix must be in \(0, 1\]"):
        config.load(None, ["algorithm.ref_sync_mix=0"])
