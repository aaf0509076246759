"""The RL algorithms as the loop sees them: a loss for the jitted update, and `prepare`, which turns
one rollout batch into the stacked items of each of the mu inner updates (plus metrics).

egspo / egspo_sa: selected denoising steps (ALGORITHMS.md §3); espo: the ELBO sequence ratio (§4);
diffu_grpo: d1's one-step token log-probs (§5). Mask draws of ESPO and diffu-GRPO come from
fold_in(seed key, global update index), so a resumed run draws the same masks.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dlrl_jax.objectives import diffu_grpo, espo, stepwise
from dlrl_jax.objectives.selection import adaptive_k, select_steps
from dlrl_jax.parallel.distributed import to_global, to_host
from dlrl_jax.parallel.mesh import replicated


DROPOUT_STREAM = 0xD0  # fold_in index of the LoRA dropout keys, apart from every mask-draw key


def _stack(items_list):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *items_list)


def _split_rows(tree, micro_batches):
    return jax.tree.map(lambda x: x.reshape(micro_batches, x.shape[0] // micro_batches, *x.shape[1:]), tree)


class EGSPO:
    def __init__(self, run, rows):
        cfg, a = run.cfg, run.cfg.algorithm
        self.run, self.a, self.rows = run, a, rows
        self.lam = a.lam if a.name == "egspo_sa" else 0.0
        self.record_greedy = self.lam > 0
        settings = stepwise.StepwiseLossSettings(
            mask_id=run.mask_id, tokens_per_step=cfg.sampler.gen_length / cfg.sampler.steps, eps_low=a.eps_low,
            eps_high=a.eps_high, beta=a.beta, aggregation=a.aggregation)
        self.loss = functools.partial(stepwise.stepwise_loss, run.graphdef, settings=settings, total_rows=rows)
        self._ref = jax.jit(functools.partial(stepwise.selected_step_logprobs, mask_id=run.mask_id,
                                              aggregation=a.aggregation), static_argnums=0)

    def prepare(self, traj, reward, records, params, ref_params, update_index):
        run, a, B = self.run, self.a, self.rows
        k = a.k
        if a.selection == "adaptive":
            k = adaptive_k(to_host(traj.step_entropy), to_host(traj.step_count), a.adaptive_alpha, k_max=traj.num_steps)
        mode = "top_k_entropy" if a.selection == "adaptive" else a.selection
        steps, valid = select_steps(traj.step_entropy, traj.step_count, run.next_key(), k=k, mode=mode)
        if self.lam > 0:
            greedy = np.take_along_axis(to_host(traj.greedy), to_host(steps)[:, :, None], axis=1)
            texts = run.decode(greedy.reshape(B * k, -1))
            greedy_reward = run.task.score(texts, [r for r in records for _ in range(k)]).reshape(B, k)
        else:
            greedy_reward = np.zeros((B, k), np.float32)
        adv = stepwise.stepwise_advantages(reward, greedy_reward, to_host(valid), a.group_size, self.lam)
        old = jnp.take_along_axis(traj.step_logprob, steps, axis=1)
        ref = self._ref(run.graphdef, ref_params, traj.tokens, traj.prompt_mask, traj.unmask_step, steps) \
            if a.beta > 0 else old
        adv = run.place(adv)  # host values onto the mesh, like the trajectory's arrays
        items = stepwise.column_items(traj.tokens, traj.prompt_mask, traj.unmask_step, steps, valid, adv, old, ref,
                                      micro_batches=a.micro_batches)
        metrics = {"greedy_reward_mean": greedy_reward.mean(), "k": k,
                   "selected_histogram": np.bincount(to_host(steps)[to_host(valid)], minlength=traj.num_steps)}
        if not run.lora_dropout:
            return [items] * a.mu, metrics
        n_items = a.micro_batches * k
        base = jax.random.fold_in(jax.random.key(run.cfg.seed), DROPOUT_STREAM)
        keys = [jax.random.key_data(jax.random.split(jax.random.fold_in(base, update_index + i), n_items))
                for i in range(a.mu)]  # a fresh dropout draw for every item of every inner update
        return [dict(items, dropout_key=to_global(k_i, replicated(run.mesh))) for k_i in keys], metrics


class _SequenceLevel:
    """Shared by ESPO and diffu-GRPO: fresh mask draws per inner update, old/ref under the same draw."""

    record_greedy = False

    def __init__(self, run, rows):
        self.run, self.a, self.rows = run, run.cfg.algorithm, rows
        self.base_key = jax.random.fold_in(jax.random.key(run.cfg.seed), 0x5EED)

    def _batch(self, traj):
        return {"prompt_ids": traj.tokens[:, :traj.prompt_length], "prompt_mask": traj.prompt_mask,
                "completion_ids": traj.completion}

    def prepare(self, traj, reward, records, params, ref_params, update_index):
        a = self.a
        advantage = self.run.place(np.asarray(self.advantages(reward), np.float32))
        batch = _split_rows(dict(self._batch(traj), advantage=advantage), a.micro_batches)
        inner = []
        for i in range(a.mu):
            key = jax.random.fold_in(self.base_key, update_index + i)
            micro = []
            for m in range(a.micro_batches):
                item = jax.tree.map(lambda x: x[m], batch)
                item["key"] = to_global(jax.random.key_data(jax.random.fold_in(key, m)), replicated(self.run.mesh))
                item.update(self.reference_terms(item, params, ref_params))  # old/ref: no dropout
                if self.run.lora_dropout:
                    item["dropout_key"] = to_global(jax.random.key_data(jax.random.fold_in(
                        jax.random.fold_in(key, m), DROPOUT_STREAM)), replicated(self.run.mesh))
                micro.append(item)
            inner.append(_stack(micro))
        return inner, {}


class ESPO(_SequenceLevel):
    def __init__(self, run, rows):
        super().__init__(run, rows)
        a = self.a
        self.settings = espo.ESPOSettings(mask_id=run.mask_id, num_samples=a.elbo_samples, coupled=True,
                                          eps=a.eps_low, beta=a.beta, remat=a.elbo_remat)
        self.loss = functools.partial(self._loss, run.graphdef, self.settings, rows)
        self._elbo = jax.jit(lambda graphdef, p, item: espo.elbos(
            graphdef, p, item, jax.random.wrap_key_data(item["key"]), self.settings), static_argnums=0)

    @staticmethod
    def _loss(graphdef, settings, rows, params, item):
        return espo.espo_loss(graphdef, params, dict(item, key=jax.random.wrap_key_data(item["key"])), settings, rows)

    def advantages(self, reward):
        return espo.leave_one_out_advantages(reward, self.a.group_size)

    def reference_terms(self, item, params, ref_params):
        g = self.run.graphdef
        old = self._elbo(g, params, item)
        return {"old_elbo": old, "ref_elbo": self._elbo(g, ref_params, item) if self.a.beta > 0 else old}


class DiffuGRPO(_SequenceLevel):
    def __init__(self, run, rows):
        super().__init__(run, rows)
        a = self.a
        self.settings = diffu_grpo.DiffuGRPOSettings(mask_id=run.mask_id, p_mask_prompt=a.p_mask_prompt,
                                                     eps=a.eps_low, beta=a.beta)
        self.loss = functools.partial(self._loss, run.graphdef, self.settings, rows)
        self._logp = jax.jit(lambda graphdef, p, item: diffu_grpo.token_logprobs(
            graphdef, p, item["prompt_ids"], item["prompt_mask"], item["completion_ids"],
            jax.random.wrap_key_data(item["key"]), self.settings), static_argnums=0)

    @staticmethod
    def _loss(graphdef, settings, rows, params, item):
        return diffu_grpo.diffu_grpo_loss(graphdef, params, dict(item, key=jax.random.wrap_key_data(item["key"])),
                                          settings, rows)

    def _batch(self, traj):
        return dict(super()._batch(traj),
                    completion_mask=diffu_grpo.completion_mask(traj.completion, self.run.tokenizer.eos_id))

    def advantages(self, reward):
        return diffu_grpo.group_mean_advantages(reward, self.a.group_size)

    def reference_terms(self, item, params, ref_params):
        g = self.run.graphdef
        old = self._logp(g, params, item)
        return {"old_logprob": old, "ref_logprob": self._logp(g, ref_params, item) if self.a.beta > 0 else old}


ALGORITHMS = {"egspo": EGSPO, "egspo_sa": EGSPO, "espo": ESPO, "diffu_grpo": DiffuGRPO}
