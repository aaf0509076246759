"""Code rewards: the fraction of an example's tests that pass against the completion's code in the
sandbox, plus format terms that differ by reward set.

"dlrl" (this project's earlier rule): the last ```python (or ```py) block, preferring one inside the
  last <answer>; reward = fraction passed + 0.5 x format (1.0 block inside <answer>, 0.5 block
  without tags, 0 none: nothing runs). `correctness_only`: 1.0 when every test passes.
"d1" (EGSPO's code reward, egspo/reward_func.py `coding_reward_func`, summed with
  `xmlcount_reward_func` as egspo/egspo_train.py lists them for code): the FIRST "```python\\n" block;
  + 0.5 if "```python\\n<that code>```" lies inside the first <answer>...</answer>;
  + the GSM8K xml count of the whole completion;
  + the fraction of the test functions that pass, where, as the official code does: the function
    the tests want is named by "from solution import NAME" or else the first "assert NAME(" (with
    neither, the tests and the 0.5 are dropped); the completion's first `def` is renamed to it;
    code holding one of the blocked substrings (" os", " sys", " subprocess", ...) is not run; the
    tests are the `def NAME():` functions of the test text (the record's tests joined by newlines:
    KodCode's one test module), or, with at most one such function, each "assert" line on its own;
    the program is the test text with its import line replaced by the solution (so a split test
    text, which has lost that line, runs without the solution and fails, as in the official code),
    or solution + tests when the name came from an assert.
"espo" (ESPO's espo/rewards.py: `code_format_reward` + `code_reward`): format 1.0 if the whole
  completion is text without ``` and then one ```python block ending the completion (one optional
  newline after it), and the stripped code parses (`ast.parse`); 0.5 if it does not parse; 0 for any
  other layout. Plus the fraction of the example's tests that pass, only when the format is 1.0.

Each test runs in `dlrl_jax.rewards.sandbox.run_tests_many`: the completion's code in one sandbox, the
test statement in another that only ever sees plain values from it, so the verdict cannot be forged
(printing, exiting early, patching builtins or a rigged `__eq__` fail the test). `sandbox` picks the
isolation mode (task.code_sandbox: "namespaces", or the weaker "rlimits").
"""

from __future__ import annotations

import ast
import re
from typing import NamedTuple

from dlrl_jax.rewards.gsm8k import xml_count
from dlrl_jax.rewards.sandbox import Limits, run_tests_many

_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
LIMITS = Limits(wall_seconds=5.0, cpu_seconds=5, memory_bytes=512 * 2**20)

_PY_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)           # EGSPO's and ESPO's fence: exactly this
_ESPO_LAYOUT = re.compile(r"(?:(?!```).)*```python\n(?:(?!```).)*```\n?", re.DOTALL)  # fullmatch
_EGSPO_BLOCKED = (" os", " sys", " subprocess", " shutil", " socket", " psutil", " ctypes", " pathlib",
                  " builtins", "__import__")  # egspo/reward_func.py BLOCKED_MODULES (plain substrings)


class _Plan(NamedTuple):
    """What to run for one completion and how its pass count becomes a reward."""
    program: str | None   # the solution module; None: nothing runs
    tests: list[str]      # statements, each run on its own after `from solution import *`
    fixed: float          # reward without the tests


def extract_code(completion: str) -> tuple[str | None, float]:
    """dlrl: (code of the last python block, format score)."""
    answers = _ANSWER.findall(completion)
    if answers:
        blocks = _BLOCK.findall(answers[-1])
        if blocks:
            return blocks[-1], 1.0
    blocks = _BLOCK.findall(completion)
    return (blocks[-1], 0.5) if blocks else (None, 0.0)


def first_python_block(completion: str) -> str:
    """EGSPO's and ESPO's code: the first "```python\\n...```" block, or ""."""
    found = _PY_BLOCK.search(completion)
    return found.group(1) if found else ""


def espo_format(completion: str) -> float:
    if not _ESPO_LAYOUT.fullmatch(completion):
        return 0.0
    try:
        ast.parse(first_python_block(completion).strip())
        return 1.0
    except Exception:  # SyntaxError, and anything else ast.parse raises: a partial 0.5 as in ESPO
        return 0.5


