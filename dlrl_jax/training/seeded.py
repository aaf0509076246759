"""Many seeds in one compiled program: the whole tiny-Sudoku run -- SFT warm start, RL iterations,
held-out greedy evaluation -- as one pure function of the seed (purejaxrl's `make_train(config) ->
train(rng)`), so that `jax.jit(jax.vmap(train))` runs N seeds at once.

    train = make_train(cfg)                                    # host: checks, graphdef, token tables
    data = stack_seed_data([seed_data(cfg, s) for s in seeds])   # host: each seed's puzzles and batch order
    metrics = jax.jit(jax.vmap(train))(jnp.asarray(seeds, jnp.int32), data)

`train(seed, data) -> metrics` is pure: the seed is an int32 scalar (a tracer under vmap) and `data` a
`SeedData` of arrays, so nothing in it touches the host. Inside: `lax.scan` over SFT steps; `lax.scan`
over RL iterations, each the rollout (`rollout.generate`, itself a scan over denoising steps), the
Sudoku reward in JAX from the token ids (`rewards.sudoku_tokens`), the algorithm's post-reward part
and a `lax.scan` over its optimizer steps with the update of `training.update`; the parameters at
each evaluation point (after SFT, every `run.eval_every` iterations, at the end) are kept and
evaluated together at the end, a `lax.map` over them and over held-out batches (one compiled
evaluation, and the same numbers as evaluating on the way, since evaluation has its own keys).

The post-reward part is the loop's own: the registry's `Algorithm` (training/algorithms/) made on a
context without a mesh or LoRA, its `select` and `prepare` (with the seed traced), and the same
optimizer step (`training.update`), scanned over the same schedule.

What is the same as `dlrl-jax train` (training/loop.py, training/algorithms/) for a seed: the records
(`build_task` with that seed), the SFT and RL batch orders (the grain streams of seed and seed + 1,
read on the host into index arrays), the model initialisation (`nnx.Rngs(params=seed)`), the run's
key chain (one split per SFT step, per rollout and, for EGSPO, per step selection), ESPO's and
diffu-GRPO's mask keys (fold_in(key(seed), 0x5EED), update index, micro-batch), the evaluation keys
(fold_in(key(seed ^ 0xE7A1), iteration), batch start), the losses, the optimizers, the official EGSPO
column schedule (`official_column_order`) and the old/reference terms taken before any of an
iteration's optimizer steps. The reward is the host reward's value (`rewards.sudoku_tokens`, tested
against `rewards.sudoku`).

Where it differs: it is one XLA program, so fusions and reduction orders differ from the loop's
separately jitted pieces and results agree to float32 rounding at first, not bit for bit; the
rollouts are sampled, so two runs drift apart once a rounding flips a sampled token. Every SFT
step's loss is returned (the loop logs every 10th). No checkpoints, resume, metrics files or phase clocks; one device, no mesh.
Refused with a one-line error (they need the host or are not wired here): tasks other than the
generated Sudoku with plain prompts, reward sets other than dlrl, `task.decode: official`, LoRA,
adaptive step selection, the KV cache, Dream's schedule, confidence-threshold decoding and reference
syncing.

Shapes: N training records, E held-out records (padded to a whole number of evaluation batches), P
prompt, G completion, S SFT steps, I RL iterations, B rows per rollout (prompts x group), K selected steps.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

from dlrl_jax import rollout
from dlrl_jax.config import Config, ConfigError
from dlrl_jax.data.pipeline import BatchStream
from dlrl_jax.models.transformer import Transformer
from dlrl_jax.objectives.sft import sft_loss
from dlrl_jax.rewards.sudoku_tokens import TokenTable, cells, sudoku_cell_reward
from dlrl_jax.tasks import build_task
from dlrl_jax.training import setup
from dlrl_jax.training.algorithms import ALGORITHMS
from dlrl_jax.training.algorithms.common import zero_variance_fraction
from dlrl_jax.training.key_streams import EVAL_STREAM
from dlrl_jax.training.state import Context
from dlrl_jax.training.optimizer import OptimizerSettings, make_optimizer, rl_optimizer_settings
from dlrl_jax.training.update import _update_fn

ALGORITHM_NAMES = ("egspo", "egspo_sa", "espo", "diffu_grpo")


@struct.dataclass
class SeedData:
    """One seed's host-made inputs (stack them with `stack_seed_data` for vmap); NumPy arrays.

    train_prompt_ids [N, P] int32, train_prompt_mask [N, P] bool, train_target_ids [N, G] int32 (the SFT
    targets), train_puzzle / train_solution [N, 16] int32 (cells, 0 = blank); eval_prompt_ids [E, P],
    eval_prompt_mask, eval_puzzle, eval_solution likewise, eval_weight [E] float32 (0 on the padding
    rows that fill the last evaluation batch); sft_order [S, sft.batch_size] and rl_order
    [I, algorithm.prompts_per_batch] int32: the training-record indices of each batch."""

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


def check_supported(cfg: Config) -> None:
    """Refuses, in one line naming the field, what the pure run does not do."""
    t, s, a, m = cfg.task, cfg.sampler, cfg.algorithm, cfg.model
    checks = [
        (t.name == "sudoku", "task.name", "the seeded run scores Sudoku in JAX; use task.name=sudoku"),
        (t.prompt_style == "plain", "task.prompt_style", "use plain (the tiny task's prompts)"),
        (not t.train_file and not t.eval_file, "task.train_file", "the seeded run uses the generator; unset it"),
        (t.reward_set == "dlrl", "task.reward_set", "only the dlrl Sudoku reward is computed in JAX"),
        (t.decode == "cut_eos", "task.decode", "only cut_eos decoding is computed in JAX"),
        (a.name in ALGORITHM_NAMES, "algorithm.name", f"use one of {', '.join(ALGORITHM_NAMES)}"),
        (a.selection != "adaptive", "algorithm.selection", "adaptive K sets a shape on the host; use top_k_entropy"),
        (a.ref_sync_every == 0, "algorithm.ref_sync_every", "reference syncing is not wired here; set 0"),
        (m.lora_rank == 0 and not m.adapter and m.quantize_base == "none", "model.lora_rank",
         "the seeded run fine-tunes the whole tiny model; set 0 and no adapter"),
        (not m.path, "model.path", "the seeded run initialises a preset from the seed; unset it"),
        (s.cache == "none", "sampler.cache", "use none"),
        (s.schedule in ("auto", "blocks"), "sampler.schedule", "use blocks (LLaDA's sampler)"),
    ]
    for ok, field, fix in checks:
        if not ok:
            raise ConfigError(f"{field}: not supported by the seeded (jit + vmap) run; {fix}")


@functools.lru_cache(maxsize=4)
def _build(model_section):
    """(graphdef, model config, tokenizer), the same for every seed: the host model only lends its
    structure (each seed initialises its own weights inside `train`)."""
    model, tokenizer = setup.build_model_and_tokenizer(model_section)
    graphdef, _ = nnx.split(model)
    return graphdef, model.cfg, tokenizer


def seed_data(cfg: Config, seed: int) -> SeedData:
    """The records, encoded prompts / targets and batch orders `dlrl-jax train` would use for `seed`."""
    check_supported(cfg)
    cfg = dataclasses.replace(cfg, seed=int(seed))
    _, _, tokenizer = _build(cfg.model)
    task = build_task(cfg.task, cfg.seed)
    texts = [task.prompt_text(r) for r in task.train + task.eval]
    P = setup.prompt_length(tokenizer, texts, cfg.task.prompt_style, cfg.task.max_prompt_length)

    def encode(records):
        return setup.encode_prompts(tokenizer, [task.prompt_text(r) for r in records], cfg.task.prompt_style, P)

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

    return SeedData(
        train_prompt_ids=train_ids, train_prompt_mask=train_mask, train_target_ids=targets,
        train_puzzle=cells([r["puzzle"] for r in task.train]), train_solution=cells([r["solution"] for r in task.train]),
        eval_prompt_ids=eval_ids, eval_prompt_mask=eval_mask, eval_puzzle=cells([r["puzzle"] for r in evaluation]),
        eval_solution=cells([r["solution"] for r in evaluation]), eval_weight=weight,
        sft_order=order(cfg.sft.batch_size, cfg.seed, cfg.sft.steps),
        rl_order=order(cfg.algorithm.prompts_per_batch, cfg.seed + 1, cfg.run.iterations))


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
    shapes = [jax.tree.map(np.shape, d) for d in per_seed]
    for i, s in enumerate(shapes[1:], 1):
        if s != shapes[0]:
            raise ValueError(f"seed data {i} has shapes {s}, seed data 0 {shapes[0]}: every seed needs the same "
                             "held-out count, prompt length and batch orders")
    return jax.tree.map(lambda *xs: np.stack(xs), *per_seed)


def eval_iterations(cfg: Config) -> list[int]:
    """The RL iterations after which `train` evaluates besides before and after (its "eval" metrics)."""
    e, n = cfg.run.eval_every, cfg.run.iterations
    return [e * (j + 1) for j in range((n - 1) // e)] if e and n else []


def _sampler(cfg: Config, mask_id: int, temperature: float, record_greedy: bool) -> rollout.SamplerSettings:
    s = cfg.sampler
    settings = rollout.SamplerSettings(gen_length=s.gen_length, block_length=s.block_length or s.gen_length,
                                       steps=s.steps, temperature=temperature, remasking=s.remasking,
                                       mask_id=mask_id, record_greedy=record_greedy, schedule="blocks",
                                       top_p=s.top_p, top_k=s.top_k, alg_temp=s.alg_temp, noise_dtype=s.noise_dtype)
    try:
        return settings.validate()
    except rollout.SamplerSettingsError as e:
        raise ConfigError(f"sampler: {e}") from None


def _algorithm(cfg: Config, graphdef, model_cfg, eos_id: int):
    """The algorithm's pure functions of the loop (training/algorithms), on a context without a mesh or
    LoRA: the same selection, advantages, old/reference terms, items and schedule as `dlrl-jax train`."""
    a = cfg.algorithm
    rows = a.prompts_per_batch * a.group_size
    if rows % a.micro_batches:
        raise ConfigError(f"algorithm.micro_batches {a.micro_batches} does not divide the {rows} rows")
    context = Context(graphdef=graphdef, ref_graphdef=graphdef, base_params=lambda p: p, mesh=None, algorithm=a,
                      seed=cfg.seed, gen_length=cfg.sampler.gen_length, steps=cfg.sampler.steps,
                      mask_id=model_cfg.mask_token_id, eos_id=eos_id, rows=rows, lora_dropout=False, partition=None,
                      prompt_length=cfg.task.max_prompt_length, model_cfg=model_cfg)
    return ALGORITHMS[a.name].make(context)


def make_train(cfg: Config, progress=None):
    """`train(seed, data) -> metrics` for `cfg` (see the module docstring); pure, jit- and vmap-able.

    progress: None, or a host function `progress(iteration, reward_mean)` called after every RL
    iteration through `jax.debug.callback` (under vmap reward_mean holds every seed's); the only host
    contact, for watching a long compiled run, and it changes no result.

    seed: int32 scalar. data: `seed_data(cfg, seed)` (or a stack of them under vmap). metrics:
      sft_loss [S]; rl: per-iteration dict of [I] arrays (reward_mean, reward_std, solved,
      zero_variance_fraction (groups whose rewards are all equal), loss, grad_norm,
      skipped, ratio, clip_fraction, kl, entropy_profile [I, T], and the algorithm's own);
      eval_before / eval_after: {"reward", "solved"} held-out (greedy at sampler.eval_temperature) after
      SFT and after RL; eval: {"reward", "solved"} [len(eval_iterations(cfg))] in between."""
    check_supported(cfg)
    graphdef, model_cfg, tokenizer = _build(cfg.model)
    a, G = cfg.algorithm, cfg.sampler.gen_length
    mask_id = model_cfg.mask_token_id
    table = TokenTable.from_tokenizer(tokenizer, model_cfg.vocab_size, G)
    algorithm = _algorithm(cfg, graphdef, model_cfg, tokenizer.eos_id)
    train_settings = _sampler(cfg, mask_id, cfg.sampler.temperature, algorithm.record_greedy)
    eval_settings = _sampler(cfg, mask_id, cfg.sampler.eval_temperature, False)
    eval_batch = a.prompts_per_batch * a.group_size
    B_sft = cfg.sft.batch_size
    sft_tx = make_optimizer(OptimizerSettings(learning_rate=cfg.sft.learning_rate, warmup_steps=cfg.sft.warmup_steps,
                                              weight_decay=0.0, grad_clip=1.0))
    o = cfg.optim
    rl_tx = make_optimizer(rl_optimizer_settings(o, a, cfg.run.iterations, algorithm.select is not None))
    sft_update = _update_fn(lambda p, item: sft_loss(graphdef, p, item, item["key"], mask_id=mask_id,
                                                     total_rows=B_sft), sft_tx)
    rl_update = _update_fn(algorithm.loss, rl_tx)
    iterations = cfg.run.iterations

    def train(seed, data: SeedData) -> dict:
        seed = jnp.asarray(seed, jnp.int32)
        key = jax.random.key(seed)
        params = nnx.split(Transformer(model_cfg, rngs=nnx.Rngs(params=jax.random.key(seed))))[1]  # = models.init_model(cfg, seed)

        def sft_step(carry, rows):
            params, opt_state, key = carry
            key, sub = jax.random.split(key)
            item = {"prompt_ids": data.train_prompt_ids[rows][None], "prompt_mask": data.train_prompt_mask[rows][None],
                    "completion_ids": data.train_target_ids[rows][None],
                    "completion_mask": jnp.ones((1, *data.train_target_ids[rows].shape), bool), "key": sub[None]}
            params, opt_state, m = sft_update(params, opt_state, item)
            return (params, opt_state, key), m["loss"]

        (params, _, key), sft_losses = jax.lax.scan(sft_step, (params, sft_tx.init(params), key), data.sft_order)
        ref_params = params  # full fine-tune: the reference is the warm-started model, frozen

        def evaluate(params, step):
            eval_key = jax.random.fold_in(jax.random.key(jnp.bitwise_xor(seed, EVAL_STREAM)), step)

            def one_batch(start):
                rows = start + jnp.arange(eval_batch)
                traj = rollout.generate(graphdef, params, data.eval_prompt_ids[rows], data.eval_prompt_mask[rows],
                                        jax.random.fold_in(eval_key, start), eval_settings)
                return sudoku_cell_reward(traj.completion, data.eval_puzzle[rows], data.eval_solution[rows], table)

            starts = jnp.arange(0, data.eval_prompt_ids.shape[0], eval_batch)
            reward, solved = jax.lax.map(one_batch, starts)
            w = data.eval_weight.reshape(reward.shape)
            return {"reward": (reward * w).sum() / w.sum(), "solved": (solved * w).sum() / w.sum()}

        def rl_iteration(carry, it):
            params, opt_state, key = carry
            rows = jnp.repeat(data.rl_order[it], a.group_size)  # a prompt's group is contiguous
            puzzle, solution = data.train_puzzle[rows], data.train_solution[rows]
            key, rollout_key = jax.random.split(key)
            traj = rollout.generate(graphdef, params, data.train_prompt_ids[rows], data.train_prompt_mask[rows],
                                    rollout_key, train_settings)
            reward, solved = sudoku_cell_reward(traj.completion, puzzle, solution, table)
            selection, extra = None, {}
            if algorithm.select is not None:  # EGSPO: the run's key chain splits for the selection
                key, select_key = jax.random.split(key)
                selection = algorithm.select(select_key, traj, a.k)
                if algorithm.record_greedy:  # EGSPO-SA: the selected steps' greedy completions, scored in JAX
                    B = traj.tokens.shape[0]
                    greedy = jnp.take_along_axis(traj.greedy, selection.steps[:, :, None], axis=1)  # [B, K, G]
                    greedy_reward, _ = sudoku_cell_reward(greedy.reshape(B * a.k, -1), jnp.repeat(puzzle, a.k, axis=0),
                                                          jnp.repeat(solution, a.k, axis=0), table)
                    selection = selection.replace(greedy_reward=greedy_reward.reshape(B, a.k))
                extra = {"greedy_reward_mean": selection.greedy_reward.mean()}
            inner, algorithm_metrics = algorithm.prepare(params, ref_params, traj.replace(greedy=None), reward,
                                                         selection, it * a.mu, a.k, seed=seed)
            extra.update(algorithm_metrics)

            def optimizer_step(state, items):
                params, opt_state, m = rl_update(*state, items)
                return (params, opt_state), m

            (params, opt_state), m = jax.lax.scan(optimizer_step, (params, opt_state), inner)
            last = jax.tree.map(lambda x: x[-1], m)  # the loop reports its last optimizer step's metrics
            count = jnp.maximum(last["count"], 1.0)
            metrics = dict(extra, reward_mean=reward.mean(), reward_std=reward.std(), solved=solved.mean(),
                           zero_variance_fraction=zero_variance_fraction(reward, a.group_size),
                           loss=last["loss"], grad_norm=last["grad_norm"], skipped=last["skipped"],
                           ratio=last["ratio"] / count, clip_fraction=last["clip_fraction"] / count,
                           kl=last["kl"] / count, entropy_profile=traj.step_entropy.mean(axis=0))
            if progress is not None:
                jax.debug.callback(progress, it, metrics["reward_mean"])
            return (params, opt_state, key), metrics

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
                                     snapshots, state[0])
            return (state, snapshots), metrics

        (state, snapshots), rl_metrics = jax.lax.scan(iteration_and_snapshot,
                                                      ((params, rl_tx.init(params), key), snapshots),
                                                      jnp.arange(iterations))
        evaluated = jax.tree.map(lambda first, mid, last: jnp.concatenate([first[None], mid[:-1], last[None]]),
                                 params, snapshots, state[0])
        steps = jnp.asarray(np.concatenate([[0], points, [iterations]]), jnp.int32)
        result = jax.lax.map(lambda args: evaluate(*args), (evaluated, steps))
        out = {"sft_loss": sft_losses, "eval_before": jax.tree.map(lambda x: x[0], result),
               "eval_after": jax.tree.map(lambda x: x[-1], result),
               "eval": jax.tree.map(lambda x: x[1:-1], result)}
        if iterations:
            out["rl"] = rl_metrics
        return out

    return train
