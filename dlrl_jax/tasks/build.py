"""A task as a run sees it (`Task`): its records, prompt text, SFT target text and reward, built from
the config (`build_task`) or from records in hand (`make_task`).

Records come from the task's generator (sudoku, countdown: no download) or from `task.train_file` /
`task.eval_file` (JSONL, JSON, CSV, Parquet or `hf:NAME[:CONFIG]:SPLIT`), read by
`dlrl_jax.data.readers` into the task's schema (`TaskSpec.normalize`).

`plain` prompts (tiny models) give the bare puzzle and take the whole completion as the answer;
`chat` prompts are the papers' chat-templated <reasoning>/<answer> format, in the wording of
`task.prompt_recipe`. `task.reward_set` picks whose reward functions score completions.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from dlrl_jax.config_error import ConfigError
from dlrl_jax.data import readers, sudoku_teacher
from dlrl_jax.tasks import prompts, scoring
from dlrl_jax.tasks.spec import UnknownTask, get, names


@dataclasses.dataclass
class Task:
    name: str
    style: str
    train: list[dict]
    eval: list[dict]
    prompt_text: Callable[[dict], str]
    target_text: Callable[[dict], str | None]
    reward_set: str = "dlrl"
    system: str | None = None     # the recipe's system message (ESPO code), the same for every prompt
    code_sandbox: str = "namespaces"  # task.code_sandbox: how the code reward isolates model-written code

    def _as_answers(self, completions: list[str]) -> list[str]:
        """Plain completions are the answer itself, so they are scored as one."""
        return [f"<answer>{c.strip()}</answer>" for c in completions] if self.style == "plain" else completions

    def score(self, completions: list[str], records: list[dict]) -> np.ndarray:
        """Rewards [N] float32 under the task's reward set."""
        options = {"sandbox": self.code_sandbox} if get(self.name).uses_sandbox else {}
        return scoring.score(self.name, self._as_answers(completions), records, reward_set=self.reward_set,
                             **options)

    def correct(self, completions: list[str], records: list[dict]) -> np.ndarray:
        """Per-example accuracy as the papers report it: the fraction of blank cells filled correctly
        for Sudoku, and 1/0 correctness for the others (the reward set's correctness term)."""
        options = {"sandbox": self.code_sandbox} if get(self.name).uses_sandbox else {}
        return scoring.accuracy(self.name, self._as_answers(completions), records, reward_set=self.reward_set,
                                **options)


def target_text(task: str, record: dict, style: str) -> str | None:
    """The SFT target for `record`, or None when the record carries no worked solution."""
    spec = get(task)
    answer = spec.sft_answer(record)
    if answer is None:
        return None
    if style == "plain":
        return answer
    return f"<reasoning>\n{spec.sft_reasoning(record)}\n</reasoning>\n<answer>\n{answer}\n</answer>\n"


def make_task(name: str, style: str, train: list[dict], evaluation: list[dict], reward_set: str = "dlrl",
              prompt_recipe: str = "dlrl", code_sandbox: str = "namespaces") -> Task:
    try:
        spec = get(name)
    except UnknownTask as e:
        raise ConfigError(str(e)) from None
    if style == "plain" and spec.plain_prompt is None:
        plain = " and ".join(n for n in names() if get(n).plain_prompt is not None)
        raise ConfigError(f"task.prompt_style 'plain' exists for {plain}; use 'chat' for {name}")
    if reward_set not in scoring.REWARD_SETS:
        raise ConfigError(f"task.reward_set {reward_set!r} is unknown; use one of {', '.join(scoring.REWARD_SETS)}")
    if prompt_recipe not in prompts.PROMPT_RECIPES:
        raise ConfigError(f"task.prompt_recipe {prompt_recipe!r} is unknown; use one of "
                          f"{', '.join(prompts.PROMPT_RECIPES)}")
    if prompt_recipe != "dlrl" and style != "chat":
        raise ConfigError(f"task.prompt_recipe {prompt_recipe!r} is a chat prompt; set task.prompt_style=chat")
    if spec.uses_sandbox:  # refuse at start-up, in one line, where the sandbox cannot run here
        from dlrl_jax.rewards.sandbox import SandboxUnavailable, check_available
        try:
            check_available(code_sandbox)
        except (SandboxUnavailable, ValueError) as e:
            raise ConfigError(f"task.code_sandbox={code_sandbox}: {e}") from None
    try:
        system = prompts.system_text(name, prompt_recipe)
    except ValueError as e:
        raise ConfigError(f"task.prompt_recipe: {e}") from None
    return Task(name, style, train, evaluation, lambda r: prompts.prompt_text(name, r, style, prompt_recipe),
                lambda r: target_text(name, r, style), reward_set, system, code_sandbox)


