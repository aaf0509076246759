"""The update never lets a non-finite loss or gradient reach the parameters."""

import jax
import jax.numpy as jnp
import numpy as np

from dlrl_jax.training.optimizer import OptimizerSettings, make_optimizer
from dlrl_jax.training.update import make_update


def test_nan_loss_leaves_params_and_moments_unchanged():
    params = {"w": jnp.arange(4.0), "attn_norm": jnp.ones(2)}
    tx = make_optimizer(OptimizerSettings(learning_rate=0.1))

    def loss_fn(p, item):
        loss = jnp.sum(p["w"] * item["x"]) + jnp.sum(p["attn_norm"]) * jnp.log(item["scale"])
        return loss, {"n": jnp.float32(1.0)}

    update = make_update(loss_fn, tx)
    good = {"x": jnp.ones((2, 4)), "scale": jnp.ones((2,))}
    p1, state, m = update(jax.tree.map(jnp.copy, params), tx.init(params), good)
    assert float(m["skipped"]) == 0.0 and float(m["n"]) == 2.0
    assert not np.allclose(p1["w"], params["w"])
    bad = {"x": jnp.ones((2, 4)), "scale": jnp.array([1.0, -1.0])}  # log(-1) = NaN
    before = jax.tree.map(np.asarray, p1)
    p2, _, m = update(p1, state, bad)
    assert float(m["skipped"]) == 1.0 and not np.isfinite(float(m["loss"]))
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, p2), before)
