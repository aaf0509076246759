"""The evaluator: `completions_in_batches` decodes records batch by batch with one compiled shape,
and both training's held-out evaluations (`held_out`) and `dlrl-jax eval` (`evaluate_model`) score
what it yields.

`dlrl-jax eval`: a saved model on a task at one or more generation lengths, with the papers'
evaluation decoding (temperature 0, block 32, steps = gen_length / 2) through the same rollout engine
training uses. `protocol` picks whose evaluation: "dlrl" (this project's, the default) or a paper's
("d1", "egspo", "espo": `dlrl_jax.protocols.eval_protocol`), which sets the prompt and prefill, the
test file and its subsample, the dtype, batch sizes and pad handling, Dream's order, the text the
parser reads and the official parser; explicit settings still override its decoding defaults.

Each generation length writes `eval_<task>_<length>.jsonl`, one line per example (index, prompt,
completion, raw_completion (special tokens kept, what the official parsers read), extracted
answer, reward, correct and total (Sudoku under a paper's parser: correct and blank cells), the
record (its ground truth, which `dlrl-jax rescore` reads), question and ground_truth as the official
generation files store them), appended and flushed batch by batch; a rerun with the
same settings skips the examples already written, so an interrupted evaluation resumes where it
stopped. `eval_meta.json` records the decoding settings and a fingerprint of the model (sha256 of its
weights, config and tokenizer files); a rerun with a different model or different settings is refused
by name, never mixed into the same results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from dlrl_jax import checkpoints, models, rollout, tasks
from dlrl_jax.app.pass_at_k import mean_pass_at_k, pass_at_k
from dlrl_jax.app.preemption import Preempted, StopFlag
from dlrl_jax.app.run import Run
from dlrl_jax.app.run_lock import RunLock
from dlrl_jax.config import SEED_MAX, ConfigError
from dlrl_jax.data import readers
from dlrl_jax.folders.manifest import ManifestMismatch, verify_manifest
from dlrl_jax.models.tokenizer import Tokenizer
from dlrl_jax.protocols import eval_prompts, eval_protocol, parsers
from dlrl_jax.rewards.decoding import completion_texts
from dlrl_jax.training import key_streams, setup
from dlrl_jax.training.key_streams import SAMPLES_STREAM


def completions_in_batches(indices: list[int], batch_size: int, encode, generate, decode, key_for,
                           before_batch=lambda: None):
    """Yields (indices of the batch, their completion texts) for `indices` in batches of `batch_size`.

    The last batch is padded with its last index repeated, so every batch has one compiled shape.
    `encode(indices) -> (prompt ids [batch_size, P], mask)`, `generate(ids, mask, key) -> Trajectory`,
    `decode(completion ids [batch_size, G]) -> texts`; `key_for(first index of the batch)` keys the
    batch (a function of the records, not of how many came before: a resumed evaluation draws the
    same keys). `before_batch()` runs before each batch (a SIGTERM check)."""
    for start in range(0, len(indices), batch_size):
        before_batch()
        index = list(indices[start:start + batch_size])
        padded = index + [index[-1]] * (batch_size - len(index))
        ids, mask = encode(padded)
        traj = generate(ids, mask, key_for(index[0]))
        yield index, decode(traj.completion)[:len(index)]


def held_out(run: Run, params, records: list[dict], batch_size: int, step: int = 0, stop=lambda: None,
             samples: bool = True) -> dict:
    """Training's held-out evaluation with the evaluation sampler: mean reward, solved fraction
    (reward >= 1), and `eval_correct`, the task's own correctness (`Task.correct`: the fraction of
    blanks right for Sudoku, 1/0 otherwise; what `dlrl-jax eval` reports as accuracy). With
    `run.eval_samples` N > 0 and `samples` also pass@k of N completions per record at the rollout
    temperature (`held_out_pass_at_k`; training asks for it before and after RL only, where the
    end-of-run table reads it: N samples cost about N greedy evaluations).

    Its keys come from their own stream (seed, step), so evaluating more or less often never changes
    the training run. `stop()` runs between batches (a preempted run raises there)."""
    settings = run.sampler(run.cfg.sampler.eval_temperature)
    eval_key = key_streams.eval_key(run.cfg.seed, step)
    scores, correct = [], []
    for index, texts in completions_in_batches(
            list(range(len(records))), batch_size, encode=lambda rows: run.encode([records[i] for i in rows]),
            generate=lambda ids, mask, key: rollout.generate(run.graphdef, params, ids, mask, key, settings),
            decode=run.decode, key_for=lambda first: jax.random.fold_in(eval_key, first), before_batch=stop):
        chunk = [records[i] for i in index]
        scores.append(run.task.score(texts, chunk))
        correct.append(run.task.correct(texts, chunk))
    scores = np.concatenate(scores)
    result = {"reward": float(scores.mean()), "solved": float((scores >= 1.0 - 1e-6).mean()),
              "eval_correct": float(np.mean(np.concatenate(correct)))}
    if run.cfg.run.eval_samples and samples:
        result.update(held_out_pass_at_k(run, params, records, batch_size, run.cfg.run.eval_samples, step, stop))
    return result


def held_out_pass_at_k(run: Run, params, records: list[dict], batch_size: int, samples: int, step: int = 0,
                       stop=lambda: None) -> dict:
    """pass@k (k = powers of 2 up to `samples`, `samples`, and algorithm.group_size when at most
    `samples`) of `samples` completions per record at the rollout temperature (`sampler.temperature`),
    a sample counting as correct when `Task.correct` is 1 (a Sudoku grid solved whole). Keys from the
    evaluation stream folded once more (SAMPLES_STREAM), so the greedy evaluation's draws and training's
    are unchanged."""
    settings = run.sampler(run.cfg.sampler.temperature)
    key = jax.random.fold_in(key_streams.eval_key(run.cfg.seed, step), SAMPLES_STREAM)
    flat = [(i, j) for i in range(len(records)) for j in range(samples)]  # the samples of a record together
    right = np.zeros(len(records), np.int64)
    for index, texts in completions_in_batches(
            list(range(len(flat))), batch_size, encode=lambda rows: run.encode([records[flat[r][0]] for r in rows]),
            generate=lambda ids, mask, k: rollout.generate(run.graphdef, params, ids, mask, k, settings),
            decode=run.decode, key_for=lambda first: jax.random.fold_in(key, first), before_batch=stop):
        owners = [flat[r][0] for r in index]
        ok = run.task.correct(texts, [records[i] for i in owners]) >= 1.0 - 1e-6
        np.add.at(right, owners, ok.astype(np.int64))
    passes = mean_pass_at_k(right, samples)
    group = run.cfg.algorithm.group_size  # and k = the group size (the end-of-run table's), where n allows
    if group <= samples and f"pass@{group}" not in passes:
        passes[f"pass@{group}"] = float(np.mean([pass_at_k(samples, int(c), group) for c in right]))
    return {name.replace("pass@", "eval_pass@"): value for name, value in passes.items()}


class EvalError(ValueError):
    """An evaluation setting or input is unusable; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    model: str
    task: str
    out_dir: str
    gen_lengths: tuple[int, ...] = (128, 256, 512)
    data: str | None = None          # records file / hf: name; None: the protocol's test set (dlrl: the generator)
    num_examples: int = 0            # 0: all records (generator: 256)
    prompt_style: str = "chat"
    block_length: int | None = None  # None: 32 (the papers') for LLaDA's sampler; Dream's sampler for a Dream model
    steps_per_token: float = 0.5     # steps = gen_length * steps_per_token (the papers: 1/2)
    temperature: float = 0.0
    remasking: str | None = None     # None: the protocol's (low_confidence; a paper protocol's Dream order)
    schedule: str = "auto"           # blocks | dream | auto (dream for a Dream model without block_length)
    top_p: float | None = None
    top_k: int | None = None
    alg_temp: float | None = None
    noise_dtype: str = "float32"
    dream_mask_candidate: str | None = None  # None: the protocol's under Dream's sampler (dlrl exclude, papers
    #                                          official), else exclude
    threshold: float | None = None   # confidence-threshold parallel decoding instead of fixed steps
    cache: str = "none"              # Fast-dLLM's approximate prefix / dual KV cache
    batch_size: int | None = None    # None: the protocol's (dlrl 16; d1/EGSPO 8, 4 at length 512; ESPO 1)
    tokenizer: str | None = None
    dtype: str | None = None         # None: the protocol's (dlrl float32, the papers bfloat16)
    seed: int = 0
    progress: bool = True
    adapter: str | None = None       # a PEFT LoRA adapter folder put onto the model
    reward_set: str = "dlrl"         # as task.reward_set
    prompt_recipe: str = "dlrl"      # as task.prompt_recipe
    decode: str = "cut_eos"          # as task.decode
    samples: int = 0                 # > 0: also this many completions per example at `temperature` for pass@k,
    #                                  beside the greedy (temperature 0) accuracy
    protocol: str = "dlrl"           # whose evaluation: dlrl | d1 | egspo | espo (eval_protocol)
    attend_pads: bool | None = None  # None: the protocol's (the papers' models attend their left pads)
    world_size: int | None = None    # None: the protocol's; with attended pads, which rows share a batch
    data_dir: str | None = None      # where a paper protocol's test file lies (else $DLRL_EVAL_DATA)


