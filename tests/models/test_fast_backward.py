"""The hand-written backward passes (issue 19) against JAX's own autodiff of the plain formulas:
attention (jax.nn.dot_product_attention) and the LoRA product (x A) B. Forwards must be bitwise the
same (rollouts and old/reference passes do not change); gradients equal to float rounding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlrl_jax.models import transformer as T


def _grads(f, args):
    return jax.jit(jax.value_and_grad(f, argnums=tuple(range(len(args)))))(*args)


@pytest.mark.parametrize("heads,kv_heads,dtype,tol", [(4, 4, jnp.float32, 1e-5), (6, 2, jnp.float32, 1e-5),
                                                     (4, 2, jnp.bfloat16, 2e-2)])
def test_attention_matches_autodiff_of_jax_attention(heads, kv_heads, dtype, tol):
    B, T_, S, H = 3, 5, 9, 8
    ks = jax.random.split(jax.random.key(0), 4)
    q = jax.random.normal(ks[0], (B, T_, heads, H), dtype)
    k, v = (jax.random.normal(kk, (B, S, kv_heads, H), dtype) for kk in ks[1:3])
    weight = jax.random.normal(ks[3], (B, T_, heads, H))
    mask = jnp.arange(S)[None] >= jnp.array([0, 3, 7])[:, None]  # left padding, one row with 2 real keys

    def plain(q, k, v):
        return (jax.nn.dot_product_attention(q, k, v, mask=mask[:, None, None, :]).astype(jnp.float32) * weight).sum()

    def ours(q, k, v):
        return (T.attention(q, k, v, mask).astype(jnp.float32) * weight).sum()

    np.testing.assert_array_equal(np.asarray(jax.jit(T.attention)(q, k, v, mask), np.float32),
                                  np.asarray(jax.jit(lambda *a: jax.nn.dot_product_attention(
                                      *a, mask=mask[:, None, None, :]))(q, k, v), np.float32))
    (v1, g1), (v2, g2) = _grads(plain, (q, k, v)), _grads(ours, (q, k, v))
    np.testing.assert_allclose(float(v2), float(v1), rtol=tol)
    for name, a, b in zip("qkv", g1, g2):
        assert b.dtype == a.dtype and b.shape == a.shape, name
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        np.testing.assert_allclose(b, a, atol=tol * np.abs(a).max(), err_msg=f"d{name}")


@pytest.mark.parametrize("x_shape,a_shape,b_shape,n_in", [((2, 7, 8), (8, 16), (16, 4, 3), 1),
                                                         ((2, 7, 4, 3), (4, 3, 16), (16, 8), 2)])
@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 2e-2)])
def test_lora_product_backward_through_a_b(x_shape, a_shape, b_shape, n_in, dtype, tol):
    ks = jax.random.split(jax.random.key(1), 4)
    x = jax.random.normal(ks[0], x_shape, dtype)
    a, b = jax.random.normal(ks[1], a_shape), jax.random.normal(ks[2], b_shape)
    weight = jax.random.normal(ks[3], x_shape[:-n_in] + b_shape[1:])

    def plain(x, a, b):  # the formula itself, without the module's helpers
        t = jnp.tensordot(x, a.astype(dtype), axes=n_in)
        return (jnp.tensordot(t, b.astype(dtype), axes=1).astype(jnp.float32) * weight).sum()

    def ours(x, a, b):
        return (T._lora_product_delta_grad(x, a.astype(dtype), b.astype(dtype), n_in).astype(jnp.float32)
                * weight).sum()

    (v1, g1), (v2, g2) = _grads(plain, (x, a, b)), _grads(ours, (x, a, b))
    np.testing.assert_allclose(float(v2), float(v1), rtol=tol)
    for name, p, o in zip(("x", "A", "B"), g1, g2):
        assert o.dtype == p.dtype, name
        p, o = np.asarray(p, np.float64), np.asarray(o, np.float64)
        np.testing.assert_allclose(o, p, atol=tol * np.abs(p).max(), err_msg=f"d{name}")


def test_delta_backward_only_where_cheaper():
    # r 128 on d 64 (the issue-19 test model): through A B; r 128 on LLaDA-8B's d 4096: the rank path
    assert T._delta_grad_is_cheaper(jnp.zeros((8, 232, 64)), jnp.zeros((64, 128)), jnp.zeros((128, 4, 16)), 1)
    assert not T._delta_grad_is_cheaper(jnp.zeros((1, 512, 4096)), jnp.zeros((4096, 128)),
                                        jnp.zeros((128, 32, 128)), 1)
