"""Many seeds in one compiled program: the whole tiny-Sudoku run -- SFT warm start, RL iterations,
held-out greedy evaluation -- as one pure function of the seed (purejaxrl's `make_train(config) ->
train(rng)`), so that `jax.jit(jax.vmap(train))` runs N seeds at once.

    train = make_train(cfg)                                    # host: checks, graphdef, token tables
    data = stack_seed_data([seed_data(cfg, s) for s in seeds])   # host: each seed's puzzles and batch order
    metrics = jax.jit(jax.vmap(train))(jnp.asarray(seeds, jnp.int32), data)

`train(seed, data) -> metrics` is pure: the seed is an int32 scalar (a tracer under vmap) and `data` a
`SeedData` of arrays, so nothing in it touches the host.

One engine: it is built from the pieces `dlrl-jax train` runs, not copies of them.
- The SFT warm start is a `lax.scan` of `training.sft_step`'s step over a `TrainState` (the loop jits
  the same step).
- An RL iteration is the rollout (`rollout.generate` with the sampler settings of
  `setup.sampler_settings`), the Sudoku reward in JAX from the token ids (`rewards.sudoku_tokens`, tested
  equal to the host reward), EGSPO-SA's step selection and greedy scores, then the loop's own
  post-reward function, `training.iteration.Iteration.iterate` (selection for EGSPO, advantages,
  old/reference terms, the `lax.scan` over optimizer steps, reference syncing, the counters) with the
  seed traced.
- Held-out evaluation samples with the same settings and keys (`key_streams.eval_key`, folded with
  each batch's first row) as `app.evaluation.held_out`; the parameters at each evaluation point (after
  SFT, every `run.eval_every` iterations, at the end) are kept and evaluated together at the end by one
  `lax.map` (one compiled evaluation; the same numbers, since evaluation has its own keys).

What else is the same as `dlrl-jax train` for a seed: the records (`build_task` with that seed), the
SFT and RL batch orders (the grain streams of seed and seed + 1, read on the host into index arrays),
the model (`nnx.Rngs(params=seed)` for a preset; a `model.path` folder is loaded once on the host and
handed in through `SeedData.init_params`), the float32 master weights and the reference in the storage
dtype, and the run's key chain (one split per SFT step, per rollout and per step selection).

Where it differs: it is one XLA program, so fusions and reduction orders differ from the loop's
separately jitted pieces and results agree to float32 rounding at first, not bit for bit; the
rollouts are sampled, so two runs drift apart once a rounding flips a sampled token
(tests/training/test_seeded_equals_train.py compares the two on a short run of every algorithm).
Every SFT step's loss is returned (the loop logs every 10th). No checkpoints, resume, metrics files,
phase clocks or pass@k; one device, no mesh.

Refused with a one-line error, because each needs the host inside an iteration: tasks other than
the generated Sudoku, training/evaluation files and reward sets other than dlrl (the reward is computed
from token ids in JAX, `rewards.sudoku_tokens`, which knows the 4x4 grid and the dlrl reward only),
`task.decode: official` (the official decoders are text functions), adaptive step selection (K is
a shape chosen from the host's entropies) and LoRA / adapters / a quantized base (the adapters are
added by the host's model surgery, outside the seed's pure initialisation).

Shapes: N training records, E held-out records (padded to a whole number of evaluation batches), P
prompt, G completion, S SFT steps, I RL iterations, B rows per rollout (prompts x group), K selected steps.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

from dlrl_jax import rollout
from dlrl_jax.config import Config, ConfigError
from dlrl_jax.data.pipeline import BatchStream
from dlrl_jax.models.transformer import Transformer
from dlrl_jax.rewards.sudoku_tokens import TokenTable, cells, sudoku_cell_reward
from dlrl_jax.tasks import build_task
from dlrl_jax.training import precision, setup
from dlrl_jax.training.algorithms import ALGORITHMS
from dlrl_jax.training.algorithms.common import zero_variance_fraction
from dlrl_jax.training.iteration import Iteration, per_count
from dlrl_jax.training.key_streams import eval_key
from dlrl_jax.training.optimizer import make_optimizer, rl_optimizer_settings
from dlrl_jax.training.sft_step import make_sft_step, sft_optimizer
from dlrl_jax.training.state import Context, TrainState, split_key


@struct.dataclass
class SeedData:
    """One seed's host-made inputs (stack them with `stack_seed_data` for vmap); NumPy arrays.

    train_prompt_ids [N, P] int32, train_prompt_mask [N, P] bool, train_target_ids [N, G] int32 (the SFT
    targets), train_puzzle / train_solution [N, 16] int32 (cells, 0 = blank); eval_prompt_ids [E, P],
    eval_prompt_mask, eval_puzzle, eval_solution likewise, eval_weight [E] float32 (0 on the padding
    rows that fill the last evaluation batch); sft_order [S, sft.batch_size] and rl_order
    [I, algorithm.prompts_per_batch] int32: the training-record indices of each batch; init_params: the
    parameters to start from (a `model.path` folder's, or any warm start), or None: the preset
    initialised from the seed; init_key: raw key data [2] uint32 the run's key chain continues from (a
    warm start's final key, `make_warm_start`), or None: key(seed)."""

    train_prompt_ids: jax.Array
    train_prompt_mask: jax.Array
    train_target_ids: jax.Array
    train_puzzle: jax.Array
    train_solution: jax.Array
    eval_prompt_ids: jax.Array
    eval_prompt_mask: jax.Array
    eval_puzzle: jax.Array
    eval_solution: jax.Array
    eval_weight: jax.Array
    sft_order: jax.Array
    rl_order: jax.Array
    init_params: Any = None
    init_key: Any = None


def check_supported(cfg: Config) -> None:
    """Refuses, in one line naming the field, what the pure run does not do (the module docstring says why)."""
    t, a, m = cfg.task, cfg.algorithm, cfg.model
    checks = [
        (t.name == "sudoku", "task.name", "the seeded run scores Sudoku in JAX; use task.name=sudoku"),
        (not t.train_file and not t.eval_file, "task.train_file", "the seeded run uses the generator; unset it"),
        (t.reward_set == "dlrl", "task.reward_set", "only the dlrl Sudoku reward is computed in JAX"),
        (t.decode == "cut_eos", "task.decode", "only cut_eos decoding is computed in JAX"),
        (a.selection != "adaptive", "algorithm.selection", "adaptive K sets a shape on the host; use top_k_entropy"),
        (m.lora_rank == 0 and not m.adapter and m.quantize_base == "none", "model.lora_rank",
         "the seeded run fine-tunes the whole model; set 0 and no adapter"),
    ]
    for ok, field, fix in checks:
        if not ok:
            raise ConfigError(f"{field}: not supported by the seeded (jit + vmap) run; {fix}")


@functools.lru_cache(maxsize=4)
def _build(model_section):
    """(graphdef, model config, tokenizer, params), the same for every seed: the host model lends its
    structure; its params are the start of every seed with `model.path` (a preset's seeds each
    initialise their own inside `train`)."""
    model, tokenizer = setup.build_model_and_tokenizer(model_section)
    graphdef, params = nnx.split(model)
    return graphdef, model.cfg, tokenizer, params


def _task_and_prompt_length(cfg: Config, tokenizer):
    """The seed's task and the prompt length P of its records, as `Run` measures it."""
    task = build_task(cfg.task, cfg.seed)
    t = cfg.task
    texts = [task.prompt_text(r) for r in task.train + task.eval]
    return task, setup.prompt_length(tokenizer, texts, t.prompt_style, t.max_prompt_length,
                                     truncate=t.truncate_prompts, system=task.system)


def seed_data(cfg: Config, seed: int, init_params=None, init_key=None) -> SeedData:
    """The records, encoded prompts / targets and batch orders `dlrl-jax train` would use for `seed`;
    `init_params` / `init_key`: a warm start to begin from instead of the config's model and key(seed)
    (`make_warm_start`'s, with sft.steps=0: then the RL iterations are those of the run that made it)."""
    check_supported(cfg)
    cfg = dataclasses.replace(cfg, seed=int(seed))
    _, _, tokenizer, loaded = _build(cfg.model)
    task, P = _task_and_prompt_length(cfg, tokenizer)
    t = cfg.task

    def encode(records):
        return setup.encode_prompts(tokenizer, [task.prompt_text(r) for r in records], t.prompt_style, P,
                                    truncate=t.truncate_prompts, system=task.system)

    train_ids, train_mask = encode(task.train)
    targets = setup.encode_targets(tokenizer, [task.target_text(r) for r in task.train], cfg.sampler.gen_length)
    eval_batch = cfg.algorithm.prompts_per_batch * cfg.algorithm.group_size
    evaluation = task.eval + [task.eval[-1]] * (-len(task.eval) % eval_batch)  # whole batches, as the loop pads
    eval_ids, eval_mask = encode(evaluation)
    weight = (np.arange(len(evaluation)) < len(task.eval)).astype(np.float32)
    index = [{"i": i} for i in range(len(task.train))]  # grain's order depends on the count and seed only

    def order(batch, stream_seed, count):
        stream = BatchStream(index, batch, seed=stream_seed)
        return np.asarray([[r["i"] for r in next(stream)] for _ in range(count)], np.int32).reshape(count, batch)

    if init_params is None and cfg.model.path:
        init_params = loaded
    return SeedData(
        train_prompt_ids=train_ids, train_prompt_mask=train_mask, train_target_ids=targets,
        train_puzzle=cells([r["puzzle"] for r in task.train]), train_solution=cells([r["solution"] for r in task.train]),
        eval_prompt_ids=eval_ids, eval_prompt_mask=eval_mask, eval_puzzle=cells([r["puzzle"] for r in evaluation]),
        eval_solution=cells([r["solution"] for r in evaluation]), eval_weight=weight,
        sft_order=order(cfg.sft.batch_size, cfg.seed, cfg.sft.steps),
        rl_order=order(cfg.algorithm.prompts_per_batch, cfg.seed + 1, cfg.run.iterations),
        init_params=None if init_params is None else jax.tree.map(np.asarray, init_params),
        init_key=None if init_key is None else np.asarray(init_key, np.uint32))


def stack_seed_data(per_seed: list[SeedData]) -> SeedData:
    """The seeds' data stacked on a leading axis (for `jax.vmap(train)`). A seed whose generator kept
    fewer distinct training puzzles (duplicates of held-out ones are dropped) gets copies of its last
    record appended, which its batch orders never index; every other shape must agree."""
    n = max(d.train_prompt_ids.shape[0] for d in per_seed)

    def pad(d: SeedData) -> SeedData:
        fields = {f.name: getattr(d, f.name) for f in dataclasses.fields(d)}
        return SeedData(**{k: np.concatenate([v, np.repeat(v[-1:], n - len(v), axis=0)]) if k.startswith("train_")
                           else v for k, v in fields.items()})

    per_seed = [pad(d) for d in per_seed]
    for field in ("init_params", "init_key"):
        if len({getattr(d, field) is None for d in per_seed}) > 1:
            raise ValueError(f"seed data: give every seed {field}, or none")
    shapes = [jax.tree.map(np.shape, d) for d in per_seed]
    for i, s in enumerate(shapes[1:], 1):
        if s != shapes[0]:
            raise ValueError(f"seed data {i} has shapes {s}, seed data 0 {shapes[0]}: every seed needs the same "
                             "held-out count, prompt length, batch orders and parameter shapes")
    return jax.tree.map(lambda *xs: np.stack(xs), *per_seed)


def eval_iterations(cfg: Config) -> list[int]:
    """The RL iterations after which `train` evaluates besides before and after (its "eval" metrics)."""
    e, n = cfg.run.eval_every, cfg.run.iterations
    return [e * (j + 1) for j in range((n - 1) // e)] if e and n else []


def _context(cfg: Config, graphdef, model_cfg, eos_id: int, prompt_length: int) -> Context:
    """The loop's context of the jitted functions (`Run.context`), without a mesh or LoRA."""
    a = cfg.algorithm
    rows = a.prompts_per_batch * a.group_size
    if rows % a.micro_batches:
        raise ConfigError(f"algorithm.micro_batches {a.micro_batches} does not divide the {rows} rows")
    return Context(graphdef=graphdef, ref_graphdef=graphdef, base_params=lambda p: p, mesh=None, algorithm=a,
                   seed=cfg.seed, gen_length=cfg.sampler.gen_length, steps=cfg.sampler.steps,
                   mask_id=model_cfg.mask_token_id, eos_id=eos_id, rows=rows, lora_dropout=False, partition=None,
                   prompt_length=prompt_length, model_cfg=model_cfg)


def _state(params, opt_state, ref_params, key_data) -> TrainState:
    """A TrainState inside the traced program (TrainState.create places on a mesh; here there is none)."""
    return TrainState(params=params, opt_state=opt_state, ref_params=ref_params, key=key_data,
                      iteration=jnp.int32(0), optimizer_steps=jnp.int32(0))


def _warm_start_fn(cfg: Config, graphdef, model_cfg):
    """`warm_start(seed, data) -> (params, storage dtypes, key data, sft losses [S])`: the model (the
    preset from the seed, or data.init_params) in float32 master weights after the SFT scan."""
    sft_tx = sft_optimizer(cfg.sft)
    sft_step = make_sft_step(graphdef, model_cfg.mask_token_id, cfg.sft.batch_size, sft_tx)

    def warm_start(seed, data: SeedData):
        if data.init_params is None:  # = models.init_model(preset, seed), as the loop's Run builds it
            stored = nnx.split(Transformer(model_cfg, rngs=nnx.Rngs(params=jax.random.key(seed))))[1]
        else:
            stored = data.init_params
        dtypes = precision.storage_dtypes(stored)
        params = precision.master_params(stored)
        key = jax.random.key_data(jax.random.key(seed)) if data.init_key is None else data.init_key

        def sft(state, rows):
            batch = {"prompt_ids": data.train_prompt_ids[rows], "prompt_mask": data.train_prompt_mask[rows],
                     "completion_ids": data.train_target_ids[rows]}
            state, m = sft_step(state, batch)
            return state, m["loss"]

        state, losses = jax.lax.scan(sft, _state(params, sft_tx.init(params), None, key), data.sft_order)
        return state.params, dtypes, state.key, losses

    return warm_start


def make_warm_start(cfg: Config):
    """`warm(seed, data) -> (params, key data, sft losses [S])`: `train`'s SFT warm start alone (pure,
    jit- and vmap-able). Hand its params and key to `seed_data(cfg with sft.steps=0, seed, params, key)`
    and `train` runs the RL iterations of the same run: many algorithms from one warm start per seed."""
    check_supported(cfg)
    graphdef, model_cfg, _, _ = _build(cfg.model)
    warm_start = _warm_start_fn(cfg, graphdef, model_cfg)

    def warm(seed, data: SeedData):
        params, _, key, losses = warm_start(jnp.asarray(seed, jnp.int32), data)
        return params, key, losses

    return warm


def make_train(cfg: Config, progress=None):
    """`train(seed, data) -> metrics` for `cfg` (see the module docstring); pure, jit- and vmap-able.

    progress: None, or a host function `progress(iteration, reward_mean)` called after every RL
    iteration through `jax.debug.callback` (under vmap, once per seed: JAX unbatches debug callbacks); the only host
    contact, for watching a long compiled run, and it changes no result.

    seed: int32 scalar. data: `seed_data(cfg, seed)` (or a stack of them under vmap). metrics:
      sft_loss [S]; rl: per-iteration dict of [I] arrays (reward_mean, reward_std, solved,
      zero_variance_fraction (groups whose rewards are all equal), loss, grad_norm, skipped, the
      loss's other sums per counted token or row as the loop logs them (ratio, clip_fraction, kl for
      the clipped objectives; wd1's own), entropy_profile [I, T], and the algorithm's own metrics);
      eval_before / eval_after: {"reward", "solved"} held-out (greedy at sampler.eval_temperature) after
      SFT and after RL; eval: {"reward", "solved"} [len(eval_iterations(cfg))] in between."""
    check_supported(cfg)
    graphdef, model_cfg, tokenizer, _ = _build(cfg.model)
    a, G = cfg.algorithm, cfg.sampler.gen_length
    mask_id = model_cfg.mask_token_id
    table = TokenTable.from_tokenizer(tokenizer, model_cfg.vocab_size, G)
    # the run's prompt length, as the loop's context has it (ESPO's memory estimate reads it)
    context = _context(cfg, graphdef, model_cfg, tokenizer.eos_id, _task_and_prompt_length(cfg, tokenizer)[1])
    algorithm = ALGORITHMS[a.name].make(context)
    s = cfg.sampler
    train_settings = setup.sampler_settings(s, mask_id, model_cfg.family, s.temperature, algorithm.record_greedy,
                                            s.cache)
    eval_settings = setup.sampler_settings(s, mask_id, model_cfg.family, s.eval_temperature)
    eval_batch = a.prompts_per_batch * a.group_size
    rl_tx = make_optimizer(rl_optimizer_settings(cfg.optim, a, cfg.run.iterations, algorithm.select is not None))
    iteration = Iteration(context, algorithm, rl_tx, state_sharding=None)
    iterations = cfg.run.iterations

    warm_start = _warm_start_fn(cfg, graphdef, model_cfg)

    def train(seed, data: SeedData) -> dict:
        seed = jnp.asarray(seed, jnp.int32)
        params, dtypes, key, sft_losses = warm_start(seed, data)
        # full fine-tune: the reference is the warm-started model, frozen, in the storage dtype (Run.reference)
        state0 = _state(params, rl_tx.init(params), precision.cast_to(params, dtypes), key)

        def evaluate(params, step):
            key = eval_key(seed, step)

            def one_batch(start):
                rows = start + jnp.arange(eval_batch)
                traj = rollout.generate(graphdef, params, data.eval_prompt_ids[rows], data.eval_prompt_mask[rows],
                                        jax.random.fold_in(key, start), eval_settings)
                return sudoku_cell_reward(traj.completion, data.eval_puzzle[rows], data.eval_solution[rows], table)

            starts = jnp.arange(0, data.eval_prompt_ids.shape[0], eval_batch)
            reward, solved = jax.lax.map(one_batch, starts)
            w = data.eval_weight.reshape(reward.shape)
            return {"reward": (reward * w).sum() / w.sum(), "solved": (solved * w).sum() / w.sum()}

        def rl_iteration(state, it):
            rows = jnp.repeat(data.rl_order[it], a.group_size)  # a prompt's group is contiguous
            puzzle, solution = data.train_puzzle[rows], data.train_solution[rows]
            key, rollout_key = split_key(state.key)
            state = state.replace(key=key)
            traj = rollout.generate(graphdef, state.params, data.train_prompt_ids[rows],
                                    data.train_prompt_mask[rows], rollout_key, train_settings)
            reward, solved = sudoku_cell_reward(traj.completion, puzzle, solution, table)
            batch = traj.replace(greedy=None)
            selection, extra = None, {}
            if algorithm.select is not None:
                greedy_reward = jnp.zeros((traj.tokens.shape[0], a.k), jnp.float32)
                if algorithm.record_greedy:  # EGSPO-SA: the selected steps' greedy completions, scored in JAX
                    key, select_key = split_key(state.key)
                    state = state.replace(key=key)
                    selection = algorithm.select(select_key, batch, a.k)
                    B = traj.tokens.shape[0]
                    greedy = jnp.take_along_axis(traj.greedy, selection.steps[:, :, None], axis=1)  # [B, K, G]
                    greedy_reward, _ = sudoku_cell_reward(greedy.reshape(B * a.k, -1), jnp.repeat(puzzle, a.k, axis=0),
                                                          jnp.repeat(solution, a.k, axis=0), table)
                    greedy_reward = greedy_reward.reshape(B, a.k)
                    selection = selection.replace(greedy_reward=greedy_reward)
                extra = {"greedy_reward_mean": greedy_reward.mean()}
            state, (last, algorithm_metrics) = iteration.iterate(state, batch, reward, selection, k=a.k, seed=seed)
            metrics = dict(extra, **algorithm_metrics, reward_mean=reward.mean(), reward_std=reward.std(),
                           solved=solved.mean(), zero_variance_fraction=zero_variance_fraction(reward, a.group_size),
                           **per_count(last), entropy_profile=traj.step_entropy.mean(axis=0))
            if progress is not None:
                jax.debug.callback(progress, it, metrics["reward_mean"])
            return state, metrics

        # Parameter snapshots at every evaluation point, evaluated together at the end by one lax.map:
        # one compiled evaluation instead of one per call site. The scan index is the same for every
        # seed (not batched under vmap), so each iteration writes its parameters to the slot of its
        # evaluation, or to a spare last slot that is dropped.
        points = np.asarray(eval_iterations(cfg), np.int32)
        snapshots = jax.tree.map(lambda x: jnp.zeros((len(points) + 1, *x.shape), x.dtype), params)

        def iteration_and_snapshot(carry, it):
            state, snapshots = carry
            state, metrics = rl_iteration(state, it)
            slot = jnp.sum(jnp.where(jnp.asarray(points) == it + 1, jnp.arange(len(points)), 0)) + \
                jnp.where(jnp.any(jnp.asarray(points) == it + 1), 0, len(points))
            snapshots = jax.tree.map(lambda buf, x: jax.lax.dynamic_update_index_in_dim(buf, x, slot, 0),
                                     snapshots, state.params)
            return (state, snapshots), metrics

        (state, snapshots), rl_metrics = jax.lax.scan(iteration_and_snapshot, (state0, snapshots),
                                                      jnp.arange(iterations))
        evaluated = jax.tree.map(lambda first, mid, last: jnp.concatenate([first[None], mid[:-1], last[None]]),
                                 params, snapshots, state.params)
        steps = jnp.asarray(np.concatenate([[0], points, [iterations]]), jnp.int32)
        result = jax.lax.map(lambda args: evaluate(*args), (evaluated, steps))
        out = {"sft_loss": sft_losses, "eval_before": jax.tree.map(lambda x: x[0], result),
               "eval_after": jax.tree.map(lambda x: x[-1], result),
               "eval": jax.tree.map(lambda x: x[1:-1], result)}
        if iterations:
            out["rl"] = rl_metrics
        return out

    return train
