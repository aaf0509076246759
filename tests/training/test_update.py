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


def test_memory_analysis_counts_the_arguments_it_is_given():
    from dlrl_jax.training.update import memory_analysis

    params = {"w": jnp.zeros((256, 128)), "attn_norm": jnp.ones(128)}
    tx = make_optimizer(OptimizerSettings(learning_rate=0.1))

    def loss_fn(p, item):
        return jnp.sum(jnp.tanh(item["x"] @ p["w"]) * p["attn_norm"][None, :]), {}

    update = make_update(loss_fn, tx)
    opt_state = tx.init(params)
    items = {"x": jnp.ones((3, 8, 256))}
    report = memory_analysis(update, params, opt_state, items)
    # the argument bytes, counted by hand: params, AdamW's two moments (+ small counters) and the items
    expected = (3 * (256 * 128 + 128) * 4 + 3 * 8 * 256 * 4) / 2**30
    assert expected <= report["arguments"] <= expected * 1.01
    assert report["aliased"] > 0  # params and optimizer state are donated
    update(params, opt_state, items)  # and the real call still runs
