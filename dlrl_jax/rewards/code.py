"""Code reward (MBPP / HumanEval style): the fraction of the example's test statements that pass when
run against the completion's code in the sandbox, plus 0.5 x a format score (1.0 for a ```python
block inside <answer>...</answer>, 0.5 for a code block without tags, 0 for none).
`correctness_only` gives 1.0 only when every test passes (ESPO's pass/fail).

Each test runs in its own sandboxed process: a runner reads a random token from stdin (before the
solution is imported, so the solution cannot read it), imports the solution, runs the one test, and
prints the token. A test passes only if that token comes back; exiting early with status 0 does not
count. A solution that inspects the runner's frames could still find the token: the sandbox keeps
such code away from the trainer, not from the reward.
"""

from __future__ import annotations

import re
import secrets

from dlrl_jax.rewards.sandbox import Limits, run_many

_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# `python -I` leaves the script's directory off sys.path, hence the explicit insert.
_RUNNER = ("import os, sys\ntoken = sys.stdin.readline().strip()\nsys.path.insert(0, os.getcwd())\n"
           "from solution import *\n{test}\nprint(token)\n")
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
                 limits: Limits = LIMITS) -> list[float]:
    """Rewards for a batch: all test processes of all completions run in parallel."""
    jobs, owners, tokens = [], [], []
    extracted = [extract_code(c) for c in completions]
    for i, ((code, _), example) in enumerate(zip(extracted, examples)):
        if code is None:
            continue
        for test in example["tests"]:
            token = secrets.token_hex(16)
            jobs.append({"source": _RUNNER.format(test=test), "stdin": token + "\n", "limits": limits,
                         "files": {"solution.py": code}})
            owners.append(i)
            tokens.append(token)
    passed = [0] * len(completions)
    for owner, token, result in zip(owners, tokens, run_many(jobs)):
        if not result.timed_out and result.returncode == 0 and result.stdout.strip().endswith(token):
            passed[owner] += 1
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