_PROTOCOL_FIXED = (("prompt_style", "--prompt-style", "chat"), ("prompt_recipe", "--prompt-recipe", "dlrl"),
                   ("reward_set", "--reward-set", "dlrl"), ("decode", "--decode", "cut_eos"))


def resolve(s: EvalSettings, family: str) -> tuple[EvalSettings, eval_protocol.EvalProtocol]:
    """`s` with every unset setting taken from its protocol (and, for a paper's protocol, its test
    file located), and the protocol. A paper's protocol fixes the prompt, reward set and decoding of
    the text itself: --prompt-style / --prompt-recipe / --reward-set / --decode with one are refused."""
    try:
        protocol = eval_protocol.get(s.protocol, s.task)
    except eval_protocol.ProtocolUnavailable as e:
        raise EvalError(str(e)) from None
    fixed = {}
    if protocol.name != "dlrl":
        given = [flag for field, flag, default in _PROTOCOL_FIXED if getattr(s, field) != default]
        if given:
            raise EvalError(f"--protocol {protocol.name} sets the prompt, reward set and completion text itself; "
                            f"drop {', '.join(given)} (or use --protocol dlrl to choose them)")
        fixed = dict(reward_set=protocol.reward_set, decode="official",
                     data=s.data or eval_protocol.locate_data(protocol, s.data_dir))
    resolved = dataclasses.replace(
        s, **fixed, dtype=s.dtype or protocol.dtype,
        remasking=s.remasking or (protocol.dream_remasking if models.families.get(family).sampler == "dream"
                                  else "low_confidence"),
        dream_mask_candidate=s.dream_mask_candidate or (
            protocol.dream_mask_candidate if rollout.resolve_schedule(s.schedule, family, s.block_length) == "dream"
            else "exclude"),
        attend_pads=protocol.attend_pads if s.attend_pads is None else s.attend_pads,
        world_size=s.world_size or protocol.world_size)
    if resolved.batch_size is not None and resolved.batch_size <= 0:
        raise EvalError(f"--batch-size must be positive, got {resolved.batch_size}")
    if resolved.world_size <= 0:
        raise EvalError(f"--world-size must be positive, got {resolved.world_size}")
    return resolved, protocol


