"""wd1 against hand-derived numbers: the group-softmax weights in closed form, the weighted
log-likelihood loss and its gradient in numpy, the loss through a tiny model against a numpy
re-derivation of d1's one-step log-probs, and `dlrl-jax train` with algorithm.name=wd1."""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlrl_jax import cli, models
from dlrl_jax.objectives import wd1
from dlrl_jax.objectives.diffu_grpo import group_mean_advantages
from dlrl_jax.app.metrics import read_metrics

MASK, EOS, V = 13, 12, 14
forward = jax.jit(models.forward, static_argnums=0)


def _np_softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def test_weights_in_closed_form():
    # group 1: r = (1, 0, 0) -> A = (2/3, -1/3, -1/3): w+ = (e, 1, 1) / (e + 2), w- = (1, e, e) / (1 + 2e)
    # group 2: equal rewards -> A = 0: w+ = w- = 1/3, net 0
    adv = group_mean_advantages([1.0, 0.0, 0.0, 2.0, 2.0, 2.0], 3)
    e = math.e
    net = np.asarray(wd1.sample_weights(adv, 3))
    want = [e / (e + 2) - 1 / (1 + 2 * e), 1 / (e + 2) - e / (1 + 2 * e), 1 / (e + 2) - e / (1 + 2 * e), 0, 0, 0]
    np.testing.assert_allclose(net, want, atol=1e-6)
    np.testing.assert_allclose(net[:3].sum(), 0.0, atol=1e-6)
    positive = np.asarray(wd1.sample_weights(adv, 3, negative_term=False))
    np.testing.assert_allclose(positive, [e / (e + 2), 1 / (e + 2), 1 / (e + 2), 1 / 3, 1 / 3, 1 / 3], atol=1e-6)


def test_weighted_likelihood_loss_and_gradient_by_hand():
    rng = np.random.default_rng(0)
    B, G, group = 4, 3, 2
    lp = -rng.uniform(0.1, 3.0, (B, G)).astype(np.float32)
    mask = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]], bool)  # EOS at 3rd / 2nd / 1st token
    reward = np.array([1.0, 0.0, 0.3, 0.7])
    adv = np.array([0.5, -0.5, -0.2, 0.2])
    w = np.concatenate([_np_softmax(adv[:2]) - _np_softmax(-adv[:2]), _np_softmax(adv[2:]) - _np_softmax(-adv[2:])])
    np.testing.assert_allclose(group_mean_advantages(reward, group), adv, atol=1e-6)
    weight = np.asarray(wd1.sample_weights(adv, group))
    np.testing.assert_allclose(weight, w, atol=1e-6)
    num_groups = B // group
    terms = [w[i] * lp[i][mask[i]].sum() / num_groups for i in range(B)]
    want = -sum(terms)
    loss, grad = jax.value_and_grad(wd1.weighted_likelihood_loss)(jnp.asarray(lp), mask, jnp.asarray(weight),
                                                                  num_groups)
    # the weights cancel within each group: a float32 sum of these terms in any order is within
    # n eps times the sum of their magnitudes (the standard bound), not within rtol of the loss
    n = B * G
    np.testing.assert_allclose(float(loss), want, rtol=0, atol=n * np.finfo(np.float32).eps * sum(map(abs, terms)))
    # d loss / d logp_ij = -w_i [j counted] / groups: pushes the better sample up, the worse down, EOS tail 0
    np.testing.assert_allclose(np.asarray(grad), -w[:, None] * mask / num_groups, rtol=1e-6, atol=1e-8)


