"""Code: write a Python function that passes the record's tests, run in the sandbox.

Record: {"question": str, "tests": [statements], "entry_point": str | None, "solution": str | None,
"tests_in_prompt": bool} (KodCode rows also keep "test_file"; HumanEval and MBPP rows "benchmark",
"task_id" and their raw tests: "check_code", or "test_list" and "test_imports", which the `egspo` eval
protocol reads). Read from MBPP (sanitized: "prompt", "test_list", "test_imports", "code"; full: "text",
"test_list", "test_setup_code"), HumanEval ("task_id", "prompt", "canonical_solution", "test",
"entry_point"), KodCode ("question", "solution", "test": a pytest
file), AceCode ("question", "test_cases") or any file with "question" and "tests". Rewards
(`dlrl_jax.rewards.code`): the fraction of tests passing in `dlrl_jax.rewards.sandbox` plus format terms.
"""

from __future__ import annotations

import re

from dlrl_jax.data.readers import DataError, field, require, text_field
from dlrl_jax.rewards import code as rewards
from dlrl_jax.tasks.spec import RewardPair, TaskSpec


def _kodcode(r: dict, where: str) -> dict:
    """KodCode: "test" is a pytest file importing from `solution`. As EGSPO's coding_reward_func counts
    them, every zero-argument function the file defines (regex `def (\\w+)\\(\\):`, helpers included)
    is one test: the file, then a call to it. A file with at most one such function is split into one
    test per `assert` line, as the official split_test_function does (which, unlike here, then loses the
    solution's import: see FIDELITY.md). The file itself is kept as "test_file"."""
    test_file = str(field(r, "test"))
    names = re.findall(r"def (\w+)\(\):", test_file)
    if len(names) > 1:
        tests = [f"{test_file}\n{name}()\n" for name in names]
    else:
        imports = [ln for ln in test_file.splitlines() if ln.startswith(("from ", "import "))]
        tests = ["\n".join(imports + [ln.strip()]) for ln in test_file.splitlines() if ln.strip().startswith("assert")]
    if not tests:
        raise DataError(f"{where}: the KodCode 'test' file has no test functions (def name():) and no asserts")
    imported = re.search(r"from solution import (\w+)", test_file)
    return {"question": text_field(require(field(r, "question"), where, "'question'"), where, "'question'"), "tests": tests,
            "entry_point": imported.group(1) if imported else None, "solution": field(r, "solution"),
            "tests_in_prompt": False, "test_file": test_file}


def _acecode(r: dict, where: str) -> dict:
    """AceCode (ESPO's recipes/acecode_hard.jsonl): "test_cases" are assert statements. ESPO shows the
    first in the prompt unless the question already holds a fenced block (espo/data_utils.py)."""
    tests = field(r, "test_cases")
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        raise DataError(f"{where}: 'test_cases' must be a non-empty list of assert statements, got {tests!r}")
    question = text_field(require(field(r, "question"), where, "'question'"), where, "'question'")
    return {"question": question, "tests": list(tests), "entry_point": None, "solution": None,
            "tests_in_prompt": "\n```\n" not in question}