def sampler_settings(s: EvalSettings, gen_length: int, mask_id: int, family: str = "llada") -> rollout.SamplerSettings:
    for flag, value in (("--temperature", s.temperature), ("--steps-per-token", s.steps_per_token),
                        ("--threshold", s.threshold)):
        if value is not None and not math.isfinite(value):
            raise EvalError(f"{flag} must be a finite number, got {value}")
    if s.steps_per_token <= 0:
        raise EvalError(f"--steps-per-token must be > 0, got {s.steps_per_token}")
    if s.samples < 0 or (s.samples and s.temperature <= 0):
        raise EvalError(f"--samples {s.samples} needs --temperature > 0 (the samples' temperature; the accuracy "
                        "stays greedy), and --samples must be >= 0")
    steps = max(1, int(round(gen_length * s.steps_per_token)))
    if s.schedule not in ("auto", "blocks", "dream"):
        raise EvalError(f"--schedule {s.schedule!r} is unknown; use auto, blocks or dream")
    schedule = rollout.resolve_schedule(s.schedule, family, s.block_length)
    settings = rollout.SamplerSettings(gen_length=gen_length, block_length=min(s.block_length or 32, gen_length),
                                       steps=steps, temperature=s.temperature, mask_id=mask_id,
                                       remasking=s.remasking or "low_confidence",
                                       threshold=s.threshold, cache=s.cache, schedule=schedule, top_p=s.top_p,
                                       top_k=s.top_k, alg_temp=s.alg_temp, noise_dtype=s.noise_dtype,
                                       dream_mask_candidate=s.dream_mask_candidate or "exclude")
    try:
        return settings.validate()
    except rollout.SamplerSettingsError as e:
        raise EvalError(f"gen length {gen_length}: {e}") from None


