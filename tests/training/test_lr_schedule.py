"""optim.schedule: the learning rate each optimizer step applies, read back from the parameters.

Under a constant gradient, AdamW's bias-corrected moments are m_hat = g and v_hat = g^2, so one step
moves a parameter by -lr_t * g / (|g| + eps) = -lr_t (eps 1e-8, weight decay 0): the steps' parameter
differences are the schedule itself. The oracle is transformers' cosine_with_min_lr formula written
out in numpy (get_cosine_with_min_lr_schedule_with_warmup, num_cycles 0.5), clamped after its end."""

import math

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlrl_jax import config as config_lib
from dlrl_jax.config_error import ConfigError
from dlrl_jax.training.algorithm_settings import AlgorithmSection
from dlrl_jax.training.optimizer import OptimizerSettings, make_optimizer, rl_optimizer_settings


def _transformers_cosine_with_min_lr(step, peak, warmup, total, min_lr_rate):
    if step < warmup:
        return peak * step / max(1, warmup)
    progress = min((step - warmup) / max(1, total - warmup), 1.0)
    factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    return peak * (factor * (1.0 - min_lr_rate) + min_lr_rate)


def _applied_learning_rates(settings: OptimizerSettings, steps: int) -> np.ndarray:
    tx = make_optimizer(settings)
    params = {"w": jnp.zeros((3,), jnp.float32)}
    state = tx.init(params)
    grads = {"w": jnp.asarray([0.5, -2.0, 1.0], jnp.float32)}
    rates = []
    for _ in range(steps):
        updates, state = tx.update(grads, state, params)
        new = optax.apply_updates(params, updates)
        # -lr * sign(g) per coordinate: read lr back from each, they must agree (to the float32 rounding of
        # parameters below 0.02: a few 1e-9, on any CPU)
        moved = np.asarray(new["w"] - params["w"], np.float64) * -np.sign(np.asarray(grads["w"]))
        assert np.allclose(moved, moved[0], rtol=0, atol=1e-8)
        rates.append(moved[0])
        params = new
    return np.asarray(rates)


@pytest.mark.parametrize("warmup", [0, 3])
def test_cosine_schedule_matches_transformers_cosine_with_min_lr(warmup):
    s = OptimizerSettings(learning_rate=1e-3, warmup_steps=warmup, weight_decay=0.0, grad_clip=0.0,
                          schedule="cosine", decay_steps=12, min_lr_ratio=0.1)
    applied = _applied_learning_rates(s, 15)
    expected = np.asarray([_transformers_cosine_with_min_lr(t, 1e-3, warmup, 12, 0.1) for t in range(15)])
    if warmup == 0:  # no warmup: the first step is at the peak (transformers: factor 1 at progress 0)
        assert applied[0] == pytest.approx(1e-3, rel=1e-5)
    # float32 parameters: each difference is exact to a few ulps of the parameter's magnitude (<= 1e-2)
    np.testing.assert_allclose(applied, expected, rtol=0, atol=1e-8)
    assert applied[-1] == pytest.approx(1e-4, rel=1e-4)  # held at min_lr_ratio x peak after decay_steps


def test_constant_schedule_keeps_the_peak_after_its_warmup():
    s = OptimizerSettings(learning_rate=1e-3, warmup_steps=2, weight_decay=0.0, grad_clip=0.0)
    np.testing.assert_allclose(_applied_learning_rates(s, 5), [0.0, 5e-4, 1e-3, 1e-3, 1e-3], rtol=0, atol=1e-8)


def test_cosine_decays_over_the_runs_optimizer_steps():
    a = AlgorithmSection(name="egspo_sa", k=4, columns_per_update=2, mu=1)
    cfg = config_lib.from_dict({"optim": {"schedule": "cosine"}, "run": {"iterations": 10}, "algorithm": {"k": 4}})
    s = rl_optimizer_settings(cfg.optim, a, cfg.run.iterations, stepwise=True)
    assert (s.schedule, s.decay_steps, s.min_lr_ratio) == ("cosine", 10 * 2, 0.1)  # 4 columns in 2 steps / iteration
    s = rl_optimizer_settings(cfg.optim, AlgorithmSection(name="espo", mu=3), 10, stepwise=False)
    assert s.decay_steps == 30


def test_bad_schedule_settings_are_named():
    with pytest.raises(ConfigError, match="optim.schedule"):
        config_lib.from_dict({"optim": {"schedule": "linear"}})
    with pytest.raises(ConfigError, match="optim.min_lr_ratio"):
        config_lib.from_dict({"optim": {"min_lr_ratio": 1.5}})
    with pytest.raises(ValueError, match="decay_steps"):
        make_optimizer(OptimizerSettings(schedule="cosine", warmup_steps=5, decay_steps=5))
