"""An objective registered from outside the package, as README's "Adding an objective" says but without
editing dlrl_jax: config validation takes `algorithm.name`'s choices from the registry, so it accepts
the new name, and the RL loop runs one post-reward update through the objective's `prepare` and `loss`.

The objective is linear in the parameters, loss = -(1 + mean reward) x (the sum of every weight), so
the update can be worked by hand: with no weight decay, clipping or warm-up, AdamW's first step moves a
weight by lr x m / (sqrt(v) + eps) with m = g and v = g^2 after bias correction, i.e. by
lr x |g| / (|g| + eps) in the direction of -g; here g = -(1 + mean reward) for every weight, |g| >= 1,
so every weight rises by lr to within 1e-8 of it. The rewards the objective read are compared with
those the loop scored on the host (seen through tests/training/observe.py)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from dlrl_jax import config
from dlrl_jax.app.run import Run
from dlrl_jax.config import ConfigError
from dlrl_jax.training import loop
from dlrl_jax.training.algorithms import ALGORITHMS, Algorithm, AlgorithmSpec
from dlrl_jax.training.items import Item
from tests.training.observe import observe_iterations

NAME = "outside_linear"
LEARNING_RATE = 1e-3


@struct.dataclass
class RewardItem(Item):
    reward: jax.Array  # [B] float32: the rollout's rewards

    SHAPES = {"reward": ("B",)}


def make_linear(context) -> Algorithm:
    rows = context.rows

    def prepare(params, ref_params, batch, reward_B, selection, update_index, k, seed=None):
        """One optimizer step of one item: [mu = 1, micro-batches = 1, B]."""
        return RewardItem(reward=reward_B.reshape(1, 1, rows)), {"reward_seen_max": reward_B.max()}

    def loss(params, item):
        weight = 1.0 + item["reward"].sum() / rows
        total = sum(jnp.sum(leaf.astype(jnp.float32)) for leaf in jax.tree.leaves(params))
        return -weight * total, {"count": jnp.float32(rows), "reward_seen": item["reward"].sum()}

    return Algorithm(loss=loss, prepare=prepare)


def _config(out_dir):
    return config.load(None, [f"algorithm.name={NAME}", f"run.out_dir={out_dir}", "sft.steps=0",
                              "task.train_size=16", "task.eval_size=4", "algorithm.prompts_per_batch=2",
                              "algorithm.group_size=2", "algorithm.mu=1", "algorithm.micro_batches=1",
                              "sampler.gen_length=8", "sampler.block_length=8", "sampler.steps=4",
                              f"optim.learning_rate={LEARNING_RATE}", "optim.weight_decay=0", "optim.grad_clip=0",
                              "optim.warmup_steps=0", "run.progress=false", "run.tensorboard=false"])


def test_an_objective_registered_from_outside_is_accepted_and_runs_one_update(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=f"'algorithm.name' is '{NAME}'; choose one of"):
        _config(tmp_path)
    monkeypatch.setitem(ALGORITHMS, NAME, AlgorithmSpec(make_linear, "a linear test objective"))  # undone after
    cfg = _config(tmp_path)
    assert cfg.algorithm.name == NAME
    run = Run(cfg)
    rl = loop.RLLoop(run, run.params, run.reference(run.params), progress=False)
    seen = []
    observe_iterations(rl, lambda rl, traj, reward, selection, k: seen.append(np.asarray(reward, np.float64)))
    before = [np.asarray(x, np.float64) for x in jax.tree.leaves(rl.params)]  # host copies: the update donates
    metrics = rl.step()
    after = [np.asarray(x, np.float64) for x in jax.tree.leaves(rl.params)]
    rl.close()
    run.writer.close()

    (reward,) = seen
    assert reward.shape == (4,)
    np.testing.assert_allclose(metrics["reward_seen"], reward.mean(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(metrics["reward_seen_max"], reward.max(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(metrics["loss"], -(1.0 + reward.mean()) * sum(x.sum() for x in before), rtol=1e-5)
    assert rl.optimizer_steps == 1
    for b, a in zip(before, after):  # every weight up by lr (float32 rounding of weights up to ~1: 1e-6)
        np.testing.assert_allclose(a - b, LEARNING_RATE, rtol=0, atol=1e-6)


@dataclasses.dataclass(frozen=True)
class ScaledSettings:
    """The outside objective's own settings: a registered objective brings its struct, the config
    validates `algorithm.settings` into it."""

    scale: float = 1.0
    note: str = "none"


def make_scaled(context) -> Algorithm:
    """The linear objective times `settings.scale` (read from the context, as a built-in reads its fields)."""
    linear, scale = make_linear(context), context.algorithm.settings.scale

    def loss(params, item):
        value, sums = linear.loss(params, item)
        return scale * value, sums

    return Algorithm(loss=loss, prepare=linear.prepare)


def test_an_objective_registered_from_outside_brings_its_own_settings(tmp_path, monkeypatch):
    monkeypatch.setitem(ALGORITHMS, NAME, AlgorithmSpec(make_scaled, "a scaled linear test objective",
                                                        settings=ScaledSettings))
    assert _config(tmp_path).algorithm.settings == ScaledSettings()  # the struct's defaults
    with pytest.raises(ConfigError, match=r"unknown config key 'algorithm.settings.scael'; did you mean 'scale'\?"):
        config.load(None, [f"algorithm.name={NAME}", "algorithm.settings.scael=2"])
    with pytest.raises(ConfigError, match="config field 'algorithm.settings.scale' must be a number"):
        config.load(None, [f"algorithm.name={NAME}", "algorithm.settings.scale=big"])
    with pytest.raises(ConfigError, match="algorithm.settings: egspo takes no settings of its own"):
        config.load(None, ["algorithm.name=egspo", "algorithm.settings.scale=2"])

    cfg = config.from_dict(config.to_dict(_config(tmp_path)), ["algorithm.settings.scale=2.5"])
    assert cfg.algorithm.settings == ScaledSettings(scale=2.5) and config.to_dict(cfg)["algorithm"]["settings"] == {
        "scale": 2.5, "note": "none"}  # what config.json holds, and reads back
    assert config.from_dict(config.to_dict(cfg)) == cfg
    run = Run(cfg)
    rl = loop.RLLoop(run, run.params, run.reference(run.params), progress=False)
    seen = []
    observe_iterations(rl, lambda rl, traj, reward, selection, k: seen.append(np.asarray(reward, np.float64)))
    before = [np.asarray(x, np.float64) for x in jax.tree.leaves(rl.params)]
    metrics = rl.step()
    rl.close()
    run.writer.close()
    (reward,) = seen
    np.testing.assert_allclose(metrics["loss"], -2.5 * (1.0 + reward.mean()) * sum(x.sum() for x in before), rtol=1e-5)