_IMPORT_SOLUTION = re.compile(r"^[ \t]*from solution import [^\n]*$", re.MULTILINE)


def _plan_dlrl(completion: str, example: dict) -> _Plan:
    code, fmt = extract_code(completion)
    # the sandbox's judge binds the solution's names itself: an import of `solution` has nothing to do
    return _Plan(code, [_IMPORT_SOLUTION.sub("", t) for t in example["tests"]], 0.5 * fmt)


def _plan_espo(completion: str, example: dict) -> _Plan:
    fmt = espo_format(completion)
    if fmt < 1.0:
        return _Plan(None, [], fmt)
    return _Plan(first_python_block(completion), list(example["tests"]), fmt)


def _egspo_tests(test_text: str) -> tuple[str, list[str]]:
    """(test text, names of its test functions), split into one function per assert line when the
    text has at most one `def NAME():`."""
    names = re.findall(r"def (\w+)\(\):", test_text)
    if len(names) <= 1:
        asserts = [line.strip() for line in test_text.strip().splitlines() if line.strip().startswith("assert")]
        test_text = "\n\n".join(f"def test_case_{i}():\n    {line}" for i, line in enumerate(asserts, 1))
        names = re.findall(r"def (\w+)\(\):", test_text)
    return test_text, names


def _plan_egspo(completion: str, example: dict) -> _Plan:
    xml = xml_count(completion)
    code = first_python_block(completion)
    answer = _ANSWER.search(completion)
    bonus = 0.5 if code and answer and f"```python\n{code}```" in answer.group(1) else 0.0
    test_text = "\n".join(example["tests"])
    imported = re.search(r"from solution import (\w+)", test_text)
    named = imported or re.search(r"assert\s+(\w+)\s*\(", test_text)
    if not named:
        return _Plan(None, [], xml)
    defined = re.search(r"def (\w+)\(", code)
    if not defined:
        return _Plan(None, [], xml + bonus)
    if defined.group(1) != named.group(1):
        code = re.sub(rf"\bdef {defined.group(1)}\b", f"def {named.group(1)}", code)
    if any(blocked in code for blocked in _EGSPO_BLOCKED):
        return _Plan(None, [], xml + bonus)
    test_text, names = _egspo_tests(test_text)
    if imported and not imported.group(0) in test_text:
        # the official code puts the solution where the import line was: a split test text has lost
        # that line, so its tests run without the solution and fail
        return _Plan(None, [f"{name}()" for name in names], xml + bonus)
    # The official code runs the test functions in the solution's own namespace; here they run in the
    # sandbox's judge (their calls reach the solution as plain values), so the verdict cannot be forged.
    tests_only = re.sub(r"from solution import \w+", "", test_text)
    return _Plan(code if names else None, [f"{tests_only}\n{name}()" for name in names], xml + bonus)


_PLANS = {"dlrl": _plan_dlrl, "d1": _plan_egspo, "espo": _plan_espo}


def code_rewards(completions: list[str], examples: list[dict], reward_set: str = "dlrl",
                 correctness_only: bool = False, limits: Limits = LIMITS, sandbox: str = "namespaces") -> list[float]:
    """Rewards for a batch (or, with `correctness_only`, 1.0 where every test passes); all tests of all
    completions run in parallel, isolated as `sandbox` says (task.code_sandbox)."""
    plans = [_PLANS[reward_set](c, e) for c, e in zip(completions, examples)]
    runnable = [i for i, p in enumerate(plans) if p.program is not None and p.tests]
    verdicts = run_tests_many([(plans[i].program, plans[i].tests) for i in runnable], limits, mode=sandbox)
    passed = {i: sum(v) for i, v in zip(runnable, verdicts)}
    out = []
    for i, plan in enumerate(plans):
        fraction = passed[i] / len(plan.tests) if i in passed else 0.0
        out.append(float(fraction == 1.0) if correctness_only else plan.fixed + fraction)
    return out


def validate_example(example: dict, index: int) -> None:
    tests = example.get("tests")
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        raise ValueError(f"examples[{index}]['tests'] must be a non-empty list of test statements (strings), "
                         f"got {tests!r}")
