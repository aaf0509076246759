"""The train state as one checkpoint tree (the layout with the counters, and the layout before it with
the counters only in the JSON meta), and the typed update items' one-line shape errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlrl_jax import parallel
from dlrl_jax.app.run import Run
from dlrl_jax.checkpoints.train_state import TrainStateCheckpointer
from dlrl_jax.training.items import ESPOItem, ItemError, StepwiseItem
from dlrl_jax.training.state import STATE_LAYOUT, TrainState


def _state(mesh, scale=1.0, iteration=0, steps=0, ref=True):
    params = {"w": jnp.full((4, 3), scale, jnp.float32), "b": jnp.arange(3, dtype=jnp.float32) * scale}
    opt_state = {"mu": jax.tree.map(lambda x: x * 0.5, params), "count": jnp.int32(7 * scale)}
    ref_params = parallel.onto_mesh(jax.tree.map(lambda x: x - 1.0, params), mesh) if ref else None
    return TrainState.create(parallel.onto_mesh(params, mesh), parallel.onto_mesh(opt_state, mesh), ref_params,
                             jax.random.key(int(scale)), mesh, iteration, steps)


def _equal(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("ref", [True, False])
def test_state_round_trips_as_one_tree(tmp_path, ref):
    mesh = parallel.make_mesh(1, 1, 1)
    saved, fresh = _state(mesh, 3.0, iteration=5, steps=10, ref=ref), _state(mesh, ref=ref)
    ckpt = TrainStateCheckpointer(str(tmp_path))
    meta = {"iteration": 5, "optimizer_steps": 10, "state_layout": STATE_LAYOUT}
    ckpt.save(5, saved.to_tree(), meta)
    ckpt.wait()
    tree, got_meta = ckpt.restore(5, fresh.checkpoint_target(meta))
    ckpt.close()
    restored = fresh.from_tree(tree, got_meta)
    assert restored.counters() == (5, 10)
    assert ("ref_params" in tree) == ref and (restored.ref_params is None) == (not ref)
    assert _equal(restored, saved)
    np.testing.assert_array_equal(np.asarray(restored.key), np.asarray(jax.random.key_data(jax.random.key(3))))


def test_a_checkpoint_of_the_layout_before_restores_with_its_counters_from_meta(tmp_path):
    mesh = parallel.make_mesh(1, 1, 1)
    saved, fresh = _state(mesh, 2.0), _state(mesh)
    old_tree = {"params": saved.params, "opt_state": saved.opt_state, "key": saved.key, "ref_params": saved.ref_params}
    old_meta = {"iteration": 3, "optimizer_steps": 6, "data": {}}  # no state_layout: the layout before
    ckpt = TrainStateCheckpointer(str(tmp_path))
    ckpt.save(3, old_tree, old_meta)
    ckpt.wait()
    tree, meta = ckpt.restore(3, fresh.checkpoint_target(old_meta))
    ckpt.close()
    restored = fresh.from_tree(tree, meta)
    assert restored.counters() == (3, 6)
    assert _equal((restored.params, restored.opt_state, restored.ref_params, restored.key),
                  (saved.params, saved.opt_state, saved.ref_params, saved.key))


def _stepwise(B=4, P=3, G=5):
    return StepwiseItem(tokens=np.zeros((B, P + G), np.int32), prompt_mask=np.ones((B, P), bool),
                        unmask_step=np.zeros((B, G), np.int32), step=np.zeros(B, np.int32), valid=np.ones(B, bool),
                        advantage=np.zeros(B, np.float32), old_logprob=np.zeros(B, np.float32),
                        ref_logprob=np.zeros(B, np.float32))


def test_items_validate_and_read_like_the_losses_batches():
    item = _stepwise()
    assert item.validate() is item
    assert "dropout_key" not in item and "tokens" in item and item.get("dropout_key", 0) == 0
    assert sorted(dict(item)) == sorted(["tokens", "prompt_mask", "unmask_step", "step", "valid", "advantage",
                                         "old_logprob", "ref_logprob"])
    stacked = jax.tree.map(lambda x: np.stack([x, x]), item)  # leading axes (optimizer steps) are allowed
    stacked.validate()


def test_items_name_the_bad_field_in_one_line():
    cases = [
        (_stepwise().replace(advantage=np.zeros(3, np.float32)),
         "StepwiseItem.advantage: shape [3] has B = 3, other fields B = 4"),
        (_stepwise().replace(tokens=np.zeros((4, 9), np.int32)), "StepwiseItem.tokens: L = 9 is not P + G = 3 + 5"),
        (_stepwise().replace(step=np.zeros((2, 4), np.int32)),
         "StepwiseItem.step: leading axes [2], the other fields have []"),
        (ESPOItem(prompt_ids=np.zeros((2, 3), np.int32), prompt_mask=np.ones((2, 3), bool),
                  completion_ids=np.zeros((2, 4), np.int32), advantage=np.zeros(2, np.float32),
                  key=np.zeros(2, np.uint32), old_elbo=np.zeros(2, np.float32), ref_elbo=np.zeros((2, 1), np.float32)),
         "ESPOItem.ref_elbo: leading axes [2], the other fields have []"),
    ]
    for item, message in cases:
        with pytest.raises(ItemError) as error:
            item.validate()
        assert str(error.value) == message and "\n" not in str(error.value)


def test_an_sft_checkpoint_of_the_layout_before_resumes_the_warm_start(tmp_path):
    """The SFT warm start now carries a TrainState (counters in the tree); an SFT checkpoint written
    before (params, opt_state and key only, the step in meta["sft_step"]) restores into it, and the
    resumed step is the step the uninterrupted warm start takes."""
    from dlrl_jax import config
    from dlrl_jax.training import loop

    cfg = config.load(None, ["task.train_size=64", "task.eval_size=16", "sft.batch_size=8", "run.progress=false",
                             f"run.out_dir={tmp_path / 'run'}", "run.tensorboard=false"])
    run = Run(cfg)
    straight = loop.SFTLoop(run, run.params, steps=3, progress=False)
    for _ in range(2):
        straight.step()
    old_tree = {"params": straight.state.params, "opt_state": straight.state.opt_state, "key": straight.state.key}
    old_meta = {"sft_step": 2, "data": straight.batches.state()}  # no state_layout, no counters
    ckpt = TrainStateCheckpointer(str(tmp_path / "ckpt"))
    ckpt.save(2, old_tree, old_meta)
    ckpt.wait()
    resumed = loop.SFTLoop(Run(cfg), run.params, steps=3, progress=False)
    tree, meta = ckpt.restore(2, resumed.checkpoint_target(old_meta))
    ckpt.close()
    resumed.load(tree, meta)
    assert resumed.step_index == 2 and resumed.state.counters() == (2, 2)
    straight.step()
    resumed.step()
    assert _equal(resumed.state, straight.state) and resumed.done and straight.done
