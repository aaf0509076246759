"""LoRA dropout reaches the training losses: with model.lora_dropout > 0 every update item carries its
own dropout key (fresh per item, inner update and iteration), and the loss on an item changes when
its key is dropped."""

import jax
import numpy as np
import pytest

from dlrl_jax import config
from dlrl_jax.app.run import Run
from dlrl_jax.training import loop
from tests.training.observe import observe_iterations


def _captured_items(tmp_path, algorithm, dropout):
    # The settings of the EGSPO run in tests/training/test_end_to_end.py (earlier in the suite), driven as
    # `dlrl-jax train` drives it (under the run's mesh, which adds the activations' sharding constraints
    # to the programs): the rollout and the iteration come from the suite's compilation cache.
    cfg = config.load(None, [f"run.out_dir={tmp_path}", "sft.steps=0", "task.train_size=32", "task.eval_size=8",
                             "algorithm.prompts_per_batch=2", "algorithm.group_size=4", "run.progress=false",
                             "run.tensorboard=false", f"algorithm.name={algorithm}", "algorithm.mu=2",
                             "algorithm.micro_batches=2", "algorithm.elbo_samples=1", "model.lora_rank=4",
                             f"model.lora_dropout={dropout}"])
    run = Run(cfg)
    with jax.set_mesh(run.mesh):
        rl = loop.RLLoop(run, run.params, run.reference(run.params), progress=False)
        captured = []

        def capture(rl, traj, reward, selection, k):  # the items the iteration's jitted call forms next
            captured.append(rl.items(traj, reward, selection, k)[0])

        observe_iterations(rl, capture)
        rl.step()
        rl.step()
    rl.close()
    run.writer.close()
    # [optimizer steps, items per step, ...] stacks -> one entry per inner update: 2 iterations x mu 2
    return rl, [jax.tree.map(lambda x, i=i: x[i], stack) for stack in captured for i in range(len(stack["advantage"]))]


# ESPO's case is slow (15-30 s): EGSPO's case runs the same items-and-keys path, and
# tests/objectives/test_elbo.py checks the ELBO passes' own dropout draws against separate forwards.
# (both slow since the suite ran over 15 minutes on a 2-core AMD EPYC: egspo about 40 s)
@pytest.mark.parametrize("algorithm", [pytest.param("egspo", marks=pytest.mark.slow),
                                       pytest.param("espo", marks=pytest.mark.slow)])
def test_update_items_carry_fresh_dropout_keys_that_the_loss_uses(tmp_path, algorithm):
    rl, updates = _captured_items(tmp_path, algorithm, 0.1)
    keys = np.concatenate([np.asarray(items["dropout_key"]).reshape(-1, 2) for items in updates])
    assert len(keys) >= 4 and len({tuple(k) for k in keys}) == len(keys)  # every item draws its own masks
    item = jax.tree.map(lambda x: x[0], updates[-1])
    loss = jax.jit(rl.algorithm.loss)  # (one compile per item structure; op by op it takes 3-4x longer)
    with_dropout = float(loss(rl.params, item)[0])
    without = float(loss(rl.params, {k: v for k, v in item.items() if k != "dropout_key"})[0])
    # the trained adapter is no longer zero, so dropping its input matters: by far more than the two
    # programs' rounding (~1e-7 of the loss's O(1)-nat terms; measured: 2.5e-5 at a loss of 6e-5)
    assert abs(with_dropout - without) > 1e-6, (with_dropout, without)