def load_records(s: EvalSettings, protocol: eval_protocol.EvalProtocol | None = None) -> list[dict]:
    """The records evaluated, in order (see `records_and_rows`)."""
    return records_and_rows(s, protocol)[0]


def records_and_rows(s: EvalSettings, protocol: eval_protocol.EvalProtocol | None = None):
    """(records, their row numbers in the file): the file's rows (a paper protocol's subsample of them,
    drawn as its code draws it, in that order), else the generator's; the first --num-examples of
    them when given."""
    if s.data:
        records = tasks.read_records(s.data, s.task)
        rows = list(range(len(records)))
        if protocol is not None and protocol.subsample is not None:
            try:
                rows = eval_protocol.subsample_indices(len(records), protocol.subsample, protocol.subsample_seed)
            except ValueError as e:
                raise EvalError(f"{s.data}: {e} (--protocol {protocol.name}); give the official test file") from None
            records = [records[i] for i in rows]
    elif tasks.get(s.task).generate is not None:
        records = tasks.get(s.task).generate(s.seed, s.num_examples or 256)
        rows = list(range(len(records)))
    else:
        raise EvalError(f"task {s.task!r} has no generator; pass --data FILE (JSONL/Parquet/CSV or "
                        f"hf:NAME[:CONFIG]:SPLIT), e.g. {readers.packaged_file('gsm8k_mini.jsonl')}")
    if protocol is not None and protocol.name == "egspo" and s.task == "code":
        for record, row in zip(records, rows):
            if record.get("benchmark") not in ("humaneval", "mbpp"):
                raise EvalError(f"{s.data or 'the data'} row {row + 1}: --protocol egspo evaluates HumanEval or MBPP "
                                "rows (task_id, prompt, test, entry_point / prompt, test_list, test_imports); this "
                                "row is neither: give a HumanEval or MBPP file, or use --protocol dlrl")
    n = s.num_examples or len(records)
    return records[:n], rows[:n]


# The files whose bytes decide what a model folder computes: weights, architecture, tokenizer (its chat
# template may live in its own file, a SentencePiece model in tokenizer.model), and an adapter's config.
_FINGERPRINTED = ("config.json", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
                  "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt", "chat_template.jinja",
                  "chat_template.json", "tokenizer.model", "adapter_config.json")


def model_fingerprint(*folders: str) -> str:
    """sha256 over the bytes of the weights (every *.safetensors), config.json and tokenizer files of
    `folders` (the model's, then a separate tokenizer folder's), in a fixed order. Reads every byte
    once (about a second per GB): sound where sizes and times are not (a retrained model of the same
    shape has the same sizes)."""
    digest = hashlib.sha256()
    for folder in dict.fromkeys(os.path.abspath(f) for f in folders if f):
        names = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors") or n in _FINGERPRINTED)
        for name in names:
            digest.update(f"{len(name)}:{name}".encode())
            with open(os.path.join(folder, name), "rb") as f:
                for block in iter(lambda: f.read(1 << 24), b""):
                    digest.update(block)
    return digest.hexdigest()


def settings_meta(s: EvalSettings) -> dict:
    """What eval_meta.json records of the settings (the model's fingerprint aside)."""
    meta = dataclasses.asdict(s)
    for volatile in ("out_dir", "progress", "gen_lengths", "model", "data_dir"):
        meta.pop(volatile)  # (the model is identified by its fingerprint, wherever it lies)
    if not s.attend_pads:  # masked pads: a row's result does not depend on its batch
        meta.pop("batch_size")
        meta.pop("world_size")
    meta["adapter"] = s.adapter and os.path.abspath(s.adapter)
    meta["adapter_sha256"] = s.adapter and model_fingerprint(s.adapter)  # its weights and config, not its path
    meta["data_sha256"] = s.data and readers.source_fingerprint(s.data)  # the records, not the file name
    return meta


def _meta(s: EvalSettings) -> dict:
    return dict(settings_meta(s), model_sha256=model_fingerprint(s.model, s.tokenizer))


