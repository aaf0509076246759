"""A task as the training loop sees it: records, prompt text, SFT target text and the reward.

`plain` prompts (the embedded tiny task) give the bare puzzle as the prompt and take the whole
completion as the answer; `chat` prompts use the papers' chat-templated <reasoning>/<answer> format.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from dlrl_jax import data, rewards
from dlrl_jax.config import Config, ConfigError


@dataclasses.dataclass
class Task:
    name: str
    style: str
    train: list[dict]
    eval: list[dict]
    prompt_text: Callable[[dict], str]
    target_text: Callable[[dict], str] | None

    def score(self, completions: list[str], records: list[dict]) -> np.ndarray:
        """Rewards [N] float32; plain completions are the answer itself, so they are scored as one."""
        if self.style == "plain":
            completions = [f"<answer>{c.strip()}</answer>" for c in completions]
        return np.asarray(rewards.score(self.name, completions, records), np.float32)


def build_task(cfg: Config) -> Task:
    t = cfg.task
    if t.name != "sudoku" or t.train_file or t.eval_file:
        raise ConfigError(f"task {t.name!r} from {t.train_file or 'the generator'}: this version trains on the "
                          "generated sudoku task only (task.name: sudoku, no task.train_file)")
    records = _generate_sudoku(cfg.seed, t.train_size + t.eval_size, t.min_blanks, t.max_blanks)
    train, evaluation = _split_unique(records, t.eval_size)
    train, evaluation = train[:t.train_size], evaluation[:t.eval_size]
    if t.prompt_style == "plain":
        return Task(t.name, "plain", train, evaluation, lambda r: r["puzzle"], lambda r: r["solution"])
    raise ConfigError("task.prompt_style 'chat' needs the papers' prompt templates, not in this version; use 'plain'")


def _generate_sudoku(seed, n, min_blanks, max_blanks):
    rng = np.random.default_rng(seed)
    blanks = rng.integers(min_blanks, max_blanks + 1, n)
    out = []
    for b in np.unique(blanks):
        out += data.generate_sudoku(int(rng.integers(2**31)), int((blanks == b).sum()), int(b))
    return [out[i] for i in rng.permutation(len(out))]


def _split_unique(records, eval_size):
    """Held-out puzzles that never appear in the training split."""
    evaluation, seen = [], set()
    for r in records[:eval_size]:
        if r["puzzle"] not in seen:
            seen.add(r["puzzle"])
            evaluation.append(r)
    train = [r for r in records[eval_size:] if r["puzzle"] not in seen]
    return train, evaluation
