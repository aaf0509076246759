"""A task as the training loop sees it: records, prompt text, SFT target text and the reward.

Records come from the procedural generators (sudoku, countdown: no download) or from
`task.train_file` / `task.eval_file` (JSONL, JSON, CSV, Parquet or `hf:NAME[:CONFIG]:SPLIT`), read into
the task's schema by `dlrl_jax.data.readers`.

`plain` prompts (tiny models) give the bare puzzle and take the whole completion as the answer;
`chat` prompts are the papers' chat-templated <reasoning>/<answer> format, in the wording of
`task.prompt_recipe`. `task.reward_set` picks whose reward functions score completions.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from dlrl_jax import data, rewards
from dlrl_jax.config import Config, ConfigError
from dlrl_jax.data import prompts, readers


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
        options = {"sandbox": self.code_sandbox} if self.name == "code" else {}
        return rewards.score(self.name, self._as_answers(completions), records, reward_set=self.reward_set,
                             **options)

    def correct(self, completions: list[str], records: list[dict]) -> np.ndarray:
        """Per-example accuracy as the papers report it: the fraction of blank cells filled correctly
        for Sudoku, and 1/0 correctness for the others (the reward set's correctness term)."""
        options = {"sandbox": self.code_sandbox} if self.name == "code" else {}
        return rewards.accuracy(self.name, self._as_answers(completions), records, reward_set=self.reward_set,
                                **options)


def target_text(task: str, record: dict, style: str) -> str | None:
    """The SFT target for `record`, or None when the record carries no worked solution."""
    answer = {"sudoku": record.get("solution"), "countdown": record.get("solution"),
              "gsm8k": record.get("answer"), "math": record.get("answer") and f"\\boxed{{{record.get('answer')}}}",
              "code": record.get("solution") and f"```python\n{record.get('solution')}\n```"}[task]
    if answer is None:
        return None
    if style == "plain":
        return answer
    reasoning = record.get("solution") if task in ("gsm8k", "math") and record.get("solution") else ""
    return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{answer}\n</answer>\n"


def make_task(name: str, style: str, train: list[dict], evaluation: list[dict], reward_set: str = "dlrl",
              prompt_recipe: str = "dlrl", code_sandbox: str = "namespaces") -> Task:
    if style == "plain" and name not in ("sudoku", "countdown"):
        raise ConfigError(f"task.prompt_style 'plain' exists for sudoku and countdown; use 'chat' for {name}")
    if reward_set not in rewards.REWARD_SETS:
        raise ConfigError(f"task.reward_set {reward_set!r} is unknown; use one of {', '.join(rewards.REWARD_SETS)}")
    if prompt_recipe not in prompts.PROMPT_RECIPES:
        raise ConfigError(f"task.prompt_recipe {prompt_recipe!r} is unknown; use one of "
                          f"{', '.join(prompts.PROMPT_RECIPES)}")
    if prompt_recipe != "dlrl" and style != "chat":
        raise ConfigError(f"task.prompt_recipe {prompt_recipe!r} is a chat prompt; set task.prompt_style=chat")
    if name == "code":  # refuse at start-up, in one line, where the sandbox cannot run here
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


def build_task(cfg: Config) -> Task:
    t = cfg.task
    make_task(t.name, t.prompt_style, [], [], t.reward_set, t.prompt_recipe, t.code_sandbox)  # the checks, before any data is read
    if t.train_file:
        train = _read(t.train_file, t.name, "task.train_file")
        if t.eval_file:
            evaluation = _read(t.eval_file, t.name, "task.eval_file")
        else:  # hold out the first eval_size distinct prompts of a shuffled copy
            shuffled = [train[i] for i in np.random.default_rng(cfg.seed).permutation(len(train))]
            evaluation, train = _split_unique(shuffled, t.eval_size, t.name)
    elif t.name in ("sudoku", "countdown"):
        if t.eval_file:
            raise ConfigError("task.eval_file without task.train_file: set both, or neither to use the generator")
        records = _generate(t.name, cfg.seed, t.train_size + t.eval_size, t.min_blanks, t.max_blanks)
        evaluation, train = _split_unique(records, t.eval_size, t.name)
    else:
        raise ConfigError(f"task {t.name!r} has no generator: set task.train_file to a JSONL/Parquet file or "
                          f"a hub name such as hf:openai/gsm8k:main:train (shipped example: "
                          f"{readers.packaged_file('gsm8k_mini.jsonl')})")
    if not train:
        raise ConfigError(f"no training records left after holding out task.eval_size={t.eval_size}; "
                          "lower it or give task.eval_file")
    return make_task(t.name, t.prompt_style, train[:t.train_size], evaluation[:t.eval_size], t.reward_set,
                     t.prompt_recipe, t.code_sandbox)


def _read(path: str, task: str, field: str) -> list[dict]:
    try:
        return readers.read_records(path, task)
    except readers.DataError as e:
        raise ConfigError(f"{field}: {e}") from None


def _generate(task: str, seed: int, n: int, min_blanks: int, max_blanks: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    if task == "countdown":
        return data.generate_countdown(int(rng.integers(2**31)), n, num_numbers=3)
    blanks = rng.integers(min_blanks, max_blanks + 1, n)
    out = []
    for b in np.unique(blanks):
        out += data.generate_sudoku(int(rng.integers(2**31)), int((blanks == b).sum()), int(b))
    return [out[i] for i in rng.permutation(len(out))]


def _key(task: str, record: dict) -> str:
    return record["puzzle"] if task == "sudoku" else repr(sorted((k, str(v)) for k, v in record.items()
                                                                if k != "solution"))


def _split_unique(records: list[dict], eval_size: int, task: str):
    """(held-out, train): held-out prompts never appear in the training split."""
    evaluation, seen = [], set()
    for r in records[:eval_size]:
        if _key(task, r) not in seen:
            seen.add(_key(task, r))
            evaluation.append(r)
    train = [r for r in records[eval_size:] if _key(task, r) not in seen]
    return evaluation, train