def upgraded_meta(old: dict) -> dict:
    """eval_meta.json of an older version with the settings it predates at the values it ran with."""
    old = dict(old)
    old.setdefault("cache", "none")  # folders written before the cache option existed
    old.setdefault("adapter", None)  # ... and before the adapter option
    old.setdefault("samples", 0)  # ... and before pass@k
    for key, value in dict(schedule="auto", top_p=None, top_k=None, alg_temp=None, noise_dtype="float32").items():
        old.setdefault(key, value)  # ... and before Dream's sampler options
    old.setdefault("protocol", "dlrl")  # ... and before protocols
    old.setdefault("attend_pads", False)
    old.setdefault("dream_mask_candidate", "exclude")  # ... and before the mask-candidate switch
    old.pop("model", None)  # (folders written before the fingerprint: the path only)
    return old


def _check_meta(s: EvalSettings) -> None:
    """Results in `s.out_dir` belong to one model and one set of decoding settings: a rerun with the
    same ones resumes, any other is refused by name (nothing is overwritten)."""
    if os.path.exists(s.out_dir) and not os.path.isdir(s.out_dir):
        raise EvalError(f"--out {s.out_dir} is a file, not a folder; choose a folder path")
    path = os.path.join(s.out_dir, "eval_meta.json")
    meta = _meta(s)
    if os.path.exists(path):
        try:
            with open(path) as f:
                old = json.load(f)
        except (OSError, ValueError) as e:
            raise EvalError(f"{path} is unreadable ({e}); delete {s.out_dir} to start over, or use another "
                            "--out") from None
        old = upgraded_meta(old)
        if old.get("data_sha256") != meta["data_sha256"] and s.data:
            raise EvalError(f"{s.out_dir} holds results on other contents of --data {s.data} (sha256 "
                            f"{str(old.get('data_sha256'))[:12]} there, {str(meta['data_sha256'])[:12]} now: the file "
                            "changed since, or it was written before data fingerprints); refusing to mix them: use "
                            f"another --out, or delete {s.out_dir} to start afresh")
        if old.get("adapter_sha256") != meta["adapter_sha256"] and s.adapter:
            raise EvalError(f"{s.out_dir} holds results of other adapter weights or config in --adapter {s.adapter} "
                            f"(sha256 {str(old.get('adapter_sha256'))[:12]} there, {meta['adapter_sha256'][:12]} now); "
                            f"refusing to mix them: use another --out, or delete {s.out_dir} to start afresh")
        if old.get("model_sha256") != meta["model_sha256"]:
            raise EvalError(f"{s.out_dir} holds results of a different model (weights/config/tokenizer sha256 "
                            f"{str(old.get('model_sha256'))[:12]} there, {meta['model_sha256'][:12]} now: the model "
                            "changed since, or it was written before fingerprints); refusing to mix them: use "
                            f"another --out, or delete {s.out_dir} to start afresh")
        changed = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
        if changed:
            raise EvalError(f"{s.out_dir} holds an evaluation with different settings ({', '.join(changed)}); "
                            "use another --out folder to keep both, or delete it to start over")
    else:
        os.makedirs(s.out_dir, exist_ok=True)
        with open(path, "w") as f:
            json.dump(meta, f, indent=2)


def _done_rows(path: str, key=lambda row: row["index"]) -> dict[int, dict]:
    """Rows already written, by `key(row)`; a torn last line (killed mid-write) is dropped and redone."""
    rows = {}
    if not os.path.exists(path):
        return rows
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    good = []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break
        rows[key(row)] = row
        good.append(line)
    if len(good) != len(lines):  # rewrite without the torn tail, so appends start on a clean line
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(good)
    return rows


def _verify_exports(s: EvalSettings) -> None:
    """A model (or adapter) folder that an export wrote carries a SHA256SUMS manifest: its files must
    still match it (a folder without one, such as a downloaded model, is read as it is)."""
    for flag, folder in (("--model", s.model), ("--adapter", s.adapter)):
        if folder and os.path.isdir(folder):
            try:
                verify_manifest(folder)
            except ManifestMismatch as e:
                raise EvalError(f"{flag} {folder} is not what was exported: {e}; export it again (or restore the "
                                "file)") from None


