"""Run configuration: YAML -> frozen dataclasses, validated before anything compiles.

Every error is one line naming the field (as a dotted path) and the fix: unknown keys come with the
closest valid key, wrong types and out-of-range values with the accepted range. The YAML is read by
`config_yaml` (repeated keys and aliases refused, YAML 1.2 numbers); values in messages are cut to 80
characters.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import types
import typing
from typing import Any

import yaml

from dlrl_jax import config_yaml
from dlrl_jax.config_error import ConfigError
from dlrl_jax.config_yaml import shown
from dlrl_jax.training.algorithm_settings import AlgorithmSection


@dataclasses.dataclass(frozen=True)
class ModelSection:
    path: str | None = None       # Hugging Face folder (config.json + safetensors); None: use `preset`
    preset: str = "tiny"          # random init from a named preset when `path` is None
    dtype: str = "float32"        # parameter dtype; compute dtype follows unless `compute_dtype`
    compute_dtype: str | None = None
    tokenizer: str | None = None  # tokenizer folder; None: the model folder, or the embedded char tokenizer
    remat: str = "none"
    prune_last_layer: bool | str = "auto"  # the final layer on the completion positions only (their logits are
    #                               all any pass reads); auto: when the layer weights take <= 64 MiB
    lora_rank: int = 0            # > 0: train LoRA adapters only (the papers: 128); the reference is the base
    lora_alpha: float = 64.0
    lora_targets: str = "q,k,v,o,gate,up,down"  # or PEFT module names, matched as PEFT does per architecture
    lora_dropout: float = 0.0     # on the adapters' inputs in training forwards (the papers: 0.05)
    adapter: str | None = None    # a PEFT LoRA adapter folder to start from (its r/alpha/targets/dropout)
    quantize_base: str = "none"   # none, nf4, int4, int8: LoRA's frozen base stored quantized (papers: nf4)


@dataclasses.dataclass(frozen=True)
class TaskSection:
    name: str = "sudoku"
    prompt_style: str = "plain"   # plain: the puzzle is the prompt and the completion is the answer;
    #                               chat: the papers' chat-templated <reasoning>/<answer> prompts
    train_size: int = 4096
    eval_size: int = 256
    min_blanks: int = 4           # sudoku: blanks per puzzle drawn from [min_blanks, max_blanks]
    max_blanks: int = 10
    max_prompt_length: int = 0    # 0: the longest prompt of the data
    truncate_prompts: str = "refuse"  # a prompt over max_prompt_length: refuse (an error naming it) or
    #                                   left (keep its last max_prompt_length tokens, as TRL's GRPOTrainer does)
    train_file: str | None = None  # JSONL/Parquet; None: the procedural generator (sudoku, countdown)
    eval_file: str | None = None
    reward_set: str = "dlrl"      # whose reward functions score completions: dlrl (this project's) | d1 | espo
    prompt_recipe: str = "dlrl"   # whose prompt text (chat style): dlrl | d1 | egspo | espo (dlrl_jax/tasks/recipe_prompts.py)
    decode: str = "cut_eos"       # completion text for rewards: cut_eos (up to the first EOS) | official
    #                               (the papers' batch_decode: special tokens skipped, text after an EOS kept)
    code_sandbox: str = "namespaces"  # code task: bubblewrap namespaces; "rlimits": the weaker opt-in mode
    sft_teacher: str = "auto"     # SFT targets: "solution" (the true answer), "mixed" (sudoku: for a
    #                               heuristic_fraction of the training puzzles the row-order heuristic's grid,
    #                               dlrl_jax/data/sudoku_teacher.py: a warm start that samples better than it
    #                               decodes greedily, so RL has room) or "auto": mixed for the generated Sudoku
    #                               (task.name sudoku without task.train_file), solution for everything else
    heuristic_fraction: float = 0.6  # the share of training puzzles the heuristic teaches (read when mixed)


@dataclasses.dataclass(frozen=True)
class SamplerSection:
    gen_length: int = 16
    block_length: int | None = None  # LLaDA's blocks; None: one block (or, for a Dream model, Dream's sampler)
    steps: int = 16
    temperature: float = 0.9
    remasking: str = "low_confidence"  # low_confidence | random | origin (Dream's random) | maskgit_plus |
    #                                    topk_margin | entropy
    eval_temperature: float = 0.0
    cache: str = "none"           # training rollouts with the approximate KV cache (espo, diffu_grpo only)
    schedule: str = "auto"        # blocks (LLaDA) | dream (diffusion_generate) | auto: dream for a Dream model
    #                               without block_length, else blocks
    top_p: float | None = None    # candidates as Dream's sample_tokens: logits / temperature, top_p, top_k
    top_k: int | None = None
    alg_temp: float | None = None  # dream: positions drawn from softmax(confidence / alg_temp); None/0: top-k
    noise_dtype: str = "float32"  # Gumbel-max draw: float32 | bfloat16 (the official trainers') | float64
    dream_mask_candidate: str = "exclude"  # dream: exclude (the mask token is never drawn) | official (Dream's
    #                               sample_tokens: a drawn mask token leaves the position masked)


@dataclasses.dataclass(frozen=True)
class OptimSection:
    learning_rate: float = 2e-4   # the demo's; the EGSPO paper uses 3e-5 with LoRA on LLaDA-8B
    warmup_steps: int = 0
    weight_decay: float = 0.1
    b1: float = 0.9
    b2: float = 0.99
    grad_clip: float = 0.2
    schedule: str = "cosine"      # the demo's (bench/RESULTS.md, issue 28) | constant (the papers', which their
    #                               configs set); cosine: after the warmup, down to min_lr_ratio x the peak at the
    #                               run's last optimizer step (run.iterations x steps per iteration)
    min_lr_ratio: float = 0.1     # cosine only (transformers' cosine_with_min_lr min_lr_rate; ESPO's train.yaml)


@dataclasses.dataclass(frozen=True)
class SFTSection:
    steps: int = 1200             # warm-start SFT steps before RL (0: none)
    batch_size: int = 64
    learning_rate: float = 2e-3
    warmup_steps: int = 10
    save_every: int = 50          # SFT steps between checkpoints (and one after the last; 0: only on SIGTERM):
    #                               a kill -9 loses at most this many steps (the demo's: about 8 s of its 1200)


@dataclasses.dataclass(frozen=True)
class RunSection:
    iterations: int = 250
    eval_every: int = 50          # RL iterations between held-out evaluations (0: only before/after)
    eval_samples: int = 0         # > 0: the held-out evaluations before and after RL also report pass@k of this many samples per
    #                               record at sampler.temperature (eval_pass@k; 0: greedy metrics only)
    save_every: int = 0           # RL iterations between Orbax checkpoints (0: after SFT and at the end only)
    keep_checkpoints: int = 3     # the newest N checkpoints are kept
    keep_best_checkpoints: int = 0  # and the N with the best held-out reward (a checkpoint at every evaluation)
    resume: bool | str = False    # true: continue from the newest checkpoint (none there: an error); "auto": continue
    #                               if there is one, else start fresh (what the launchers use)
    keep_best: bool = False       # export the best held-out model so far (by eval reward) to out_dir/best_model
    out_dir: str = "runs/default"
    tensorboard: bool = True
    wandb_project: str | None = None  # log to Weights & Biases under this project (pip install 'dlrl_jax[wandb]')
    progress: bool = True
    halt_on: str = ""             # guards, e.g. "first_ratio_dev>0.1,kl>0.5,reward_mean<0.01" (dlrl_jax/app/health.py):
    halt_patience: int = 3        # ... that stop the run with a checkpoint once one holds this many iterations in a row


@dataclasses.dataclass(frozen=True)
class MeshSection:
    data: int = -1                # -1: every device the other axes leave
    fsdp: int = 1
    tensor: int = 1


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    model: ModelSection = ModelSection()
    task: TaskSection = TaskSection()
    sampler: SamplerSection = SamplerSection()
    algorithm: AlgorithmSection = AlgorithmSection()
    optim: OptimSection = OptimSection()
    sft: SFTSection = SFTSection()
    run: RunSection = RunSection()
    mesh: MeshSection = MeshSection()


# Fields with a fixed set of values. Where a registry or a lower module already holds the set, it is
# read from there (`_registered_choices`), so a task or objective registered as the README says is
# accepted here without a second list to edit.
_CHOICES = {
    "model.dtype": ("float32", "bfloat16"),
    "model.compute_dtype": (None, "float32", "bfloat16"),
    "task.prompt_style": ("plain", "chat"),
    "task.truncate_prompts": ("refuse", "left"),
    "algorithm.aggregation": ("sum", "mean"),
    "algorithm.token_mean": ("row", "batch"),
    "task.sft_teacher": ("auto", "solution", "mixed"),
    "algorithm.zero_variance_groups": ("keep", "drop"),
}


def _registered_choices() -> dict[str, tuple]:
    """The fields whose values a registry or the module that runs them holds, read from it. Imported on
    call: those packages stand below this module and import nothing of it (bench/import_graph.py), and
    a config file is read before anything needs JAX."""
    from dlrl_jax import tasks
    from dlrl_jax.models.config import REMAT_POLICIES
    from dlrl_jax.objectives.selection import MODES as SELECTION_MODES
    from dlrl_jax.rewards.decoding import DECODE_MODES
    from dlrl_jax.rewards.sandbox.isolation import MODES as SANDBOX_MODES
    from dlrl_jax.rollout import settings as sampler
    from dlrl_jax.tasks.prompts import PROMPT_RECIPES
    from dlrl_jax.training.algorithms import ALGORITHMS
    from dlrl_jax.training.optimizer import SCHEDULES as LR_SCHEDULES

    return {
        "model.remat": REMAT_POLICIES,
        "task.name": tasks.names(),
        "task.reward_set": tasks.REWARD_SETS,
        "task.prompt_recipe": PROMPT_RECIPES,
        "task.decode": DECODE_MODES,
        "task.code_sandbox": SANDBOX_MODES,
        "optim.schedule": LR_SCHEDULES,
        "sampler.remasking": sampler.REMASKING,
        "sampler.cache": sampler.CACHES,
        "sampler.schedule": ("auto",) + sampler.SCHEDULES,  # auto: Dream's for a Dream model, else blocks
        "sampler.noise_dtype": sampler.NOISE_DTYPES,
        "sampler.dream_mask_candidate": sampler.DREAM_MASK_CANDIDATES,
        "algorithm.name": tuple(ALGORITHMS) + ("sft",),  # sft: the warm start alone, no RL objective
        "algorithm.selection": SELECTION_MODES + ("adaptive",),  # adaptive: top-K entropy with K from the host
    }


_POSITIVE = {"task.train_size", "task.eval_size", "sampler.gen_length",
             "sampler.steps", "algorithm.prompts_per_batch", "algorithm.group_size", "algorithm.k",
             "algorithm.mu", "algorithm.micro_batches", "algorithm.elbo_samples", "sft.batch_size", "run.iterations",
             "run.keep_checkpoints", "run.halt_patience"}
_NON_NEGATIVE = {"task.min_blanks", "task.max_prompt_length", "sampler.temperature",
                 "sampler.eval_temperature", "algorithm.lam", "algorithm.columns_per_update", "algorithm.elbo_strata", "algorithm.eps_low", "algorithm.eps_high",
                 "algorithm.beta", "algorithm.p_mask_prompt", "optim.learning_rate", "optim.warmup_steps", "optim.weight_decay",
                 "algorithm.ref_sync_every",
                 "optim.grad_clip", "sft.steps", "sft.learning_rate", "sft.warmup_steps", "sft.save_every", "run.eval_every",
                 "run.eval_samples", "run.save_every", "run.keep_best_checkpoints"}


SEED_MAX = 2**31 - 2
INT_MAX = 2**31 - 1  # every integer field: sizes and counts become int32 values
PATH_FIELDS = ("model.path", "model.tokenizer", "model.adapter", "task.train_file", "task.eval_file", "run.out_dir")  # the RL data stream uses seed + 1, and grain takes 32-bit seeds
# Fields whose value must lie in an interval (every float must also be finite): (low, high, low closed, high closed).
_RANGES = {"optim.learning_rate": (0.0, math.inf, False, False), "sft.learning_rate": (0.0, math.inf, False, False),
           "optim.b1": (0.0, 1.0, True, False), "optim.b2": (0.0, 1.0, True, False),
           "algorithm.p_mask_prompt": (0.0, 1.0, True, True), "task.heuristic_fraction": (0.0, 1.0, True, True),
           "optim.min_lr_ratio": (0.0, 1.0, True, True), "seed": (0, SEED_MAX, True, True)}


def _from_dict(cls, raw: Any, where: str):
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping of fields, got {type(raw).__name__} {shown(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {sorted(fields)}"
            raise ConfigError(f"unknown config key {shown(path)}{hint}")
        values[key] = _coerce(hints[key], value, path)
    return cls(**values)


def _coerce(hint, value, path):
    if dataclasses.is_dataclass(hint):
        return _from_dict(hint, value if value is not None else {}, path)
    args = typing.get_args(hint)
    optional = type(None) in args
    if value is None:
        if optional:
            return None
        raise ConfigError(f"config field '{path}' cannot be null")
    base = next((a for a in args if a is not type(None)), hint) if isinstance(hint, types.UnionType) or args \
        else hint
    if base is bool and str in args and value == "auto":  # run.resume, algorithm.elbo_remat: true | false | auto
        return value
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config field '{path}' must be true{', false or auto' if str in args else ' or false'}, "
                              f"got {shown(value)}")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config field '{path}' must be an integer, got {shown(value)}")
        if abs(value) > INT_MAX and path not in _RANGES:  # counts and sizes feed int32 arrays and schedules: beyond that, a traceback
            raise ConfigError(f"config field '{path}' must be at most {INT_MAX} in size, got {shown(value)}")
        return value
    if base is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config field '{path}' must be a number, got {shown(value)}")
        try:
            return float(value)
        except OverflowError:  # an integer beyond float range
            raise ConfigError(f"config field '{path}' must be a finite number, got {shown(value)}") from None
    if base is str:
        if not isinstance(value, str):
            raise ConfigError(f"config field '{path}' must be a string, got {shown(value)}")
        return os.path.expanduser(value) if path in PATH_FIELDS else value  # "~/data.jsonl": no shell expands it
        #                                                                    after "--set x=" or in YAML
    return value


def _objective_settings(a: AlgorithmSection) -> AlgorithmSection:
    """`algorithm.settings` (a mapping in the YAML) made into the named objective's own frozen settings
    struct (`AlgorithmSpec.settings`, its defaults for what the mapping leaves out), with the usual
    one-line errors naming `algorithm.settings.<field>`; an objective without one takes none."""
    from dlrl_jax.training.algorithms import ALGORITHMS

    kind = getattr(ALGORITHMS.get(a.name), "settings", None)
    if dataclasses.is_dataclass(a.settings) and not isinstance(a.settings, type):
        if kind is not None and isinstance(a.settings, kind):
            return a  # made in code already
        raise ConfigError(f"algorithm.settings: {type(a.settings).__name__} is not {a.name}'s settings type")
    if kind is None:
        if a.settings:
            raise ConfigError(f"algorithm.settings: {a.name} takes no settings of its own (its fields are "
                              f"algorithm.*), got {shown(a.settings)}; remove algorithm.settings")
        return dataclasses.replace(a, settings=None)
    return dataclasses.replace(a, settings=_from_dict(kind, a.settings or {}, "algorithm.settings"))


def _check(cfg: Config) -> Config:
    flat = _flatten(cfg)
    choices = {**_CHOICES, **_registered_choices()}
    for path in (p for p in flat if p in choices):  # in the config's field order
        if flat[path] not in choices[path]:
            raise ConfigError(f"config field '{path}' is {shown(flat[path])}; choose one of {list(choices[path])}")
    cfg = dataclasses.replace(cfg, algorithm=_objective_settings(cfg.algorithm))
    for path, value in flat.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config field '{path}' must be a finite number, got {shown(value)}")
    for path, (low, high, low_closed, high_closed) in _RANGES.items():
        value = flat[path]
        if not ((value >= low if low_closed else value > low) and (value <= high if high_closed else value < high)):
            interval = (f"{'[' if low_closed else '('}{low}, {'inf' if high == math.inf else high}"
                        f"{']' if high_closed else ')'}")
            raise ConfigError(f"config field '{path}' must be in {interval}, got {shown(value)}")
    for path in _POSITIVE:
        if flat[path] <= 0:
            raise ConfigError(f"config field '{path}' must be > 0, got {shown(flat[path])}")
    for path in _NON_NEGATIVE:
        if flat[path] < 0:
            raise ConfigError(f"config field '{path}' must be >= 0, got {shown(flat[path])}")
    s = cfg.sampler
    _check_sampler(s)
    if s.block_length is not None and s.gen_length % s.block_length:
        raise ConfigError(f"sampler.gen_length {s.gen_length} is not divisible by sampler.block_length "
                          f"{s.block_length}; choose a block_length that divides it")
    blocks = s.gen_length // s.block_length if s.block_length is not None else 1
    if s.steps % blocks:
        raise ConfigError(f"sampler.steps {s.steps} is not a multiple of the {blocks} blocks "
                          f"(gen_length / block_length); use a multiple of {blocks}")
    if s.steps > s.gen_length:
        raise ConfigError(f"sampler.steps {s.steps} exceeds sampler.gen_length {s.gen_length}: every step must "
                          f"commit at least one token; use at most {s.gen_length} steps")
    t = cfg.task
    if t.sft_teacher == "mixed" and t.name != "sudoku":
        raise ConfigError(f"task.sft_teacher 'mixed' (the row-order heuristic) exists for sudoku only, not {t.name}; "
                          "use task.sft_teacher=solution")
    a = cfg.algorithm
    if s.cache != "none" and a.name in ("egspo", "egspo_sa"):
        raise ConfigError(f"sampler.cache {s.cache!r} cannot serve {a.name}: its update uses the rollout's per-step "
                          f"log-probs (and EGSPO-SA every step's greedy completion), which the approximate cache "
                          f"would change; set sampler.cache=none, or use it with espo or diffu_grpo")
    if a.k > s.steps:
        raise ConfigError(f"algorithm.k {a.k} exceeds sampler.steps {s.steps}; at most every step can be selected")
    if not 0.0 < a.adaptive_alpha <= 1.0:
        raise ConfigError(f"algorithm.adaptive_alpha must be in (0, 1], got {a.adaptive_alpha}")
    if a.eps_low >= 1.0:
        raise ConfigError(f"algorithm.eps_low must be < 1 (the ratio's lower clip is 1 - eps_low), got {a.eps_low}")
    if a.name in ("egspo", "egspo_sa") and a.columns_per_update and a.selection != "adaptive" \
            and a.k % a.columns_per_update:
        raise ConfigError(f"algorithm.columns_per_update {a.columns_per_update} does not divide algorithm.k {a.k}: "
                          "each optimizer step trains whole columns; use a divisor of k (or 0: all k columns "
                          "in one step)")
    rows = a.prompts_per_batch * a.group_size
    if a.elbo_strata and rows % a.elbo_strata:
        raise ConfigError(f"algorithm.elbo_strata {a.elbo_strata} does not divide the {rows} rows "
                          "(prompts_per_batch x group_size); use a divisor (ESPO: the per-device batch)")
    if rows % a.micro_batches:
        raise ConfigError(f"algorithm.micro_batches {a.micro_batches} does not divide the {rows} rows "
                          "(prompts_per_batch x group_size)")
    if not 0.0 < a.ref_sync_mix <= 1.0:
        raise ConfigError(f"algorithm.ref_sync_mix must be in (0, 1], got {a.ref_sync_mix}")
    if a.ref_sync_every and cfg.model.lora_rank:
        raise ConfigError(f"algorithm.ref_sync_every {a.ref_sync_every} needs a full fine-tune: with LoRA the "
                          "reference is the base with the adapter off (TRL skips the sync there too); set "
                          "model.lora_rank=0 or algorithm.ref_sync_every=0")
    if a.group_size < 2 and a.name != "sft":
        raise ConfigError("algorithm.group_size must be >= 2: advantages are relative to the group mean")
    for axis in ("data", "fsdp", "tensor"):
        size = getattr(cfg.mesh, axis)
        if size == 0 or size < -1 or (size == -1 and axis != "data"):
            raise ConfigError(f"config field 'mesh.{axis}' must be a positive integer"
                              f"{' or -1 (all remaining devices)' if axis == 'data' else ''}, got {size}")
    m = cfg.model
    if m.lora_rank < 0:
        raise ConfigError(f"model.lora_rank must be >= 0 (0: full fine-tuning), got {m.lora_rank}")
    if m.lora_rank:
        known = ("q", "k", "v", "o", "gate", "up", "down")
        targets = [x.strip() for x in m.lora_targets.split(",") if x.strip()]
        ours = [x for x in targets if x in known]
        # PEFT module names (q_proj, attn_out, self_attn.o_proj, ...) are resolved once the architecture is known
        peft_names = [x for x in targets if x not in known and all(p.isidentifier() for p in x.split("."))]
        if not targets or len(ours) + len(peft_names) != len(targets) or (ours and peft_names):
            raise ConfigError(f"model.lora_targets {shown(m.lora_targets)}: use a comma-separated subset of "
                              f"{','.join(known)}, or PEFT module names (e.g. q_proj,k_proj,v_proj,o_proj,"
                              "up_proj,down_proj,gate_proj), not a mix")
        if m.lora_alpha <= 0:
            raise ConfigError(f"model.lora_alpha must be > 0, got {m.lora_alpha}")
    if not 0.0 <= m.lora_dropout < 1.0:
        raise ConfigError(f"model.lora_dropout must be in [0, 1), got {m.lora_dropout}")
    if m.adapter is not None and m.lora_rank:
        raise ConfigError(f"model.adapter {m.adapter!r} brings its own rank, alpha, targets and dropout "
                          f"(adapter_config.json); leave model.lora_rank at 0 (it is {m.lora_rank})")
    if m.lora_dropout and not m.lora_rank:
        raise ConfigError(f"model.lora_dropout {m.lora_dropout} needs LoRA adapters; set model.lora_rank > 0 "
                          f"or lora_dropout to 0")
    from dlrl_jax.models.config import QUANTIZE_MODES as quantize_modes
    if m.quantize_base not in quantize_modes:
        raise ConfigError(f"model.quantize_base must be one of {', '.join(quantize_modes)}, got {m.quantize_base!r}")
    if m.quantize_base != "none" and not (m.lora_rank or m.adapter):
        raise ConfigError(f"model.quantize_base={m.quantize_base} freezes a quantized base, so it needs LoRA "
                          "adapters to train; set model.lora_rank > 0 (the papers: 128), model.adapter, or "
                          "model.quantize_base=none")
    t = cfg.task
    if t.min_blanks > t.max_blanks or t.max_blanks > 12:
        raise ConfigError(f"task.min_blanks..max_blanks must satisfy 0 <= min <= max <= 12 (a unique 4x4 "
                          f"solution needs 4 clues), got "
                          f"{t.min_blanks}..{t.max_blanks}")
    if t.truncate_prompts == "left" and not t.max_prompt_length:
        raise ConfigError("task.truncate_prompts 'left' keeps the last task.max_prompt_length tokens; set "
                          "task.max_prompt_length > 0 (the papers: 200 for EGSPO and d1, 400 for ESPO)")
    if t.prompt_recipe != "dlrl" and t.prompt_style != "chat":
        raise ConfigError(f"task.prompt_recipe {t.prompt_recipe!r} is a chat prompt; set task.prompt_style=chat "
                          "(or prompt_recipe=dlrl for plain prompts)")
    if cfg.model.path is not None and not os.path.isdir(cfg.model.path):
        raise ConfigError(f"model.path {cfg.model.path!r} is not a folder; point it at a Hugging Face model "
                          "folder (config.json + safetensors) or set it to null to use model.preset")
    if m.adapter is not None and not os.path.isdir(m.adapter):
        raise ConfigError(f"model.adapter {m.adapter!r} is not a folder; point it at a PEFT adapter folder "
                          "(adapter_config.json + adapter_model.safetensors)")
    if cfg.run.resume not in (True, False, "auto"):
        raise ConfigError(f"config field 'run.resume' is {cfg.run.resume!r}; choose true, false or auto")
    for path in PATH_FIELDS:  # a symlink loop, a file used as a folder, a name too long: one line, not a traceback
        value = flat[path]
        if value is not None and not value.startswith("hf:"):
            try:
                os.stat(value)
            except FileNotFoundError:
                pass  # (whether it must exist is checked below, per field)
            except OSError as e:
                raise ConfigError(f"config field '{path}': {shown(value)} cannot be used ({e.strerror}); "
                                  "choose another path") from None
    if os.path.exists(cfg.run.out_dir) and not os.path.isdir(cfg.run.out_dir):
        raise ConfigError(f"run.out_dir {cfg.run.out_dir!r} is a file, not a folder; choose a folder path")
    for path in ("task.train_file", "task.eval_file", "model.tokenizer"):
        value = flat[path]
        if value is not None and not value.startswith("hf:") and not os.path.exists(value):
            raise ConfigError(f"config field '{path}': {shown(value)} does not exist")
    for path in ("task.train_file", "task.eval_file"):
        if flat[path] is not None:
            from dlrl_jax.data.readers import DataError, check_source  # known hub data sets' columns
            try:
                check_source(flat[path], t.name)
            except DataError as e:
                raise ConfigError(f"config field '{path}': {e}") from None
    return cfg


def _check_sampler(s: SamplerSection) -> None:
    """The sampler fields of both schedules; whether "auto" means Dream's is known once the model is."""
    if s.block_length is not None and s.block_length <= 0:
        raise ConfigError(f"config field 'sampler.block_length' must be > 0 (or null: no blocks), got {s.block_length}")
    if s.top_p is not None and not 0.0 < s.top_p <= 1.0:
        raise ConfigError(f"sampler.top_p must be in (0, 1] (null: no nucleus filter), got {s.top_p}")
    if s.top_k is not None and s.top_k <= 0:
        raise ConfigError(f"sampler.top_k must be a positive integer (null: no top-k filter), got {s.top_k}")
    if s.alg_temp is not None and s.alg_temp < 0:
        raise ConfigError(f"sampler.alg_temp must be >= 0 (null or 0: the top-k positions), got {s.alg_temp}")
    blocks = s.schedule == "blocks" or (s.schedule == "auto" and s.block_length is not None)
    if s.alg_temp and blocks:
        raise ConfigError(f"sampler.alg_temp {s.alg_temp} is part of Dream's sampler; set sampler.schedule=dream "
                          f"(and no block_length) or sampler.alg_temp=null")
    if s.dream_mask_candidate == "official" and blocks:
        raise ConfigError("sampler.dream_mask_candidate official is part of Dream's sampler; set "
                          "sampler.schedule=dream (and no block_length) or sampler.dream_mask_candidate=exclude")
    if s.schedule == "dream" and s.block_length is not None:
        raise ConfigError(f"sampler.block_length {s.block_length} has no meaning for sampler.schedule=dream (no "
                          f"blocks); set sampler.block_length=null, or sampler.schedule=blocks")
    if s.schedule == "dream" and s.cache != "none":
        raise ConfigError(f"sampler.cache {s.cache!r} works block by block; sampler.schedule=dream needs cache none")
    if s.schedule == "dream" and s.noise_dtype != "float32":
        raise ConfigError(f"sampler.noise_dtype {s.noise_dtype!r} applies to LLaDA's Gumbel-max formula; "
                          f"sampler.schedule=dream samples as torch's Categorical does: use float32")
    if s.noise_dtype == "float64":
        import jax
        if not jax.config.jax_enable_x64:
            raise ConfigError("sampler.noise_dtype float64 needs 64-bit JAX: set JAX_ENABLE_X64=1 before starting, "
                              "or use float32 (the same distribution, drawn in log space)")