GENERATED_MAX = 10_000_000  # about 5 GB of Python records and minutes of generating


def build_task(t, seed: int) -> Task:
    """The task of the config's `task:` section `t` (a dlrl_jax.config.TaskSection) and the run's seed,
    which draws the generated records, the held-out split and the mixed teacher's puzzles."""
    make_task(t.name, t.prompt_style, [], [], t.reward_set, t.prompt_recipe, t.code_sandbox)  # the checks, before any data is read
    if t.train_file:
        train = _read(t.train_file, t.name, "task.train_file")
        if t.eval_file:
            evaluation = _read(t.eval_file, t.name, "task.eval_file")
        else:  # hold out the first eval_size distinct prompts of a shuffled copy
            shuffled = [train[i] for i in np.random.default_rng(seed).permutation(len(train))]
            evaluation, train = _split_unique(shuffled, t.eval_size, t.name)
    elif get(t.name).generate_training is not None:
        if t.eval_file:
            raise ConfigError("task.eval_file without task.train_file: set both, or neither to use the generator")
        if t.train_size + t.eval_size > GENERATED_MAX:  # all are made in memory, one Python dict each
            raise ConfigError(f"task.train_size + task.eval_size is {t.train_size + t.eval_size}; the {t.name} "
                              f"generator makes at most {GENERATED_MAX} records (all in memory): lower them")
        records = get(t.name).generate_training(seed, t.train_size + t.eval_size, t)
        evaluation, train = _split_unique(records, t.eval_size, t.name)
    else:
        raise ConfigError(f"task {t.name!r} has no generator: set task.train_file to a JSONL/Parquet file or "
                          f"a hub name such as hf:openai/gsm8k:main:train (shipped example: "
                          f"{readers.packaged_file('gsm8k_mini.jsonl')})")
    if not train:
        raise ConfigError(f"no training records left after holding out task.eval_size={t.eval_size}; "
                          "lower it or give task.eval_file")
    train = train[:t.train_size]
    if sft_teacher(t) == "mixed":
        train = with_heuristic_targets(train, seed, t.heuristic_fraction)
    return make_task(t.name, t.prompt_style, train, evaluation[:t.eval_size], t.reward_set,
                     t.prompt_recipe, t.code_sandbox)


def sft_teacher(t) -> str:
    """task.sft_teacher with "auto" resolved: the mixed teacher for the generated Sudoku (the demo's warm
    start with room for RL), the solution for every other task and for Sudoku read from a file (the
    papers' data: their SFT, where there is one, learns the answers)."""
    if t.sft_teacher != "auto":
        return t.sft_teacher
    return "mixed" if t.name == "sudoku" and t.train_file is None else "solution"


def with_heuristic_targets(train: list[dict], seed: int, fraction: float) -> list[dict]:
    """task.sft_teacher=mixed (Sudoku): the records of `heuristic_indices(seed, len(train), fraction)`
    carry "teacher_target", the row-order heuristic's grid, which the Sudoku task's SFT target prefers
    over the solution; the other records, and every record's puzzle and solution (so its reward), are
    unchanged."""
    chosen = set(sudoku_teacher.heuristic_indices(seed, len(train), fraction).tolist())
    return [dict(r, teacher_target=sudoku_teacher.row_order_fill(r["puzzle"])) if i in chosen else r
            for i, r in enumerate(train)]


def _read(path: str, task: str, field: str) -> list[dict]:
    try:
        return read_records(path, task)
    except readers.DataError as e:
        raise ConfigError(f"{field}: {e}") from None


def read_records(source: str, task: str) -> list[dict]:
    """Every record of `source` (a file or `hf:` name) in `task`'s schema, in file order; a row that fits
    none of the task's layouts is a DataError naming the file and row."""
    if task not in names():
        raise readers.DataError(f"unknown task {task!r}; known: {', '.join(names())}")
    normalize = get(task).normalize
    out = []
    for i, row in enumerate(readers.read_rows(source)):
        where = f"{source} row {i + 1}"
        if not isinstance(row, dict):
            raise readers.DataError(f"{where}: a record must be an object with named fields, got {type(row).__name__}")
        out.append(normalize(row, where))
    return out


def _split_unique(records: list[dict], eval_size: int, task: str):
    """(held-out, train): held-out prompts never appear in the training split."""
    key = get(task).record_key
    evaluation, seen = [], set()
    for r in records[:eval_size]:
        if key(r) not in seen:
            seen.add(key(r))
            evaluation.append(r)
    train = [r for r in records[eval_size:] if key(r) not in seen]
    return evaluation, train
