"""algorithm.zero_variance_groups=drop (DAPO's dynamic sampling in fixed shapes): which groups are kept
and how they are weighted, against a plain-Python oracle on hand-built rewards; and that a dropped
group contributes no gradient to any objective (the loss with the weights equals the loss of the kept
rows alone, or is unchanged when the dropped rows change)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dlrl_jax import models
from dlrl_jax.objectives import diffu_grpo, espo, stepwise, wd1
from dlrl_jax.objectives.elbo import estimate_pure
from dlrl_jax.training.algorithms.common import signal_row_weights, zero_variance_fraction

MASK, V, P, G, T = 13, 14, 3, 4, 4


def oracle(rewards, group_size):
    """(weights, fraction) by hand: a group is kept when it holds two different values; kept rows weigh
    groups / kept groups, dropped rows 0."""
    groups = [list(rewards[i:i + group_size]) for i in range(0, len(rewards), group_size)]
    kept = [len(set(g)) > 1 for g in groups]
    n_kept = sum(kept)
    weights = [(len(groups) / n_kept if k and n_kept else 0.0) for k in kept for _ in range(group_size)]
    return weights, 1.0 - n_kept / len(groups)


@pytest.mark.parametrize("rewards,group_size", [
    # ties inside a kept group, an all-equal group, an all-zero group, a tiny difference (one float32 step)
    ([0.0, 0.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.25, 0.25, 0.25, float(np.nextafter(
        np.float32(0.25), np.float32(1.0)))], 4),
    ([1.0] * 6, 3),                       # every group without signal: every weight 0
    ([0.0, 0.125, 0.375, 1.0, 1.0, 0.0], 2),  # every group kept: weights 1, the loss unchanged
    ([0.625, 0.625, 0.625, 0.625, 0.625, 0.75], 3),
])
def test_kept_groups_and_weights_match_the_oracle(rewards, group_size):
    want_w, want_f = oracle(np.float32(rewards).tolist(), group_size)
    np.testing.assert_allclose(np.asarray(signal_row_weights(np.float32(rewards), group_size)), want_w, rtol=1e-6)
    np.testing.assert_allclose(float(zero_variance_fraction(np.float32(rewards), group_size)), want_f, rtol=1e-6)


# three groups of two rows: rewards (0.5, 0.5) and (1, 1) carry no signal, (0, 1) does
REWARDS = np.float32([0.5, 0.5, 0.0, 1.0, 1.0, 1.0])
GROUP, KEPT = 2, np.array([2, 3])
B = len(REWARDS)


@pytest.fixture(scope="module")
def setup():
    cfg = models.preset("tiny", vocab_size=V, d_model=32, n_layers=1, n_heads=2, n_kv_heads=2, mlp_hidden=64,
                        mask_token_id=MASK)
    graphdef, params = models.split(models.init_model(cfg, seed=3))
    rng = np.random.default_rng(5)
    prompt_ids = rng.integers(1, MASK - 1, (B, P)).astype(np.int32)
    completion = rng.integers(1, MASK - 1, (B, G)).astype(np.int32)
    unmask_step = np.stack([rng.permutation(T) for _ in range(B)]).astype(np.int32)
    weight = np.asarray(signal_row_weights(REWARDS, GROUP))
    np.testing.assert_allclose(weight, [0, 0, 3, 3, 0, 0])
    # advantages and reference terms nonzero on every row, the dropped ones too: nothing of them may reach
    # the gradient (with the real group advantages a dropped row's surrogate is zero, its KL term is not)
    advantage = np.float32([0.3, -0.2, -0.5, 0.5, 0.7, -0.4])
    return graphdef, params, dict(prompt_ids=prompt_ids, prompt_mask=np.ones((B, P), bool), completion=completion,
                                  unmask_step=unmask_step, weight=weight, advantage=advantage, rng=rng)


def _rows(tree, rows):
    return {k: (v[rows] if np.ndim(v) and np.shape(v)[0] == B else v) for k, v in tree.items()}


def _grad(loss):
    return jax.jit(jax.grad(lambda p, item: loss(p, item)[0]))


def _close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-9), a, b)


def test_stepwise_dropped_groups_give_no_gradient_and_kept_rows_their_mean(setup):
    graphdef, params, d = setup
    settings = stepwise.StepwiseLossSettings(mask_id=MASK, tokens_per_step=G / T, beta=0.04)
    item = {"tokens": np.concatenate([d["prompt_ids"], d["completion"]], 1), "prompt_mask": d["prompt_mask"],
            "unmask_step": d["unmask_step"], "step": np.int32([0, 1, 2, 3, 1, 2]), "valid": np.ones(B, bool),
            "advantage": d["advantage"], "old_logprob": np.float32([-2.0, -3.0, -2.5, -1.5, -2.2, -2.8]),
            "ref_logprob": np.float32([-2.1, -2.9, -2.4, -1.7, -2.0, -3.0])}
    full = _grad(functools.partial(stepwise.stepwise_loss, graphdef, settings=settings, total_rows=B))(
        params, dict(item, row_weight=d["weight"]))
    alone = _grad(functools.partial(stepwise.stepwise_loss, graphdef, settings=settings, total_rows=len(KEPT)))(
        params, _rows(item, KEPT))
    _close(full, alone)


@pytest.mark.parametrize("token_mean", ["row", "batch"])
def test_diffu_grpo_dropped_groups_give_no_gradient_and_kept_rows_their_mean(setup, token_mean):
    graphdef, params, d = setup
    # no prompt masking: each row's log-probs then depend on that row alone, so the kept rows can run alone
    settings = diffu_grpo.DiffuGRPOSettings(mask_id=MASK, p_mask_prompt=0.0, beta=0.04, token_mean=token_mean)
    real = np.ones((B, G), bool)
    real[3, 2:] = False  # a row that ends early: the batch token mean counts its tokens only
    item = {"prompt_ids": d["prompt_ids"], "prompt_mask": d["prompt_mask"], "completion_ids": d["completion"],
            "completion_mask": real, "advantage": d["advantage"], "key": jax.random.key(0),
            "old_logprob": np.full((B, G), -2.5, np.float32), "ref_logprob": np.full((B, G), -2.4, np.float32)}
    full = _grad(functools.partial(diffu_grpo.diffu_grpo_loss, graphdef, settings=settings, total_rows=B))(
        params, dict(item, row_weight=d["weight"]))
    alone = _grad(functools.partial(diffu_grpo.diffu_grpo_loss, graphdef, settings=settings, total_rows=len(KEPT)))(
        params, _rows(item, KEPT))
    _close(full, alone)


def test_wd1_dropped_groups_give_no_gradient_and_kept_groups_their_mean(setup):
    graphdef, params, d = setup
    settings = wd1.WD1Settings(mask_id=MASK, p_mask_prompt=0.0)
    advantage = diffu_grpo.group_mean_advantages(REWARDS, GROUP)
    item = {"prompt_ids": d["prompt_ids"], "prompt_mask": d["prompt_mask"], "completion_ids": d["completion"],
            "completion_mask": np.ones((B, G), bool), "key": jax.random.key(0)}
    # as wd1's prepare builds it under drop: the group-softmax weights times the row weights
    weight = np.asarray(wd1.sample_weights(advantage, GROUP)) * d["weight"]
    full = _grad(functools.partial(wd1.wd1_loss, graphdef, settings=settings, num_groups=B // GROUP))(
        params, dict(item, weight=weight))
    alone = _grad(functools.partial(wd1.wd1_loss, graphdef, settings=settings, num_groups=1))(
        params, dict(_rows(item, KEPT), weight=np.asarray(wd1.sample_weights(advantage[KEPT], GROUP))))
    _close(full, alone)


def test_espo_dropped_rows_change_nothing_of_the_gradient(setup):
    graphdef, params, d = setup
    settings = espo.ESPOSettings(mask_id=MASK, num_samples=1, eps=0.2, beta=0.01, remat=False)
    key = jax.random.key(7)

    elbo = jax.jit(lambda completion: estimate_pure(graphdef, params, d["prompt_ids"], d["prompt_mask"], completion,
                                                    key, num_samples=1, mask_id=MASK))

    def item_for(completion, advantage):
        old = elbo(completion)
        return {"prompt_ids": d["prompt_ids"], "prompt_mask": d["prompt_mask"], "completion_ids": completion,
                "advantage": advantage, "key": jax.random.key_data(key), "old_elbo": old - 0.1, "ref_elbo": old + 0.3,
                "row_weight": d["weight"]}

    loss = functools.partial(espo.espo_loss, graphdef, settings=settings, total_rows=B)
    grad = _grad(lambda p, item: loss(p, dict(item, key=jax.random.wrap_key_data(item["key"]))))
    base = grad(params, item_for(d["completion"], d["advantage"]))
    changed = d["completion"].copy()
    dropped = np.array([0, 1, 4, 5])
    changed[dropped] = (changed[dropped] + 3) % (MASK - 1) + 1
    other = grad(params, item_for(changed, d["advantage"] * np.float32([5, -3, 1, 1, 2, 7])))
    _close(base, other)
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(base)) > 0  # the kept group does move it


@pytest.mark.parametrize("name", ["egspo", "egspo_sa", "espo", "diffu_grpo", "wd1"])
def test_every_algorithm_puts_the_weights_into_its_items_only_under_drop(setup, name):
    """Each algorithm's prepare (the loop's and the seeded program's) carries the oracle's row weights
    under drop (wd1: multiplied into its group-softmax weights) and no weight field under keep."""
    from dlrl_jax import config
    from dlrl_jax.rollout.trajectory import Trajectory
    from dlrl_jax.training.algorithms import ALGORITHMS, Selection
    from dlrl_jax.training.state import Context

    graphdef, params, d = setup
    model_cfg = nnx.merge(graphdef, params).cfg
    want, _ = oracle(REWARDS.tolist(), GROUP)
    items = {}
    for mode in ("keep", "drop"):
        cfg = config.load(None, [f"algorithm.name={name}", f"algorithm.group_size={GROUP}", "algorithm.prompts_per_batch=3",
                                 "algorithm.beta=0", "algorithm.k=2", f"sampler.gen_length={G}", f"sampler.steps={T}",
                                 f"algorithm.zero_variance_groups={mode}"])
        context = Context(graphdef=graphdef, ref_graphdef=graphdef, base_params=lambda p: p, mesh=None,
                          algorithm=cfg.algorithm, seed=cfg.seed,
                          gen_length=cfg.sampler.gen_length, steps=cfg.sampler.steps, mask_id=MASK, eos_id=MASK - 1, rows=B, lora_dropout=False, partition=None, prompt_length=P,
                          model_cfg=model_cfg)
        algorithm = ALGORITHMS[name].make(context)
        traj = Trajectory(tokens=np.concatenate([d["prompt_ids"], d["completion"]], 1), prompt_mask=d["prompt_mask"],
                          unmask_step=d["unmask_step"], step_logprob=np.full((B, T), -2.0, np.float32),
                          step_entropy=np.tile(np.float32([0.4, 0.3, 0.2, 0.1]), (B, 1)),
                          step_count=np.ones((B, T), np.int32))
        selection = Selection(steps=np.tile(np.int32([0, 1]), (B, 1)), valid=np.ones((B, 2), bool),
                              greedy_reward=np.zeros((B, 2), np.float32)) if algorithm.select else None
        items[mode], _ = jax.jit(lambda p, b, r, s: algorithm.prepare(p, p, b, r, s, 0, 2))(params, traj, REWARDS,
                                                                                           selection)
    if name == "wd1":
        np.testing.assert_allclose(np.asarray(items["drop"].weight).reshape(-1, B),
                                   np.asarray(items["keep"].weight).reshape(-1, B) * np.float32(want), rtol=1e-6)
        return
    assert "row_weight" not in items["keep"]
    weight = np.asarray(items["drop"].row_weight)
    if name.startswith("egspo"):  # [optimizer steps, items (columns), rows]: every column of a row alike
        np.testing.assert_allclose(weight, np.broadcast_to(np.float32(want), weight.shape))
    else:  # [mu, micro-batches, rows]
        np.testing.assert_allclose(weight.reshape(-1, B), np.float32(want)[None].repeat(weight.size // B, 0))