def _flatten(cfg) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update({f"{f.name}.{k}": v for k, v in _flatten(value).items()})
        else:
            out[f.name] = value
    return out


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """`--set a.b=value` pairs (values parsed as YAML scalars) applied onto the raw mapping."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {shown(item)} must look like section.key=value")
        dotted, text = item.split("=", 1)
        node = raw
        parts = dotted.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {dotted}: '{part}' is not a section")
        try:
            node[parts[-1]] = config_yaml.load(text) if text.strip() else None
        except config_yaml.StrictYAMLError as e:
            raise ConfigError(f"--set {dotted}: {e}") from None
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"--set {dotted}: the value {shown(text)} is not a YAML scalar ({problem}); quote "
                              f"it or write it as YAML (e.g. 0.5, true, text)") from None
    return raw


def from_dict(raw: dict, overrides: list[str] = ()) -> Config:
    return _check(_from_dict(Config, apply_overrides(copy.deepcopy(raw), list(overrides)), ""))


def load(path: str | None, overrides: list[str] = ()) -> Config:
    """Reads a YAML config (None: the embedded defaults), applies overrides, validates."""
    raw: dict = {}
    if path is not None:
        if not os.path.isfile(path):
            raise ConfigError(f"config file {path!r} does not exist")
        with open(path) as f:
            try:
                raw = config_yaml.load(f) or {}
            except config_yaml.StrictYAMLError as e:
                raise ConfigError(f"{path} {e}") from None
            except yaml.YAMLError as e:
                raise ConfigError(f"{path} is not valid YAML: {' '.join(str(e).split())}") from None
    return from_dict(raw, overrides)


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)