def _np_log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def test_loss_through_a_tiny_model_matches_numpy():
    """p_mask_prompt 0: the input is [prompt | MASK x G] exactly; log-probs from the model's logits in numpy."""
    cfg = models.preset("tiny", vocab_size=V, d_model=32, n_layers=2, n_heads=2, n_kv_heads=2, mlp_hidden=64,
                        mask_token_id=MASK)
    graphdef, params = models.split(models.init_model(cfg, seed=3))
    rng = np.random.default_rng(5)
    B, P, G = 4, 3, 5
    prompt = rng.integers(0, EOS, (B, P)).astype(np.int32)
    prompt_mask = np.ones((B, P), bool)
    prompt_mask[1, 0] = False  # a left pad
    completion = rng.integers(0, EOS, (B, G)).astype(np.int32)
    completion[2, 1] = EOS
    completion_mask = np.ones((B, G), bool)
    completion_mask[2, 2:] = False  # after the first EOS
    weight = np.asarray(wd1.sample_weights(np.array([0.4, -0.4, 1.0, -1.0]), 2))
    batch = {"prompt_ids": prompt, "prompt_mask": prompt_mask, "completion_ids": completion,
             "completion_mask": completion_mask, "weight": weight, "key": jax.random.key(0)}
    settings = wd1.WD1Settings(mask_id=MASK, p_mask_prompt=0.0)
    loss_fn = jax.jit(lambda p: wd1.wd1_loss(graphdef, p, batch, settings, 2))
    loss, sums = loss_fn(params)

    ids = np.concatenate([prompt, np.full((B, G), MASK, np.int32)], axis=1)
    attention = np.concatenate([prompt_mask, np.ones((B, G), bool)], axis=1)
    logits = np.asarray(forward(graphdef, params, ids, attention), np.float64)[:, P:]
    token_lp = np.take_along_axis(_np_log_softmax(logits), completion[..., None], axis=-1)[..., 0]
    want = -(weight * (token_lp * completion_mask).sum(axis=1)).sum() / 2
    magnitude = (np.abs(weight) * np.abs(token_lp * completion_mask).sum(axis=1)).sum() / 2
    # the weights cancel within each group: compared against the terms' magnitude (RTOL_SIGNED's reason in
    # tests/training/test_golden_iteration.py)
    np.testing.assert_allclose(float(loss), want, rtol=0, atol=1e-5 * magnitude)
    np.testing.assert_allclose(float(sums["logprob"]), (token_lp * completion_mask).sum(), rtol=1e-5)
    assert float(sums["count"]) == completion_mask.sum()

    # one gradient step raises the likelihood of each group's better sample and lowers the worse one's
    grads = jax.jit(jax.grad(lambda p: loss_fn(p)[0]))(params)
    stepped = jax.tree.map(lambda p, g: p - 0.05 * g, params, grads)
    logits2 = np.asarray(forward(graphdef, stepped, ids, attention), np.float64)[:, P:]
    lp2 = np.take_along_axis(_np_log_softmax(logits2), completion[..., None], axis=-1)[..., 0]
    change = ((lp2 - token_lp) * completion_mask).sum(axis=1)
    assert change[0] > 0 > change[1] and change[2] > 0 > change[3], change


@pytest.mark.slow  # about 20 s on an idle 2-core machine; tests/training/test_golden_iteration.py runs wd1's loop
def test_wd1_trains_through_the_cli(tmp_path):
    """`dlrl-jax train` with wd1 on LoRA r4 with dropout: metrics finite, the adapters moved. The settings
    are those of wd1's case in tests/training/test_golden_iteration.py, so the two share compiled programs."""
    out = str(tmp_path / "wd1")
    settings = ["algorithm.name=wd1", "seed=0", "model.preset=tiny", "model.lora_rank=4", "model.lora_dropout=0.1",
                "sft.steps=0", "task.train_size=32", "task.eval_size=8", "algorithm.prompts_per_batch=2",
                "algorithm.group_size=4", "sampler.gen_length=16", "sampler.steps=16", "sampler.block_length=16",
                "algorithm.mu=1", "algorithm.micro_batches=1", f"run.out_dir={out}", "run.progress=false",
                "run.tensorboard=false", "run.iterations=2"]
    assert cli.main(["train", *[a for x in settings for a in ("--set", x)]]) == 0
    rl = [r for r in read_metrics(out) if r["phase"] == "rl"]
    assert len(rl) == 2
    for r in rl:
        assert r["skipped"] == 0.0 and "ratio" not in r and "kl" not in r  # ratio-free, no reference
        for name in ("loss", "grad_norm", "logprob", "reward_mean", "weight_max"):
            assert np.isfinite(r[name]), (name, r[name])
        assert r["logprob"] < 0 and 1 / 4 <= r["weight_max"] <= 1
    base = models.init_model(models.preset("tiny"), seed=0)  # the run's init (seed 0, no SFT)
    trained = models.from_pretrained(os.path.join(out, "model"))  # the adapters merged in
    moved = [float(np.abs(np.asarray(getattr(trained.layers, n)[...]) - np.asarray(getattr(base.layers, n)[...])).max())
             for n in ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")]
    assert min(moved) > 0, moved
