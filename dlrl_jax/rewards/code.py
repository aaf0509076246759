"""Code reward (MBPP / HumanEval style): the fraction of the example's test statements that pass when
run against the completion's code in the sandbox, plus 0.5 x a format score (1.0 for a ```python
block inside <answer>...</answer>, 0.5 for a code block without tags, 0 for none).
`correctness_only` gives 1.0 only when every test passes (ESPO's pass/fail).

Each test runs in `dlrl_jax.rewards.sandbox.run_tests_many`: the completion's code in one sandbox, the
test statement in another that only ever sees plain values from it, so the verdict cannot be forged
(printing, exiting early, patching builtins or a rigged `__eq__` fail the test). `sandbox` picks the
isolation mode (task.code_sandbox: "namespaces", or the weaker "rlimits").
"""

from __future__ import annotations

import re

from dlrl_jax.rewards.sandbox import Limits, run_tests_many

_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
LIMITS = Limits(wall_seconds=5.0, cpu_seconds=5, memory_bytes=512 * 2**20)


def extract_code(completion: str) -> tuple[str | None, float]:
    """(code of the last python block, format score)."""
    answers = _ANSWER.findall(completion)
    if answers:
        blocks = _BLOCK.findall(answers[-1])
        if blocks:
            return blocks[-1], 1.0
    blocks = _BLOCK.findall(completion)
    return (blocks[-1], 0.5) if blocks else (None, 0.0)


def code_rewards(completions: list[str], examples: list[dict], correctness_only: bool = False,
                 limits: Limits = LIMITS, sandbox: str = "namespaces") -> list[float]:
    """Rewards for a batch: all tests of all completions run in parallel."""
    extracted = [extract_code(c) for c in completions]
    jobs = [(code, example["tests"]) for (code, _), example in zip(extracted, examples) if code is not None]
    verdicts = iter(run_tests_many(jobs, limits, mode=sandbox))
    passed = [sum(next(verdicts)) if code is not None else 0 for code, _ in extracted]
    out = []
    for (code, fmt), example, n in zip(extracted, examples, passed):
        fraction = n / len(example["tests"])
        out.append(float(fraction == 1.0) if correctness_only else fraction + 0.5 * fmt)
    return out


def validate_example(example: dict, index: int) -> None:
    tests = example.get("tests")
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        raise ValueError(f"examples[{index}]['tests'] must be a non-empty list of test statements (strings), "
                         f"got {tests!r}")
