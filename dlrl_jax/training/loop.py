"""The training loop: SFT warm start, then RL iterations of
prompts -> rollout -> rewards -> advantages -> update(s) -> metrics. Held-out evaluation, checkpoints
and the metrics sinks are the application's (`dlrl_jax.app`).

An RL iteration's host part is the prompts' encoding, decoding and scoring (and EGSPO-SA's greedy
scoring); the rollout is its own jitted call and everything after the rewards one more
(`training.iteration`), both over the loop's `TrainState` (`training.state`): no object reaches into
another for keys or placement."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from dlrl_jax import parallel, rollout
from dlrl_jax.models.lora import adapter_off
from dlrl_jax.parallel.transfer import to_host
from dlrl_jax.training import precision, setup
from dlrl_jax.training.algorithm_settings import optimizer_steps_per_iteration
from dlrl_jax.training.algorithms import ALGORITHMS
from dlrl_jax.training.algorithms.common import zero_variance_fraction
from dlrl_jax.training.iteration import Iteration, per_count, sync_reference  # noqa: F401  (sync_reference: re-exported)
from dlrl_jax.training.optimizer import make_optimizer, rl_optimizer_settings
from dlrl_jax.training.sft_step import jit_step, make_sft_step, sft_optimizer
from dlrl_jax.training.state import STATE_LAYOUT, TrainState, split_key, state_shardings
from dlrl_jax.training.update import init_opt_state, make_update


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    """What the SFT and RL loops read of a run's settings; the driver makes it from the configuration
    (`dlrl_jax.app.run.Run.settings`), so the loops take their own sections and plain values only.

    seed: the run's seed (batch orders: seed for SFT, seed + 1 for RL). gen_length: completion tokens.
    temperature / cache: the training rollouts' sampling temperature and KV cache. iterations: the RL
    iterations of the whole run (the learning-rate schedule's length). sft / algorithm / optim: the
    `sft:`, `algorithm:` (training/algorithm_settings.py) and `optim:` sections."""

    seed: int
    gen_length: int
    temperature: float
    cache: str
    iterations: int
    sft: Any
    algorithm: Any
    optim: Any


class SFTLoop:
    """Masked-diffusion SFT on the task's target completions (the warm start), one `step()` at a time,
    over one `TrainState` (`self.state`: params, optimizer state, key, steps done; no reference), whose
    step is `training.sft_step` (the seeded program scans the same one). `state_tree()` / `meta()` /
    `load()`: a checkpoint taken when the run is preempted."""

    def __init__(self, run, params, steps: int, progress: bool):
        settings = run.settings
        tx = sft_optimizer(settings.sft)
        partition = run.partition(params)
        self.run, self.steps, self.B = run, steps, settings.sft.batch_size
        params = precision.master_params(params, partition)
        opt_state = parallel.onto_mesh(init_opt_state(tx, params, partition), run.mesh)
        self.state = TrainState.create(params, opt_state, None, run.key, run.mesh)
        self._step = jit_step(make_sft_step(run.graphdef, run.mask_id, self.B, tx, partition, run.lora_dropout),
                              partition)
        self.batches = run.batches(self.B, seed=settings.seed)
        self.step_index = 0
        self.bar = tqdm(total=steps, desc="sft", disable=not (progress and run.lead), dynamic_ncols=True)

    @property
    def params(self):
        return self.state.params

    def state_tree(self) -> dict:
        return self.state.to_tree()

    def checkpoint_target(self, meta: dict) -> dict:
        """The tree to restore the SFT checkpoint with `meta` into (older ones: params, opt_state, key)."""
        return self.state.checkpoint_target(meta)

    def meta(self) -> dict:
        return {"sft_step": self.step_index, "data": self.batches.state(), "iteration": self.step_index,
                "optimizer_steps": self.step_index, "state_layout": STATE_LAYOUT}

    def load(self, tree: dict, meta: dict) -> None:
        # an SFT checkpoint from before the TrainState held its counters: they are its step
        meta = {"iteration": meta["sft_step"], "optimizer_steps": meta["sft_step"], **meta}
        self.state = self.state.from_tree(tree, meta)
        self.step_index = self.state.counters()[0]
        self.batches.restore(meta["data"])
        self.bar.update(self.step_index)

    @property
    def done(self) -> bool:
        return self.step_index >= self.steps

    def step(self) -> None:
        run, step = self.run, self.step_index
        chunk = next(self.batches)
        ids, mask = run.encode(chunk)
        targets = setup.encode_targets(run.tokenizer, [run.task.target_text(r) for r in chunk],
                                       run.settings.gen_length)
        batch = {"prompt_ids": ids, "prompt_mask": mask, "completion_ids": run.place(targets)}
        self.state, m = self._step(self.state, batch)
        if step % 10 == 0 or step == self.steps - 1:
            loss = float(to_host(m["loss"]))
            self.bar.set_postfix(loss=f"{loss:.3f}")
            run.writer.write("sft", step, {"loss": loss, "grad_norm": to_host(m["grad_norm"])})
        self.step_index += 1
        self.bar.update(1)

    def close(self):
        """Ends the warm start; returns its final key, the key the RL iterations start from (the driver
        hands it on as `run.key`)."""
        self.bar.close()
        return jax.random.wrap_key_data(self.state.key)


_split = jax.jit(split_key)


def run_sft(run, params, steps: int, progress: bool):
    """Masked-diffusion SFT on the task's target completions (the warm start), uninterrupted, as a driver
    runs it: the final key becomes `run.key`, where the RL iterations start."""
    sft = SFTLoop(run, params, steps, progress)
    while not sft.done:
        sft.step()
    run.key = sft.close()
    return sft.params


class RLLoop:
    """RL iterations of the configured algorithm, one `step()` at a time, over one `TrainState`
    (`self.state`: params, optimizer state, reference, key, counters). A resumed run needs the state's
    tree (`state_tree()`) and `meta()` (JSON: the counters again and the data iterator's position).

    The host part of an iteration is the prompts' encoding, the rollout (its own jitted call), decoding
    and scoring (and for EGSPO-SA the selection and the greedy completions' scores); everything after the
    rewards is one jitted call (`training.iteration.Iteration`)."""

    def __init__(self, run, params, ref_params, progress: bool = True):
        settings = run.settings
        a = settings.algorithm
        self.run = run
        self.B, self.G = a.prompts_per_batch * a.group_size, a.group_size
        self.context = run.context(params)
        self.algorithm = ALGORITHMS[a.name].make(self.context)
        # training rollouts may use the approximate KV cache (sampler.cache); held-out evaluation stays exact
        self.sampler = run.sampler(settings.temperature, record_greedy=self.algorithm.record_greedy,
                                   cache=settings.cache)
        tx = make_optimizer(rl_optimizer_settings(settings.optim, a, settings.iterations,
                                                  self.algorithm.select is not None))
        partition = self.context.partition
        params = precision.master_params(params, partition)
        # moments follow the params' shardings; counters would sit on one device: replicate them
        opt_state = parallel.onto_mesh(init_opt_state(tx, params, partition), run.mesh)
        # with LoRA the reference is the base itself (adapter off): nothing to store
        # (a copy where the caller passed the policy's own arrays: the jitted iteration donates the state)
        ref = None if partition is not None else parallel.onto_mesh(
            jax.tree.map(lambda r, p: jnp.copy(r) if r is p else r, ref_params, params), run.mesh)
        self.state = TrainState.create(params, opt_state, ref, run.key, run.mesh)
        self.iteration_fn = Iteration(self.context, self.algorithm, tx, state_shardings(self.state))
        # one optimizer step on its own (jitted, donating), for inspection: the scan's step in `iteration_fn`
        self.update = make_update(self.algorithm.loss, tx, partition)
        self._select = jax.jit(self.algorithm.select, static_argnames="k") if self.algorithm.select else None
        self.batches = run.batches(a.prompts_per_batch, seed=settings.seed + 1)
        self.iteration, self.optimizer_steps = 0, 0  # host copies of the state's counters
        self._memory_reported = False
        self.bar = tqdm(total=settings.iterations, desc=a.name, disable=not (progress and run.lead), dynamic_ncols=True)

    @property
    def params(self):
        return self.state.params

    @property
    def opt_state(self):
        return self.state.opt_state

    @property
    def ref_params(self):
        """The reference parameters (with LoRA the policy's with the adapter off)."""
        return adapter_off(self.state.params) if self.state.ref_params is None else self.state.ref_params

    @property
    def memory(self):
        return self.iteration_fn.memory

    def state_tree(self) -> dict:
        return self.state.to_tree()

    def checkpoint_target(self, meta: dict) -> dict:
        """The tree to restore the checkpoint with `meta` into (older checkpoints: without the counters)."""
        return self.state.checkpoint_target(meta)

    def meta(self) -> dict:
        return {"iteration": self.iteration, "data": self.batches.state(), "optimizer_steps": self.optimizer_steps,
                "state_layout": STATE_LAYOUT}

    def load(self, tree: dict, meta: dict) -> None:
        self.state = self.state.from_tree(tree, meta)
        self.iteration, self.optimizer_steps = self.state.counters()
        self.batches.restore(meta["data"])
        self.bar.update(self.iteration)

    def items(self, traj, reward, selection=None, k: int | None = None):
        """The update items (stacked [optimizer steps, items per step, ...]) and the algorithm's metrics
        that the next iteration's jitted call will form from this rollout and these rewards (for
        inspection; the state is not changed)."""
        a, algorithm = self.run.settings.algorithm, self.algorithm
        k = a.k if k is None else k
        state = self.state
        if selection is None and algorithm.select is not None:
            selection = self._select(split_key(state.key)[1], _without_greedy(traj), k=k)
        ref = state.ref_params if state.ref_params is not None else state.params
        return jax.jit(lambda p, r, b, rw, sel, i: algorithm.prepare(p, r, b, rw, sel, i, k))(
            state.params, ref, _without_greedy(traj), jnp.asarray(reward, jnp.float32), selection,
            state.iteration * a.mu)

    def step(self) -> dict:
        """One iteration: prompts -> rollout -> rewards -> (selection, advantages, mu updates) -> metrics.

        The metrics carry each phase's wall-clock seconds (time_rollout, time_reward, time_reference: the
        host part after the rewards, i.e. EGSPO-SA's step selection and greedy rewards, and adaptive K;
        time_update: the one jitted call of everything else, old/reference terms included,
        time_iteration); a phase's device work is waited for before its clock stops."""
        run, a, algorithm = self.run, self.run.settings.algorithm, self.algorithm
        clock = _PhaseClock()
        prompts = next(self.batches)
        records = [r for r in prompts for _ in range(self.G)]  # rows of one prompt are contiguous: a group
        ids, mask = run.encode(records)
        key, rollout_key = _split(self.state.key)
        self.state = self.state.replace(key=key)
        traj = clock.stop("rollout", rollout.generate(run.graphdef, self.state.params, ids, mask, rollout_key,
                                                      self.sampler))
        reward = clock.stop("reward", run.task.score(run.decode(traj.completion), records))
        k, selection, extra = a.k, None, {}
        if algorithm.select is not None:
            if algorithm.host_k is not None:  # adaptive K: a shape, so chosen on the host
                k = algorithm.host_k(to_host(traj.step_entropy), to_host(traj.step_count), traj.num_steps)
            greedy_reward = np.zeros((self.B, k), np.float32)
            if algorithm.record_greedy:  # EGSPO-SA: the greedy completions of the selected steps, scored here
                key, select_key = _split(self.state.key)
                self.state = self.state.replace(key=key)
                selection = self._select(select_key, _without_greedy(traj), k=k)
                greedy = np.take_along_axis(to_host(traj.greedy), to_host(selection.steps)[:, :, None], axis=1)
                texts = run.decode(greedy.reshape(self.B * k, -1))
                greedy_reward = run.task.score(texts, [r for r in records for _ in range(k)]).reshape(self.B, k)
                selection = selection.replace(greedy_reward=np.asarray(greedy_reward, np.float32))
            extra = {"greedy_reward_mean": greedy_reward.mean(), "k": k}
        clock.stop("reference", selection)
        self.state, (m, device_extra) = self.iteration_fn(self.state, _without_greedy(traj),
                                                          np.asarray(reward, np.float32), selection, k=k)
        if not self._memory_reported and self.memory and run.lead:  # once, after the first compile
            self._memory_reported = True
            tqdm.write("[dlrl-jax] compiled iteration, per device: " + ", ".join(
                f"{name} {v:.3f} GiB" for name, v in self.memory.items()))
        m = clock.stop("update", {name: to_host(v) for name, v in m.items()})
        extra.update({name: _host_value(v) for name, v in device_extra.items()})
        self.optimizer_steps += self._steps_per_iteration(k)
        metrics = dict(extra, reward_mean=reward.mean(), reward_std=reward.std(),
                       zero_variance_fraction=float(zero_variance_fraction(reward, self.G)),
                       **per_count({name: float(v) for name, v in m.items()}),
                       tokens_per_s=self.B * run.settings.gen_length / clock.total(),
                       entropy_profile=to_host(traj.step_entropy).mean(axis=0), **clock.seconds())
        run.writer.write("rl", self.iteration, metrics)
        self.iteration += 1
        self.bar.update(1)
        health = {"r1": f"{metrics['first_ratio_dev']:.1e}"} if "first_ratio_dev" in metrics else {}
        self.bar.set_postfix(reward=f"{reward.mean():.3f}", kl=f"{metrics.get('kl', 0.0):.4f}", **health,
                             s=" ".join(f"{name[5:]} {v:.2f}" for name, v in clock.seconds().items()
                                        if name != "time_iteration"))
        return metrics

    def _steps_per_iteration(self, k: int) -> int:
        """Optimizer steps per iteration (for the host copy of the state's counter)."""
        return optimizer_steps_per_iteration(self.run.settings.algorithm, self.algorithm.select is not None, k)

    def close(self) -> None:
        self.bar.close()


def _without_greedy(traj):
    """The trajectory the jitted parts take: the greedy completions stay on the host side."""
    return traj.replace(greedy=None)


def _host_value(x):
    x = to_host(x)
    return x.item() if x.ndim == 0 else x


class _PhaseClock:
    """Wall-clock seconds per phase of an iteration; `stop` waits for the phase's arrays first."""

    def __init__(self):
        self._start = self._last = time.perf_counter()
        self._seconds: dict[str, float] = {}

    def stop(self, phase: str, value):
        jax.block_until_ready(value)
        now = time.perf_counter()
        self._seconds[f"time_{phase}"] = now - self._last
        self._last = now
        return value

    def total(self) -> float:
        return time.perf_counter() - self._start

    def seconds(self) -> dict[str, float]:
        return dict(self._seconds, time_iteration=self._last - self._start)
