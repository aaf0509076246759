"""Checkpoint retention: the newest N plus the N best by held-out reward, the ranking surviving a
restart of the manager (a resumed job); checkpoints saved without an evaluation count only while
they are among the newest."""

import jax.numpy as jnp
import numpy as np

from dlrl_jax.checkpoints.train_state import TrainStateCheckpointer


def _save_all(checkpointer, rewards):
    for step, reward in rewards.items():
        checkpointer.save(step, {"w": jnp.full((3,), float(step))}, {"step": step}, eval_reward=reward)
        checkpointer.wait()


def test_newest_and_best_are_kept_across_restarts(tmp_path):
    rewards = {0: 0.30, 2: 0.90, 4: 0.10, 5: None, 6: 0.50, 7: None, 8: 0.20}
    checkpointer = TrainStateCheckpointer(str(tmp_path), max_to_keep=2, keep_best=2)
    _save_all(checkpointer, rewards)
    # newest two: 7, 8; best two by reward: 2 (0.9), 6 (0.5)
    assert sorted(checkpointer.all_steps()) == [2, 6, 7, 8]
    checkpointer.close()

    again = TrainStateCheckpointer(str(tmp_path), max_to_keep=2, keep_best=2)
    _save_all(again, {9: 0.95, 10: None})
    # newest two: 9, 10; best two: 9 (0.95), 2 (0.9) -- step 2's reward was read back from disk
    assert sorted(again.all_steps()) == [2, 9, 10]
    state, meta = again.restore(2, {"w": jnp.zeros((3,))})
    np.testing.assert_array_equal(np.asarray(state["w"]), 2.0)
    assert meta == {"step": 2}
    again.close()


def test_without_best_only_the_newest_are_kept(tmp_path):
    checkpointer = TrainStateCheckpointer(str(tmp_path), max_to_keep=2)
    _save_all(checkpointer, {0: 0.9, 1: None, 2: 0.1})
    assert sorted(checkpointer.all_steps()) == [1, 2]
    checkpointer.close()
