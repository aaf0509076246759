"""Adaptive step selection through the RL loop: K is chosen on the host from the rollout's entropies
(the smallest K whose top-K entropies reach alpha of every row's total, re-derived here with sorted
numpy), the iteration's items have K columns, and each distinct K compiles its own iteration."""

import numpy as np

from dlrl_jax import config
from dlrl_jax.app.run import Run
from dlrl_jax.training import loop
from tests.training.observe import observe_iterations


def _smallest_k(entropy_BxT, count_BxT, alpha):
    ks = []
    for entropy, count in zip(entropy_BxT, count_BxT):
        usable = sorted((float(e) for e, c in zip(entropy, count) if c > 0), reverse=True)
        total, running = sum(usable), 0.0
        for k, e in enumerate(usable, 1):
            running += e
            if running >= alpha * total - 1e-12:
                ks.append(k)
                break
    return max(ks)


def test_adaptive_k_is_chosen_on_the_host_and_shapes_the_items(tmp_path):
    cfg = config.load(None, [f"run.out_dir={tmp_path}", "sft.steps=0", "task.train_size=16", "task.eval_size=4",
                             "algorithm.name=egspo", "algorithm.selection=adaptive", "algorithm.adaptive_alpha=0.5",
                             "algorithm.prompts_per_batch=2", "algorithm.group_size=2", "sampler.gen_length=8",
                             "sampler.block_length=8", "sampler.steps=8", "run.progress=false",
                             "run.tensorboard=false"])
    run = Run(cfg)
    rl = loop.RLLoop(run, run.params, run.reference(run.params), progress=False)
    seen = []

    def observe(rl, traj, reward, selection, k):
        want = _smallest_k(np.asarray(traj.step_entropy), np.asarray(traj.step_count), 0.5)
        items, _ = rl.items(traj, reward, selection, k)
        seen.append((k, want, items["step"].shape))

    observe_iterations(rl, observe)
    metrics = [rl.step() for _ in range(3)]
    rl.close()
    run.writer.close()
    for (k, want, shape), m in zip(seen, metrics):
        # the official schedule (columns_per_update 2 by default) rounds K up to whole optimizer steps
        assert k == m["k"] == min(-(-want // 2) * 2, 8)
        assert shape == (k // 2, 2, 4)  # K / 2 optimizer steps of 2 columns x 4 rows
        assert int(np.sum(m["selected_histogram"])) <= 4 * k
    assert len(rl.iteration_fn.inner._jitted) == len({k for k, _, _ in seen})  # one compiled iteration per K
