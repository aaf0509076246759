"""The shape checks (chex) at the entries of the pure hot functions: a wrongly shaped argument is refused
while tracing, naming the shapes, where it would otherwise broadcast into a wrong result or fail deep
inside the model. Each case below would broadcast or reshape silently without its check (worked by hand
in the comments); none compiles anything."""

import jax
import numpy as np
import pytest

from dlrl_jax import rollout
from dlrl_jax.objectives import diffu_grpo, espo, selection, stepwise, wd1


def test_advantages_refuse_a_reward_of_the_wrong_shape():
    greedy = np.zeros((4, 2), np.float32)
    valid = np.ones((4, 2), bool)
    # a reward [1] would broadcast over the 4 rows: every row the same advantage
    with pytest.raises(AssertionError, match=r"assert_shape.*has shape \(1,\) but expected \(4\)"):
        stepwise.stepwise_advantages(np.ones(1, np.float32), greedy, valid, group_size=2, lam=0.5)
    # valid [4, 1] would be reshaped into groups of the wrong rows and broadcast over both columns
    with pytest.raises(AssertionError, match=r"assert_shape.*has shape \(4, 1\) but expected \(4, 2\)"):
        stepwise.stepwise_advantages(np.ones(4, np.float32), greedy, valid[:, :1], group_size=2, lam=0.5)
    # a [2, 2] reward table would be flattened into 4 rows by the group reshape
    for fn in (diffu_grpo.group_mean_advantages, espo.leave_one_out_advantages, wd1.sample_weights):
        with pytest.raises(AssertionError, match="assert_rank"):
            fn(np.ones((2, 2), np.float32), 2)


def test_wd1_loss_refuses_a_mask_or_weight_of_another_shape():
    logp = np.zeros((4, 3), np.float32)
    with pytest.raises(AssertionError, match="assert_equal_shape"):  # [4, 1] would broadcast over G
        wd1.weighted_likelihood_loss(logp, np.ones((4, 1), bool), np.ones(4, np.float32), num_groups=2)
    with pytest.raises(AssertionError, match="assert_shape"):  # [1] would weight every row alike
        wd1.weighted_likelihood_loss(logp, np.ones((4, 3), bool), np.ones(1, np.float32), num_groups=2)


def test_step_selection_and_rollout_refuse_mismatched_inputs():
    with pytest.raises(AssertionError, match="assert_equal_shape"):  # counts of 5 steps for 4 entropies
        selection.select_steps(np.zeros((2, 4), np.float32), np.ones((2, 5), np.int32), jax.random.key(0), k=1)
    settings = rollout.SamplerSettings(gen_length=4, block_length=4, steps=4, mask_id=9)
    with pytest.raises(AssertionError, match="assert_equal_shape"):  # a mask for 2 of the 3 prompt positions
        rollout.generate(None, None, np.ones((2, 3), np.int32), np.ones((2, 2), bool), jax.random.key(0), settings)
    with pytest.raises(AssertionError, match="assert_rank"):  # one prompt given without its batch axis
        rollout.generate(None, None, np.ones(3, np.int32), np.ones(3, bool), jax.random.key(0), settings)
