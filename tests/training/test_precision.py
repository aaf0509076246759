"""Mixed precision: one AdamW step at the papers' learning rate (3e-6) on a bfloat16 model changes the
trainable weights as the same step in float64 arithmetic does (a numpy AdamW on the same gradient),
for a full fine-tune (float32 master weights) and for LoRA (float32 adapters over a bfloat16 base).
Stored and updated in bfloat16, the same step rounds most of its updates away: the test shows both."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlrl_jax import models
from dlrl_jax.models.lora import LoRASettings, add_lora, trainable_mask
from dlrl_jax.training.optimizer import OptimizerSettings, make_optimizer
from dlrl_jax.training.precision import cast_to, master_params, storage_dtypes
from dlrl_jax.training.update import ParamPartition, init_opt_state, make_update

LR, WD, B1, B2, EPS, CLIP = 3e-6, 0.1, 0.9, 0.99, 1e-8, 0.2
IDS = jnp.asarray(np.random.default_rng(0).integers(3, 128, (4, 12)), jnp.int32)
TARGETS = jnp.asarray(np.random.default_rng(1).integers(3, 128, (4, 12)), jnp.int32)
NO_DECAY = ("attn_norm", "mlp_norm", "final_norm")


def _bf16_model():
    cfg = models.preset("tiny", param_dtype="bfloat16", dtype="bfloat16", n_layers=2)
    return models.init_model(cfg, seed=0)


def _loss(graphdef):
    def loss_fn(p, item):
        logp = jax.nn.log_softmax(models.forward(graphdef, p, item["ids"]), axis=-1)
        return -jnp.take_along_axis(logp, item["targets"][..., None], axis=-1).mean(), {}
    return loss_fn


def _numpy_adamw_step(w, g, decay):
    """optax.adamw's first step (plus global-norm clipping), in float64: m^ = g, v^ = g^2."""
    update = g / (np.sqrt(g * g) + EPS)
    return w - LR * (update + (WD * w if decay else 0.0))


def _expected(params_f32, grads, trainable):
    leaves = [np.asarray(g, np.float64) for g, m in zip(jax.tree.leaves(grads), trainable) if m]
    norm = np.sqrt(sum((g * g).sum() for g in leaves))
    scale = min(1.0, CLIP / norm)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params_f32)[0]]
    out = []
    it = iter(leaves)
    for path, w, m in zip(paths, jax.tree.leaves(params_f32), trainable):
        if m:
            out.append(_numpy_adamw_step(np.asarray(w, np.float64), next(it) * scale,
                                         not any(n in path for n in NO_DECAY)))
    return out


def _relative_error(new_leaves, old_leaves, want_leaves):
    """|| (new - old) - (want - old) || / || want - old || over every trainable entry."""
    got = np.concatenate([(np.asarray(n, np.float64) - np.asarray(o, np.float64)).ravel()
                          for n, o in zip(new_leaves, old_leaves)])
    want = np.concatenate([(w - np.asarray(o, np.float64)).ravel() for w, o in zip(want_leaves, old_leaves)])
    return np.linalg.norm(got - want) / np.linalg.norm(want)


def _step(loss_fn, params, partition):
    tx = make_optimizer(OptimizerSettings(learning_rate=LR, weight_decay=WD, b1=B1, b2=B2, grad_clip=CLIP))
    update = make_update(loss_fn, tx, partition)
    items = {"ids": IDS[None], "targets": TARGETS[None]}
    new, _, metrics = update(jax.tree.map(jnp.copy, params), init_opt_state(tx, params, partition), items)
    assert float(metrics["skipped"]) == 0.0
    return new


# Both cases are slow (full 15-35 s, LoRA about 50 s on a 2-core AMD EPYC, whose suite ran over 15 minutes
# with them): `python -m pytest -m slow tests/training/test_precision.py`.
@pytest.mark.parametrize("lora", [pytest.param(False, marks=pytest.mark.slow),
                                  pytest.param(True, marks=pytest.mark.slow)], ids=["full", "lora"])
def test_one_adamw_step_at_3e6_matches_float64_adamw(lora):
    model = _bf16_model()
    if lora:  # B factors made non-zero so that A gets gradients (a fresh B = 0 passes none to A)
        model = add_lora(model, LoRASettings(rank=8, alpha=16.0))
    graphdef, params = models.split(model)
    mask = jax.tree.leaves(trainable_mask(params)) if lora else [True] * len(jax.tree.leaves(params))
    if lora:
        leaves, treedef = jax.tree.flatten(params)
        keys = jax.random.split(jax.random.key(3), len(leaves))
        params = jax.tree.unflatten(treedef, [x + 0.05 * jax.random.normal(k, x.shape, x.dtype) if m else x
                                              for x, m, k in zip(leaves, mask, keys)])
    partition = ParamPartition(params, trainable_mask(params)) if lora else None
    loss_fn = _loss(graphdef)

    master = master_params(params, partition)
    trainable_before = [x for x, m in zip(jax.tree.leaves(master), mask) if m]
    assert all(x.dtype == jnp.float32 for x in trainable_before)
    frozen = [x for x, m in zip(jax.tree.leaves(master), mask) if not m]
    assert all(x.dtype == jnp.bfloat16 for x in frozen)  # the LoRA base stays in the storage dtype

    grads = jax.jit(jax.grad(lambda p: loss_fn(p, {"ids": IDS, "targets": TARGETS})[0]))(master)  # (jitted: op by op is slower)
    want = _expected(master, grads, mask)
    new = _step(loss_fn, master, partition)
    new_trainable = [x for x, m in zip(jax.tree.leaves(new), mask) if m]
    error = _relative_error(new_trainable, trainable_before, want)
    assert error < 5e-3, f"float32 trainable weights: relative error of the step {error:.4f}"
    for before, after in zip(frozen, [x for x, m in zip(jax.tree.leaves(new), mask) if not m]):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))

    # The same step with the trainable weights stored in bfloat16 (what the code did before) loses it.
    stored = cast_to(master, storage_dtypes(params))
    if lora:
        stored = jax.tree.map(lambda x, m: x.astype(jnp.bfloat16) if m else x, stored, trainable_mask(stored))
    old_style = _step(loss_fn, stored, ParamPartition(stored, trainable_mask(stored)) if lora else None)
    old_trainable = [x for x, m in zip(jax.tree.leaves(old_style), mask) if m]
    lost = _relative_error(old_trainable, [x for x, m in zip(jax.tree.leaves(stored), mask) if m], want)
    assert lost > 0.5, f"bfloat16 storage should round most of the step away, relative error {lost:.3f}"
