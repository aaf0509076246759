"""EGSPO objective against independent oracles: a hand-worked advantage table, and gradients of the
same objective written as a plain per-sample, per-step loop over single-row forward passes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlrl_jax import models
from dlrl_jax.objectives import stepwise
from dlrl_jax.objectives.selection import select_steps
from dlrl_jax.rollout.trajectory import canvas_before
from dlrl_jax.training.update import accumulate_gradients

MASK, PAD = 15, 0
B, P, G, T, V = 4, 3, 6, 3, 16
TPS = G / T


def test_advantages_match_hand_table():
    R = np.array([1.0, 0.0, 0.5, 2.0, 2.0, 2.0])
    r_hat = np.array([[1, 0], [0, 1], [0.5, 0.5], [2, 0], [2, 0], [2, 2]], float)
    valid = np.ones((6, 2), bool)
    A = stepwise.stepwise_advantages(R, r_hat, valid, group_size=3, lam=0.5)
    want = [[1 / 3, 2 / 3], [-1 / 3, -2 / 3], [0, 0], [0, 2 / 9], [0, 2 / 9], [0, -4 / 9]]
    np.testing.assert_allclose(A, want, atol=1e-6)
    valid[5, 1] = False  # column 1 of group 2 then averages rows 3 and 4 only: (2 + 2) / 2
    A = stepwise.stepwise_advantages(R, r_hat, valid, group_size=3, lam=0.5)
    np.testing.assert_allclose(A[3:, 1], [0, 0, 0], atol=1e-6)
    A0 = stepwise.stepwise_advantages(R, r_hat, np.ones((6, 2), bool), group_size=3, lam=0.0)
    np.testing.assert_allclose(A0, [[0.5, 0.5], [-0.5, -0.5], [0, 0], [0, 0], [0, 0], [0, 0]], atol=1e-6)
    with pytest.raises(ValueError, match="not a whole number of groups"):
        stepwise.stepwise_advantages(R, r_hat, valid, group_size=4, lam=0.5)


@pytest.fixture(scope="module")
def setup():
    cfg = models.preset("tiny", vocab_size=V, d_model=32, n_layers=2, n_heads=2, n_kv_heads=1, mlp_hidden=64,
                        mask_token_id=MASK)
    graphdef, params = models.split(models.init_model(cfg, seed=4))
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, MASK, (B, P + G)).astype(np.int32)
    prompt_mask = np.ones((B, P), bool)
    prompt_mask[1, 0] = False  # a left-padded row
    tokens[1, 0] = PAD
    unmask_step = np.stack([rng.permutation(np.repeat(np.arange(T), G // T)) for _ in range(B)]).astype(np.int32)
    return graphdef, params, tokens, prompt_mask, unmask_step


@functools.partial(jax.jit, static_argnums=0)
def _row_log_softmax(graphdef, params, canvas_L, attention_L):
    return jax.nn.log_softmax(models.forward(graphdef, params, canvas_L[None], attention_L[None])[0], axis=-1)


def _loop_logprob(graphdef, params, tokens, prompt_mask, unmask_step, b, s):
    """log pi(step s) of row b from a single-row forward: the plain-loop oracle."""
    canvas = tokens[b].copy()
    for j in range(G):
        if unmask_step[b, j] >= s:
            canvas[P + j] = MASK
    attention = np.concatenate([prompt_mask[b], np.ones(G, bool)])
    logp = _row_log_softmax(graphdef, params, jnp.asarray(canvas), jnp.asarray(attention))
    return sum(logp[P + j, tokens[b, P + j]] for j in range(G) if unmask_step[b, j] == s)


def test_clipped_loss_gradient_equals_per_sample_per_step_loop(setup):
    graphdef, params, tokens, prompt_mask, unmask_step = setup
    rng = np.random.default_rng(1)
    K = 2
    steps = np.stack([rng.permutation(T)[:K] for _ in range(B)]).astype(np.int32)
    valid = np.ones((B, K), bool)
    valid[3, 1] = False
    adv = rng.normal(size=(B, K)).astype(np.float32)
    current = np.array([[float(_loop_logprob(graphdef, params, tokens, prompt_mask, unmask_step, b, s))
                         for s in steps[b]] for b in range(B)])
    old = (current + rng.uniform(-0.6, 0.6, (B, K))).astype(np.float32)  # some ratios outside the clip range
    ref = (current + rng.uniform(-0.5, 0.5, (B, K))).astype(np.float32)
    settings = stepwise.StepwiseLossSettings(mask_id=MASK, tokens_per_step=TPS, eps_low=0.2, eps_high=0.5,
                                             beta=0.04)

    def oracle(p):
        total = 0.0
        for b in range(B):
            for k in range(K):
                if not valid[b, k]:
                    continue
                lp = _loop_logprob(graphdef, p, tokens, prompt_mask, unmask_step, b, steps[b, k])
                ratio = jnp.exp(lp - old[b, k])
                a = adv[b, k]
                surrogate = jnp.minimum(ratio * a, jnp.clip(ratio, 0.8, 1.5) * a)
                kl = jnp.exp(ref[b, k] - lp) - (ref[b, k] - lp) - 1
                total += -surrogate + 0.04 * kl
        return total / B / TPS

    want_loss, want_grads = jax.value_and_grad(oracle)(params)
    items = stepwise.column_items(tokens, prompt_mask, unmask_step, steps, valid, adv, old, ref, micro_batches=2)
    loss_fn = functools.partial(stepwise.stepwise_loss, graphdef, settings=settings, total_rows=B)
    loss, grads, sums = jax.jit(accumulate_gradients, static_argnums=0)(loss_fn, params, items)
    # a signed sum (advantages of both signs), compared against its terms' magnitude (RTOL_SIGNED's reason in
    # tests/training/test_golden_iteration.py): the same terms at the current log-probs, in absolute value
    ratio = np.exp(current - old)
    terms = np.abs(np.minimum(ratio * adv, np.clip(ratio, 0.8, 1.5) * adv)) + 0.04 * (
        np.exp(ref - current) - (ref - current) - 1)
    magnitude = (terms * valid).sum() / B / TPS
    np.testing.assert_allclose(loss, want_loss, rtol=0, atol=1e-5 * magnitude)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-7), grads, want_grads)
    assert sums["count"] == valid.sum() and 0 < sums["clip_fraction"] < valid.sum()


def test_all_steps_lambda_zero_is_the_full_stepwise_policy_gradient(setup):
    graphdef, params, tokens, prompt_mask, unmask_step = setup
    reward = np.array([1.0, 0.0, 0.3, 0.9])
    count = np.full((B, T), G // T)
    steps, valid = select_steps(np.zeros((B, T), np.float32), count, jax.random.key(0), k=T)
    adv = stepwise.stepwise_advantages(reward, np.zeros((B, T)), np.asarray(valid), group_size=2, lam=0.0)
    current = stepwise.selected_step_logprobs(graphdef, params, tokens, prompt_mask, unmask_step, steps,
                                              mask_id=MASK)
    settings = stepwise.StepwiseLossSettings(mask_id=MASK, tokens_per_step=TPS, beta=0.0)
    items = stepwise.column_items(tokens, prompt_mask, unmask_step, steps, valid, adv, current, current)
    loss_fn = functools.partial(stepwise.stepwise_loss, graphdef, settings=settings, total_rows=B)
    _, grads, sums = accumulate_gradients(loss_fn, params, items)
    np.testing.assert_allclose(sums["ratio"], B * T, rtol=1e-5)  # first inner update: every ratio is 1
    group_adv = reward - np.repeat(reward.reshape(2, 2).mean(axis=1), 2)

    def reinforce(p):  # -(1/B) sum_b A_b sum_{every step s} grad log pi(step s), per token
        return -sum(group_adv[b] * _loop_logprob(graphdef, p, tokens, prompt_mask, unmask_step, b, s)
                    for b in range(B) for s in range(T)) / B / TPS

    want = jax.grad(reinforce)(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-7), grads, want)


def test_state_before_matches_the_definition(setup):
    _, _, tokens, _, unmask_step = setup
    for s in range(T + 1):
        got = np.asarray(canvas_before(tokens, unmask_step, np.full(B, s), MASK))
        want = tokens.copy()
        want[:, P:][unmask_step >= s] = MASK
        np.testing.assert_array_equal(got, want)


def test_ratio_dev_sums_each_valid_rows_distance_of_the_ratio_from_one(setup):
    """The health metric behind first_ratio_dev: sum over valid rows of |ratio - 1|. With the old
    log-probs set to the current ones shifted by ln 2, 0, -ln 2 and ln 4, the ratios are 2, 1, 1/2 and 4
    (hand-worked |r - 1|: 1, 0, 0.5, 3); the last row is invalid, so the sum is 1.5 over 3 rows."""
    graphdef, params, tokens, prompt_mask, unmask_step = setup
    step = np.array([1, 0, 2, 1], np.int32)
    current, _ = jax.jit(functools.partial(stepwise.step_logprob, graphdef, mask_id=MASK))(
        params, tokens, prompt_mask, unmask_step, step)
    shift = np.log([2.0, 1.0, 0.5, 4.0]).astype(np.float32)
    batch = {"tokens": tokens, "prompt_mask": prompt_mask, "unmask_step": unmask_step, "step": step,
             "valid": np.array([True, True, True, False]), "advantage": np.zeros(B, np.float32),
             "old_logprob": np.asarray(current) - shift, "ref_logprob": np.asarray(current)}
    settings = stepwise.StepwiseLossSettings(mask_id=MASK, tokens_per_step=TPS, eps_low=0.2, eps_high=0.5, beta=0.0)
    _, sums = jax.jit(functools.partial(stepwise.stepwise_loss, graphdef, settings=settings, total_rows=B))(
        params, batch)
    # (the loss recomputes the log-probs in another compiled program: they may move by float32 rounding of
    # sums of ~10 nats, ~1e-5, so each ratio by ~1e-5 of itself: 7.5e-5 over ratios summing to 7.5)
    np.testing.assert_allclose(float(sums["ratio_dev"]), 1.5, atol=1e-4)
    np.testing.assert_allclose(float(sums["count"]), 3.0)
