"""EGSPO's HumanEval / MBPP pass@1, as its released rescoring code intends it (vishnutez/egspo-dllm-rl
eval/parser_json.py `parse_humaneval_answers`, `parse_mbpp_answers`), run through this project's sandbox.

The release cannot run as published (FIDELITY.md, "Code: HumanEval and MBPP"): parser_json.py never imports
`Parser` or `test_solution` (NameError on the first entry), and parsers.py `test_solution` uses
`subprocess`, `sys` and `resource` without importing them, so inside its `try` every program scores 0.
What its code intends, per generation:
  program    the FIRST "```python\\n...```" block of the generation (`Parser.extract_answer_code`); no
             block, or an empty one, is wrong
  HumanEval  the first `def NAME(` anywhere in the program (regex `def\\s+(\\w+)\\s*\\(`), none: wrong;
             the script program + "\\n\\n" + the record's whole `test` + "\\n\\n" + "check(NAME)"
  MBPP       program + "\\n\\n" + test_imports (one a line) + "\\n\\n" + the assert lines (one a line)
  verdict    the script exits with status 0 within 10 s under a 1 GB address-space limit
Here the program runs in the sandbox's solution process and the rest of the script (the ground truth,
then `check(NAME)` for HumanEval) as ONE test statement in its judge, which reaches the program's names
as plain values or remote references: the verdict is the judge's, so a program that exits 0 before the
tests run, patches `assert` helpers or returns an object with a rigged `__eq__` fails here (each of
them passes the official exit-status check).
"""

from __future__ import annotations

import re

from dlrl_jax.rewards.sandbox import Limits, run_tests_many

# parsers.py test_solution: subprocess timeout=10, RLIMIT_AS 1_000_000_000
LIMITS = Limits(wall_seconds=10.0, cpu_seconds=10, memory_bytes=1_000_000_000)

_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)  # Parser.extract_answer_code
_FIRST_DEF = re.compile(r"def\s+(\w+)\s*\(")           # parser_json.py parse_humaneval_answers


class CodeRecordError(ValueError):
    """A record that is not a HumanEval or MBPP record (the message says what it lacks)."""


def program(text: str) -> str | None:
    """The first ```python block of `text`, or None."""
    found = _BLOCK.search(text)
    return found.group(1) if found else None


def ground_truth(record: dict) -> str:
    """The record's `ground_truth` as EGSPO's eval saves it: HumanEval's `test`; MBPP's test_imports and
    assert lines ("\\n".join(test_imports) + "\\n\\n" + "\\n".join(test_list))."""
    benchmark = record.get("benchmark") if isinstance(record, dict) else None
    if benchmark == "humaneval" and isinstance(record.get("check_code"), str):
        return record["check_code"]
    if benchmark == "mbpp" and isinstance(record.get("test_list"), list):
        return "\n".join(record.get("test_imports") or []) + "\n\n" + "\n".join(record["test_list"])
    raise CodeRecordError("the record is not a HumanEval record ('benchmark': 'humaneval', 'check_code') or an MBPP "
                          "record ('benchmark': 'mbpp', 'test_list', 'test_imports'); read HumanEval/MBPP rows with "
                          "`--task code` or use --protocol dlrl")


def plan(text: str, record: dict) -> tuple[str, str] | None:
    """(program, test statement) to run for one generation, or None where EGSPO's code runs nothing
    (and counts it wrong)."""
    truth = ground_truth(record)
    code = program(text)
    if not code:
        return None
    if record["benchmark"] == "mbpp":
        return code, truth
    name = _FIRST_DEF.search(code)
    if not name:
        return None
    return code, truth + "\n\n" + f"check({name.group(1)})"


def correct_many(texts: list[str], records: list[dict], sandbox: str = "namespaces",
                 limits: Limits = LIMITS) -> list[int]:
    """1/0 per generation; every runnable one in one parallel sandbox batch."""
    plans = [plan(t, r) for t, r in zip(texts, records)]
    runnable = [i for i, p in enumerate(plans) if p is not None]
    verdicts = run_tests_many([(plans[i][0], [plans[i][1]]) for i in runnable], limits, mode=sandbox)
    passed = {i: v[0] for i, v in zip(runnable, verdicts)}
    return [int(passed.get(i, False)) for i in range(len(plans))]
