"""Model invariants: published parameter counts, one compile per shape, pure use under grad."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlrl_jax import models


@pytest.mark.parametrize("name,published", [
    # LLaDA-8B: 8.02B in the LLaDA paper (Table 5); Dream-7B has Qwen2.5-7B's 7.61B.
    ("llada-8b", 8.02e9), ("dream-7b", 7.61e9)])
def test_preset_parameter_counts_match_published(name, published):
    abstract = models.abstract_model(models.preset(name))
    count = models.param_count(models.split(abstract)[1])
    print(f"{name}: {count:,} parameters (published {published:.3g})")
    assert abs(count - published) / published < 0.005
    assert count == models.preset(name).num_params()


def test_forward_compiles_once_per_shape():
    cfg = models.preset("tiny", vocab_size=32, d_model=32, n_layers=2, n_heads=2, n_kv_heads=1, mlp_hidden=64)
    graphdef, params = models.split(models.init_model(cfg))
    traces = []

    @jax.jit
    def run(params, ids, mask):
        traces.append(ids.shape)
        return models.forward(graphdef, params, ids, mask)

    for seed in range(3):
        ids = jnp.asarray(np.random.default_rng(seed).integers(0, 32, (2, 9)), jnp.int32)
        run(params, ids, jnp.ones((2, 9), bool))
    assert traces == [(2, 9)]
    run(params, jnp.zeros((2, 11), jnp.int32), jnp.ones((2, 11), bool))
    assert traces == [(2, 9), (2, 11)]


def test_pure_forward_under_grad_and_remat_agree():
    cfg = models.preset("tiny", vocab_size=32, d_model=32, n_layers=3, n_heads=2, n_kv_heads=2, mlp_hidden=64)
    ids = jnp.asarray(np.random.default_rng(0).integers(0, 32, (2, 7)), jnp.int32)
    grads = []
    for remat in ("none", "full", "dots"):
        graphdef, params = models.split(models.init_model(cfg.replace(remat=remat)))

        def loss(p):
            return -jax.nn.log_softmax(models.forward(graphdef, p, ids))[..., 0].mean()
        grads.append(jax.jit(jax.grad(loss))(params))
    for g in grads[1:]:
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), grads[0], g)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(grads[0]))


def test_bfloat16_compute_returns_float32_logits_close_to_float32():
    cfg = models.preset("tiny", vocab_size=32, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, mlp_hidden=128)
    model = models.init_model(cfg)
    ids = jnp.asarray(np.random.default_rng(1).integers(0, 32, (2, 10)), jnp.int32)
    ref = np.asarray(model(ids))
    graphdef, params = models.split(models.init_model(cfg.replace(dtype="bfloat16")))
    out = models.forward(graphdef, params, ids)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out), ref, atol=0.05)


def test_logical_axes_on_every_parameter():
    model = models.init_model(models.preset("tiny", qkv_bias=True))
    _, state = models.split(model)
    for path, var in jax.tree_util.tree_flatten_with_path(state, is_leaf=lambda x: hasattr(x, "get_metadata"))[0]:
        axes = var.get_metadata().get("logical_axes")
        assert axes is not None and len(axes) == var.ndim, path


def test_bad_model_config_fields_are_named():
    with pytest.raises(models.ConfigError, match="n_heads .6. must be a multiple of n_kv_heads .4."):
        models.preset("tiny", n_heads=6, n_kv_heads=4, d_model=96)
    with pytest.raises(models.ConfigError, match="'mlp_hidden' must be a positive integer"):
        models.preset("tiny", mlp_hidden=0)
    with pytest.raises(models.ConfigError, match="unknown model preset"):
        models.preset("llada-80b")
