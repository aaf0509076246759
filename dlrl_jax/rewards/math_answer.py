"""MATH rewards decided by the math-verify package.

`math_reward` (reward set "dlrl", this project's earlier rule): 2.0 if the last \\boxed{...} of the
completion is mathematically equivalent to the reference, plus 0.5 x a format score: 1.0 when an
<answer>...</answer> holds the \\boxed{} answer, 0.5 when only one of the two is present, 0 otherwise.
`correctness_only` gives 1/0.

`espo_math_reward` (reward set "espo": ESPO's espo/rewards.py `correctness_reward_func_math`): 1.0 if
`verify(parse(completion), parse(reference))` holds, parse reading the whole completion with
math-verify's default extraction, and the reference being the text ESPO stores (MATH's worked
solution; a record's bare answer where it has none). The argument order is ESPO's (the completion
in verify's `gold` place).
(Reward set "d1" grades MATH by string normalisation instead: `math_strings`.)"""

from __future__ import annotations

import re

from math_verify import parse, verify

from dlrl_jax.rewards.math_strings import reference_text

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def last_boxed(text: str) -> str | None:
    """Contents of the last \\boxed{...}, nested braces included; None if absent or unclosed."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
    return None


def equivalent(candidate: str, reference: str) -> bool:
    try:
        return bool(verify(parse(f"${reference}$"), parse(f"${candidate}$")))
    except Exception:  # math-verify raises on some malformed LaTeX; malformed is simply not equivalent
        return False


def math_reward(completion: str, example: dict, correctness_only: bool = False) -> float:
    boxed = last_boxed(completion)
    correct = boxed is not None and equivalent(boxed, str(example["answer"]))
    if correctness_only:
        return 1.0 if correct else 0.0
    tags = _ANSWER.findall(completion)
    in_tags = bool(tags) and last_boxed(tags[-1]) is not None
    format_score = 1.0 if in_tags else 0.5 if (tags or boxed is not None) else 0.0
    return (2.0 if correct else 0.0) + 0.5 * format_score


def espo_math_reward(completion: str, example: dict) -> float:
    try:
        return 1.0 if verify(parse(completion), parse(reference_text(example))) else 0.0
    except Exception:  # malformed LaTeX that math-verify cannot handle is simply not a match
        return 0.0


def validate_example(example: dict, index: int) -> None:
    if not isinstance(example.get("answer"), (str, int, float)) or isinstance(example.get("answer"), bool):
        raise ValueError(f"examples[{index}]['answer'] must be the reference answer (LaTeX string or number), "
                         f"got {example.get('answer')!r}")