def _strings(value, where: str, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise DataError(f"{where}: {what} must be a list of strings, got {value!r}")
    return value


def _humaneval(r: dict, where: str) -> dict:
    """HumanEval (task_id, prompt, canonical_solution, test, entry_point): "test" defines
    `check(candidate)`; the one test statement is that text and `check(<entry_point>)`, run in the
    sandbox's judge with the entry point bound to the solution's function (a remote reference), so the
    verdict stays the judge's. "check_code" keeps the raw test (EGSPO's protocol calls check on the
    completion's first function instead, eval/human_eval.py)."""
    test = str(require(field(r, "test"), where, "'test' (HumanEval's check(candidate) function)"))
    if not re.search(r"^def check\(", test, re.MULTILINE):
        raise DataError(f"{where}: HumanEval 'test' must define `def check(candidate):`, got {test[:60]!r}")
    entry = require(field(r, "entry_point"), where, "'entry_point' (HumanEval tests call check(entry_point))")
    if not isinstance(entry, str) or not entry.isidentifier():
        raise DataError(f"{where}: 'entry_point' must be a Python function name, got {entry!r}")
    prompt = require(field(r, "prompt"), where, "'prompt' (HumanEval's signature and docstring)")
    if not isinstance(prompt, str):
        raise DataError(f"{where}: 'prompt' must be a string, got {type(prompt).__name__}")
    return {"question": prompt, "tests": [test + f"\ncheck({entry})\n"], "entry_point": entry,
            "solution": field(r, "canonical_solution"), "tests_in_prompt": False, "benchmark": "humaneval",
            "task_id": field(r, "task_id"), "check_code": test}


def _mbpp(r: dict, where: str) -> dict:
    """MBPP: "test_list" assert lines; the sanitized config's "prompt" and "test_imports" (imports the
    asserts need, e.g. `import math`: each test statement starts with them), the full config's "text"
    and "test_setup_code"."""
    tests = _strings(field(r, "test_list"), where, "'test_list' (MBPP's assert lines)")
    if not tests:
        raise DataError(f"{where}: 'test_list' is empty; MBPP rows carry their assert lines there")
    imports = _strings(field(r, "test_imports") or [], where, "'test_imports'")
    setup = field(r, "test_setup_code") or ""
    if not isinstance(setup, str):
        raise DataError(f"{where}: 'test_setup_code' must be a string, got {setup!r}")
    prefix = "\n".join(imports + ([setup] if setup.strip() else []))
    question = require(field(r, "prompt", "text", "question"), where, "'prompt' (MBPP sanitized) or 'text' (full)")
    if not isinstance(question, str):
        raise DataError(f"{where}: the MBPP problem text must be a string, got {type(question).__name__}")
    return {"question": question, "tests": [(prefix + "\n" + t).strip() for t in tests],
            "entry_point": None, "solution": field(r, "code"), "tests_in_prompt": True, "benchmark": "mbpp",
            "task_id": field(r, "task_id"), "test_list": list(tests), "test_imports": list(imports)}


def normalize(r: dict, where: str) -> dict:
    if field(r, "test_cases") is not None:
        return _acecode(r, where)
    if field(r, "test_list") is not None:
        return _mbpp(r, where)
    if field(r, "canonical_solution", "entry_point") is not None:  # HumanEval's own columns
        return _humaneval(r, where)
    if isinstance(field(r, "test"), str):  # KodCode: a pytest file, with "question" and "solution"
        return _kodcode(r, where)
    tests = require(field(r, "tests"), where, "'tests' (or MBPP's 'test_list', HumanEval's 'test')")
    question = require(field(r, "question", "prompt", "text"), where, "'question'")
    in_prompt = r.get("tests_in_prompt", True)
    if not isinstance(in_prompt, bool):
        raise DataError(f"{where}: 'tests_in_prompt' must be true or false, got {in_prompt!r}")
    if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests) or not tests:
        raise DataError(f"{where}: tests must be a non-empty list of Python statements, got {str(tests)[:80]}")
    solution = field(r, "solution")
    solution = None if solution is None else text_field(solution, where, "the solution")
    entry_point = field(r, "entry_point")
    if entry_point is not None:
        entry_point = text_field(entry_point, where, "'entry_point'")
    return {"question": text_field(question, where, "the question"), "tests": list(tests), "entry_point": entry_point,
            "solution": solution, "tests_in_prompt": in_prompt}


def question(r: dict) -> str:
    text = r["question"]
    if r.get("tests_in_prompt", True) and r.get("tests"):
        text += "\nYour code must pass these tests:\n" + "\n".join(r["tests"][:3])
    return text + "\nGive the complete Python solution in a ```python code block inside the answer."


def recipe_fields(r: dict) -> dict:
    """ESPO shows the first test unless the question already holds a fenced block (AceCode's rewritten
    "Please complete the following problem" questions)."""
    tests, text = r.get("tests") or [], r["question"]
    return {"question": text, "test_hint": "\nTest cases: " + tests[0] if tests and "\n```\n" not in text else ""}


def _batched(reward_set: str, correctness_only: bool):
    """Every test of every completion runs in parallel in the sandbox (`sandbox`: its mode, `limits`:
    its Limits, default `rewards.code.LIMITS`)."""
    def score(completions, records, sandbox: str = "namespaces", limits=None):
        return rewards.code_rewards(list(completions), list(records), reward_set, correctness_only=correctness_only,
                                    sandbox=sandbox, limits=limits or rewards.LIMITS)
    return score


TASK = TaskSpec(
    name="code",
    normalize=normalize,
    validate=rewards.validate_example,
    question=question,
    recipe_fields=recipe_fields,
    sft_answer=lambda r: r.get("solution") and f"```python\n{r.get('solution')}\n```",
    # "d1": EGSPO's code reward (d1 trains no code)
    reward_sets={s: RewardPair(_batched(s, False), _batched(s, True)) for s in ("dlrl", "d1", "espo")},
    extract_answer=lambda completion, reward_set: (rewards.extract_code(completion)[0] if reward_set == "dlrl"
                                                   else rewards.first_python_block(completion)),
    uses_sandbox=True,
)