def evaluate_model(s: EvalSettings, log=print, stop: StopFlag | None = None) -> list[dict]:
    """Runs (or resumes) the evaluation; returns one summary row per generation length.

    Holds `s.out_dir`/run.lock while it runs: a second evaluation into the same folder is refused by
    name (two would append every row twice). `stop`: the CLI's SIGTERM flag; once decoding starts a
    SIGTERM stops it between batches (every written batch whole) with `Preempted`, and the same command
    continues from there."""
    if s.num_examples < 0:
        raise EvalError(f"--num-examples must be >= 0 (0: all records), got {s.num_examples}")
    if s.batch_size is not None and s.batch_size <= 0:
        raise EvalError(f"--batch-size must be a positive integer, got {s.batch_size}")
    if os.path.exists(s.out_dir) and not os.path.isdir(s.out_dir):
        raise EvalError(f"--out {s.out_dir} is a file, not a folder; choose a folder path")
    with contextlib.ExitStack() as stack:  # (holds the lock, taken once the inputs passed their checks)
        return _evaluate(s, log, stop, stack)


def _evaluate(s: EvalSettings, log, stop: StopFlag | None, stack: contextlib.ExitStack) -> list[dict]:
    if s.task not in tasks.names():
        raise EvalError(f"--task {s.task!r} is unknown; use one of {', '.join(tasks.names())}")
    if not s.gen_lengths or any(g <= 0 for g in s.gen_lengths):
        raise EvalError(f"--gen-lengths must be positive integers, got {s.gen_lengths}")
    if not 0 <= s.seed <= SEED_MAX:
        raise EvalError(f"--seed must be in [0, {SEED_MAX}], got {s.seed}")
    s, protocol = resolve(s, checkpoints.read_config(s.model).family if os.path.isdir(s.model) else "llada")
    records, file_rows = records_and_rows(s, protocol)  # (bad data fails before a big model loads)
    try:
        task: tasks.Task = tasks.make_task(s.task, s.prompt_style, [], records, s.reward_set, s.prompt_recipe)
    except ConfigError as e:
        raise EvalError(f"{e} (eval flags: --prompt-style, --reward-set, --prompt-recipe)") from None
    _verify_exports(s)
    model = checkpoints.from_pretrained(s.model, dtype=s.dtype)
    if s.adapter:
        from dlrl_jax.checkpoints.peft import load_adapter
        model = load_adapter(model, s.adapter)
    tokenizer = Tokenizer.from_pretrained(s.tokenizer or s.model, model.cfg)
    mask_id = model.cfg.mask_token_id if model.cfg.mask_token_id is not None else tokenizer.mask_id
    settings_by_length = {g: sampler_settings(s, g, int(mask_id), model.cfg.family)
                          for g in s.gen_lengths}  # all checked first
    sampled_by_length = {}
    if s.samples:  # pass@k: the accuracy pass is greedy, the samples are drawn at --temperature
        sampled_by_length = settings_by_length
        settings_by_length = {g: dataclasses.replace(v, temperature=0.0) for g, v in sampled_by_length.items()}
    stack.enter_context(RunLock(s.out_dir, log, fix="or use another --out"))  # before anything is written there
    _check_meta(s)
    graphdef, params = models.split(model)
    # the user message, and the whole prompt text as it is tokenized: a paper's message through the chat
    # template, then its prefill; ours with the recipe's system message (chat) or bare (plain)
    if protocol.user_message is not None:
        texts = [protocol.user_message(s.task, r) for r in records]
        rendered = [protocol.render(tokenizer, r) for r in records]
    else:
        texts = [task.prompt_text(r) for r in records]
        rendered = [tokenizer.chat_prompt(t, task.system) if s.prompt_style == "chat" else t for t in texts]
    positions = setup.max_positions(s.model)
    if positions <= max(s.gen_lengths):
        raise EvalError(f"--gen-lengths {max(s.gen_lengths)} leaves no room for a prompt in the {positions} "
                        "positions the model holds; lower it")
    source = s.data or f"the {s.task} generator"
    length = setup.prompt_length(tokenizer, rendered, "plain", 0, limit=positions - max(s.gen_lengths),
                                 where=lambda i: f"{source} row {file_rows[i] + 1}",
                                 fix=f"shorten or drop that record (the model holds {positions} positions, "
                                     f"--gen-lengths up to {max(s.gen_lengths)} of them for the completion)")

    special = protocol.add_special_tokens
    if special:  # the tokenizer's own additions (a BOS, for some) count toward the fixed width too
        length = max(length, max(len(tokenizer.encode(t, add_special_tokens=True)) for t in rendered))

    def encode(rows):
        ids, mask = encode_rendered(tokenizer, [rendered[i] for i in rows], length=length,
                                    attend_pads=s.attend_pads, add_special_tokens=special)
        return jnp.asarray(ids), jnp.asarray(mask)

    summary = []
    for g, settings in settings_by_length.items():
        path = os.path.join(s.out_dir, f"eval_{s.task}_{g}.jsonl")
        done = _done_rows(path)
        batch_size = s.batch_size or protocol.batch_size_for(g)
        if s.attend_pads:  # which rows share a batch decides its pad width: the official grouping
            groups = [group for group in eval_protocol.official_batches(len(records), s.world_size, batch_size)
                      if any(i not in done for i in group)]
        else:
            todo = [i for i in range(len(records)) if i not in done]
            groups = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
        if done:
            log(f"[dlrl-jax] eval {s.task} @ {g}: resuming, {len(done)} of {len(records)} already done")
        bar = tqdm(total=len(records), initial=len(done), desc=f"eval {s.task} @ {g}", disable=not s.progress,
                   dynamic_ncols=True)
        with open(path, "a", encoding="utf-8") as out:
            if stop is not None:
                stop.defer()

            def check_stop():
                if stop is not None and stop.set:
                    raise Preempted(f"stopped by SIGTERM with {len(done)} of {len(records)} examples at gen length "
                                    f"{g} written to {path}; run the same command again to continue")

            def generate(ids, mask, key):
                return rollout.generate(graphdef, params, ids, mask, key, settings)

            def decode(ids):  # the reward's text and the official parsers' text of each completion
                return list(zip(completion_texts(tokenizer, np.asarray(ids), s.decode),
                                eval_protocol.parser_text(tokenizer, ids)))

            for group in groups:
                for index, decoded in completions_in_batches(
                        group, batch_size, encode, generate, decode,
                        key_for=lambda first: jax.random.fold_in(jax.random.key(s.seed), first),  # resume-invariant
                        before_batch=check_stop):
                    keep = [k for k, i in enumerate(index) if i not in done]
                    index = [index[k] for k in keep]
                    completions = [decoded[k][0] for k in keep]
                    raw = [decoded[k][1] for k in keep]
                    chunk = [records[i] for i in index]
                    reward = task.score(completions, chunk)
                    correct, total = _correct(s, protocol, task, completions, raw, chunk)
                    for i, c, rc, r, ok, n in zip(index, completions, raw, reward, correct, total):
                        record = records[i]
                        row = {"index": i, "prompt": texts[i], "completion": c, "raw_completion": rc,
                               "extracted": tasks.extracted_answer(
                                   s.task, c if s.prompt_style == "chat" else f"<answer>{c.strip()}</answer>",
                                   s.reward_set),
                               "reward": float(r), "correct": ok, "total": n,
                               "record": record,  # the ground truth, for `dlrl-jax rescore`
                               "question": eval_prompts.question_text(s.task, record),
                               "ground_truth": eval_protocol.ground_truth(s.task, record)}
                        if protocol.user_message is not None:
                            row["prompt_input"] = rendered[i]
                            row["test_row"] = file_rows[i]
                        done[i] = row
                        out.write(json.dumps(row) + "\n")
                    out.flush()
                    os.fsync(out.fileno())
                    bar.update(len(index))
        bar.close()
        rows = [done[i] for i in range(len(records))]
        correct, total = sum(r["correct"] for r in rows), sum(r.get("total", 1) for r in rows)
        summary.append({"gen_length": g, "steps": settings.steps,
                        "block_length": settings.block_length if settings.schedule == "blocks" else "none (dream)",
                        "examples": len(rows), "reward": float(np.mean([r["reward"] for r in rows])),
                        "protocol": s.protocol, "correct": correct, "total": total,
                        "accuracy": float(correct / total) if total else 0.0})
        if s.samples:
            summary[-1].update(_sampled_pass(
                s, os.path.join(s.out_dir, f"samples_{s.task}_{g}.jsonl"), records, encode,
                lambda ids, mask, key, st=sampled_by_length[g]: rollout.generate(graphdef, params, ids, mask, key, st),
                decode, lambda c, raw, chunk: (task.score(c, chunk), *_correct(s, protocol, task, c, raw, chunk)),
                batch_size, check_stop, log))
    with open(os.path.join(s.out_dir, "eval_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def encode_rendered(tokenizer: Tokenizer, texts: list[str], *, length: int, attend_pads: bool,
                    add_special_tokens: bool) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded ids and attention mask of whole prompt texts. Attended pads: the official batch,
    padded to its own longest prompt and attended (the model called without a mask: every position
    counts, so positions run from the first pad); else the fixed width `length` with the pads masked."""
    if attend_pads:
        ids, mask = tokenizer.encode_batch(texts, chat=False, add_special_tokens=add_special_tokens)
        return ids, np.ones(mask.shape, bool)
    return tokenizer.encode_batch(texts, chat=False, length=length, add_special_tokens=add_special_tokens)


def _correct(s: EvalSettings, protocol, task, completions, raw, records) -> tuple[list, list]:
    """(correct, total) per example: under a paper's protocol its parser on the text it reads (the
    raw text, special tokens kept, for every paper) -- Sudoku: correct and blank cells, summed over the
    set as the papers sum them; ours otherwise (the reward set's correctness term, Sudoku's fraction of
    blanks, total 1)."""
    if protocol.parser is None:
        return [float(x) for x in task.correct(completions, records)], [1] * len(records)
    texts = raw if protocol.keep_special_tokens else completions
    scored = parsers.score_many(protocol.parser, s.task, texts, records)  # (code: one sandbox batch)
    return [c for c, _ in scored], [n for _, n in scored]


def _sampled_pass(s: EvalSettings, path: str, records: list[dict], encode, generate, decode, score,
                  batch_size: int, check_stop, log) -> dict:
    """`s.samples` completions per example at `s.temperature`, written to `path` (index, sample,
    completion, reward, correct, total; resumable as the greedy rows are), and their pass@k: a sample
    counts as correct when it is wholly right (correct == total: a Sudoku grid solved whole). `decode`
    gives (reward text, parser text) pairs, `score(texts, parser texts, records)` (rewards, correct,
    total) as the greedy pass scores. Each batch's key is fold_in(fold_in(key(seed), SAMPLES_STREAM),
    its first (example, sample) position)."""
    n = s.samples
    done = _done_rows(path, key=lambda row: row["index"] * n + row["sample"])
    todo = [r for r in range(len(records) * n) if r not in done]  # an example's samples next to each other
    if done:
        log(f"[dlrl-jax] samples: resuming, {len(done)} of {len(records) * n} already drawn")
    key = jax.random.fold_in(jax.random.key(s.seed), SAMPLES_STREAM)
    with open(path, "a", encoding="utf-8") as out:
        for index, decoded in completions_in_batches(
                todo, batch_size, lambda rows: encode([r // n for r in rows]), generate, decode,
                key_for=lambda first: jax.random.fold_in(key, first), before_batch=check_stop):
            chunk = [records[r // n] for r in index]
            completions, raw = [d[0] for d in decoded], [d[1] for d in decoded]
            for r, c, reward, ok, total in zip(index, completions, *score(completions, raw, chunk)):
                done[r] = {"index": r // n, "sample": r % n, "completion": c, "reward": float(reward),
                           "correct": float(ok), "total": total}
                out.write(json.dumps(done[r]) + "\n")
            out.flush()
            os.fsync(out.fileno())
    right = np.zeros(len(records), np.int64)
    for row in done.values():
        right[row["index"]] += row["correct"] >= row["total"] - 1e-6 and row["total"] > 0
    return {"samples": n, "temperature": s.temperature, **mean_pass_at_k(right, n)}


def format_table(task: str, summary: list[dict]) -> str:
    passes = [k for k in summary[0] if k.startswith("pass@")] if summary else []
    lines = [f"| {task} | steps | block | examples | mean reward | accuracy |" + "".join(f" {k} |" for k in passes),
             "|---|---|---|---|---|---|" + "---|" * len(passes)]
    for r in summary:
        lines.append(f"| gen {r['gen_length']} | {r['steps']} | {r['block_length']} | {r['examples']} | "
                     f"{r['reward']:.3f} | {100 * r['accuracy']:.1f}% |" + "".join(f" {100 * r[k]:.1f}% |" for k in passes))
    return "\n".join(lines)
