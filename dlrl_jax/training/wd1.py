"""wd1 as the loop sees it (objectives/wd1.py has the loss): `prepare` turns one rollout batch into
the items of each of the mu inner updates. wd1 needs no old-policy or reference pass, so preparing is
only the group-softmax weights and the prompt-mask keys.

The keys are those of diffu-GRPO (the same seed stream, fold_in(key, global update index) then the
micro-batch), so a resumed run draws the same prompt masks and the two methods see the same masks
for the same seed. Official schedule (wd1/trainers/rev_grpo_trainer.py `_prepare_inputs`): one rollout
reused for num_iterations (mu) optimizer steps, a fresh prompt mask for each.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dlrl_jax.objectives import diffu_grpo, wd1
from dlrl_jax.parallel.mesh import replicated
from dlrl_jax.parallel.transfer import to_global
from dlrl_jax.training.key_streams import DROPOUT_STREAM, MASK_STREAM


class WD1:
    record_greedy = False

    def __init__(self, run, rows):
        a = run.cfg.algorithm
        self.run, self.a, self.rows = run, a, rows
        self.settings = wd1.WD1Settings(mask_id=run.mask_id, p_mask_prompt=a.p_mask_prompt,
                                        negative_term=a.wd1_negative_term)
        self.loss = functools.partial(self._loss, run.graphdef, self.settings, rows // a.group_size)
        self.base_key = jax.random.fold_in(jax.random.key(run.cfg.seed), MASK_STREAM)  # diffu-GRPO's mask stream

    @staticmethod
    def _loss(graphdef, settings, num_groups, params, item):
        return wd1.wd1_loss(graphdef, params, dict(item, key=jax.random.wrap_key_data(item["key"])), settings,
                            num_groups)

    def prepare(self, traj, reward, records, params, ref_params, update_index):
        """Items [micro_batches, rows / micro_batches, ...] for each of the mu inner updates, and the
        metrics of the weights (the largest positive weight, mean over groups)."""

        a, run, M = self.a, self.run, self.a.micro_batches
        advantage_B = diffu_grpo.group_mean_advantages(reward, a.group_size)
        weight_B = np.asarray(wd1.sample_weights(advantage_B, a.group_size, a.wd1_negative_term))
        rows = {"prompt_ids": traj.tokens[:, :traj.prompt_length], "prompt_mask": traj.prompt_mask,
                "completion_ids": traj.completion,
                "completion_mask": diffu_grpo.completion_mask(traj.completion, run.tokenizer.eos_id),
                "weight": run.place(weight_B)}
        rows = jax.tree.map(lambda x: x.reshape(M, x.shape[0] // M, *x.shape[1:]), rows)
        inner = []
        for i in range(a.mu):
            key = jax.random.fold_in(self.base_key, update_index + i)
            micro_keys = [jax.random.fold_in(key, m) for m in range(M)]
            item = dict(rows, key=self._replicated([jax.random.key_data(k) for k in micro_keys]))
            if run.lora_dropout:
                item["dropout_key"] = self._replicated(
                    [jax.random.key_data(jax.random.fold_in(k, DROPOUT_STREAM)) for k in micro_keys])
            inner.append(item)
        positive_B = np.asarray(jax.nn.softmax(jnp.asarray(advantage_B).reshape(-1, a.group_size), axis=1))
        return inner, {"weight_max": float(positive_B.max(axis=1).mean())}

    def _replicated(self, key_data):
        return to_global(np.stack([np.asarray(k) for k in key_data]), replicated(self.run.mesh))
