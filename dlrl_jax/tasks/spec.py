"""`TaskSpec`, what one task is, and the registry of tasks by name (`register`, `get`, `names`)."""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, NamedTuple, Sequence

# A batched reward: (completions, records, **options) -> one float per completion. The options are
# the sandbox settings, which only a task with `uses_sandbox` reads.
BatchReward = Callable[..., Sequence[float]]


class RewardPair(NamedTuple):
    reward: BatchReward    # what RL optimises
    accuracy: BatchReward  # what the papers report: 1/0 correctness (Sudoku: the fraction of blanks)


def per_completion(fn: Callable[[str, dict], float]) -> BatchReward:
    """A reward of one (completion, record) as a batched one."""
    def batched(completions: Sequence[str], records: Sequence[dict], **_options) -> list[float]:
        return [fn(c, r) for c, r in zip(completions, records)]
    return batched


def pair(reward: Callable[[str, dict], float], accuracy: Callable[[str, dict], float]) -> RewardPair:
    return RewardPair(per_completion(reward), per_completion(accuracy))


def prompt_fields_key(record: dict) -> str:
    """Two records with the same key are the same prompt: every field but the worked solution."""
    return repr(sorted((k, str(v)) for k, v in record.items() if k != "solution"))


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Everything the library asks of one task. Records are plain dicts in the task's schema (the
    module docstring of each task lists its fields)."""

    name: str
    # a source row (any layout the task reads) -> the task's record; `where` ("FILE row n") names it in
    # the DataError it raises
    normalize: Callable[[dict, str], dict]
    # raises ValueError naming examples[index] and the field when a record cannot be scored
    validate: Callable[[dict, int], None]
    # this project's ("dlrl") chat question for a record, before the format instruction
    question: Callable[[dict], str]
    # the record's values for the papers' prompt templates (`tasks.recipe_prompts`)
    recipe_fields: Callable[[dict], dict]
    # the answer part of the SFT target, None when the record carries no worked solution
    sft_answer: Callable[[dict], str | None]
    # reward set name ("dlrl", "d1", "espo") -> (reward, accuracy)
    reward_sets: Mapping[str, RewardPair]
    # (completion, reward set) -> what that set's reward reads from the completion, or None
    extract_answer: Callable[[str, str], str | None]
    # the bare puzzle as the prompt (tiny models answer with the solution alone); None: chat prompts only
    plain_prompt: Callable[[dict], str] | None = None
    # the reasoning part of a chat SFT target ("" where the record has none)
    sft_reasoning: Callable[[dict], str] = lambda record: ""
    # (seed, n) -> n records at the papers' test difficulty (`dlrl-jax eval` without --data); None: files only
    generate: Callable[[int, int], list[dict]] | None = None
    # (seed, n, task config section) -> the training pool the held-out split is cut from
    generate_training: Callable[[int, int, object], list[dict]] | None = None
    # records with equal keys are one prompt: a held-out prompt never appears in training
    record_key: Callable[[dict], str] = prompt_fields_key
    # the reward runs model-written code: it takes the sandbox options, checked before a run starts
    uses_sandbox: bool = False


_REGISTRY: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    """Adds `spec` under `spec.name`; a second task of the same name is an error."""
    if spec.name in _REGISTRY:
        raise ValueError(f"task {spec.name!r} is registered twice; give the new task another name")
    _REGISTRY[spec.name] = spec
    return spec


def names() -> tuple[str, ...]:
    """The registered task names, in registration order."""
    return tuple(_REGISTRY)


def get(name: str, field: str = "task.name") -> TaskSpec:
    """The task called `name`; an unknown name is a KeyError naming `field` and the valid choices."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownTask(f"{field} {name!r} is unknown; use one of {', '.join(_REGISTRY)}") from None


class UnknownTask(KeyError, ValueError):
    """No task of that name. A KeyError (a lookup) and a ValueError (bad input), with a readable message."""

    def __str__(self) -> str:
        return str(self.args[0])
