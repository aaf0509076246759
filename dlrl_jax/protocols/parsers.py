"""Each paper's accuracy parser behind one call:

    score(protocol, task, text, record) -> (correct, total)
    score_many(protocol, task, texts, records) -> [(correct, total), ...]   (code: one sandbox batch)

for one generation: total 1 and correct 1/0, except Sudoku, where it is (blank cells filled as the
record's solution fills them, blank cells of the puzzle), summed over a set as the papers sum them.

Protocols ("whose evaluation"):
  d1     dllm-reasoning/d1 eval/parse_and_get_acc.py (`d1_parse`): gsm8k, math, countdown, sudoku.
  egspo  vishnutez/egspo-dllm-rl eval/parse_and_get_acc.py and get_and_save_metrics.py: the same
         parse functions as d1's, byte for byte, so the same port; code (HumanEval, MBPP): the pass@1
         its eval/parser_json.py intends, run in this project's sandbox (`egspo_code`: the release
         itself cannot run, FIDELITY.md).
  espo   ML-GSAI/ESPO eval/parse_and_get_acc.py (`espo_parse`): countdown and sudoku only.
  dlrl   this project's own accuracy: the correctness term of reward set "dlrl", as `dlrl-jax eval`
         computes it by default (`dlrl_jax.tasks.accuracy`); every task.

`text` is what the protocol's parser reads: for d1/egspo/espo the saved "generations" string, the
completion decoded with special tokens kept; for dlrl the completion cut at its first EOS with
special tokens dropped (what `dlrl-jax eval` writes as "completion").
`record` is the ground truth in this project's record schema (dlrl_jax/tasks/<task>.py): gsm8k and
math {"answer"}, countdown {"numbers", "target"}, sudoku {"puzzle", "solution"}, code the task's
record (egspo: a HumanEval or MBPP one, dlrl_jax/tasks/code.py). `protocols.records.record_from_d1_entry` builds one from a d1 generation-file entry.
"""

from __future__ import annotations

import re

from dlrl_jax.protocols import d1_parse, egspo_code, espo_parse

PROTOCOLS = ("d1", "egspo", "espo", "dlrl")
TASKS = ("gsm8k", "math", "countdown", "sudoku", "code")

SUPPORTED = {
    "d1": ("gsm8k", "math", "countdown", "sudoku"),
    "egspo": TASKS,
    "espo": ("countdown", "sudoku"),
    "dlrl": TASKS,
}

# Why a paper has no parser for a task, said in the error.
_NO_PARSER = {
    "d1": "d1 evaluates no code task",
    "espo": "ESPO's GSM8K, MATH and code numbers come from OpenCompass and Dream's lm-eval, not from its "
            "eval/parse_and_get_acc.py",
}


class ProtocolError(ValueError):
    """An unsupported protocol/task pair or an unusable record; the message names it and the fix.
    `index`: which record of a `score_many` batch (None for one record)."""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index


def check(protocol: str, task: str) -> None:
    """A ProtocolError naming the supported choices unless `protocol` has a parser for `task`."""
    if protocol not in PROTOCOLS:
        raise ProtocolError(f"protocol {protocol!r} is unknown; use one of {', '.join(PROTOCOLS)}")
    if task not in TASKS:
        raise ProtocolError(f"task {task!r} is unknown; use one of {', '.join(TASKS)}")
    if task not in SUPPORTED[protocol]:
        raise ProtocolError(f"protocol {protocol!r} has no {task} parser ({_NO_PARSER[protocol]}); it scores "
                            f"{', '.join(SUPPORTED[protocol])}; for {task} use --protocol "
                            f"{' or '.join(p for p in PROTOCOLS if task in SUPPORTED[p])}")


def _field(record: dict, name: str, kind, what: str, allow_none: bool = False):
    if not isinstance(record, dict) or name not in record:
        raise ProtocolError(f"the record has no {name!r} ({what})")
    value = record[name]
    if (value is None and allow_none) or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    raise ProtocolError(f"record[{name!r}] must be {what}, got {value!r}")


def _grid(record: dict, name: str) -> str:
    value = _field(record, name, str, "16 digits, 0 for a blank")
    if len(value) != 16 or not value.isdigit():
        raise ProtocolError(f"record[{name!r}] must be 16 digits, 0 for a blank, got {value!r}")
    return value


def _official(protocol: str, task: str, text: str, record: dict) -> tuple[int, int]:
    if task == "sudoku":
        return d1_parse.sudoku_cells(text, _grid(record, "puzzle"), _grid(record, "solution"))
    if task == "gsm8k":
        truth = d1_parse.gsm8k_truth(_field(record, "answer", (str, int, float), "the final number",
                                            allow_none=True))
        return int(d1_parse.gsm8k_correct(text, truth)), 1
    if task == "math":
        reference = _field(record, "answer", (str, float), "the reference answer string")
        return int(d1_parse.math_correct(text, reference)), 1
    numbers = _field(record, "numbers", list, "a list of integers")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        raise ProtocolError(f"record['numbers'] must be a list of integers, got {numbers!r}")
    target = _field(record, "target", (int, float), "the target number", allow_none=True)
    expression = (espo_parse.countdown_expression if protocol == "espo" else d1_parse.countdown_expression)(text)
    return int(d1_parse.countdown_correct(expression, numbers, target)), 1


def _dlrl_many(task: str, texts: list[str], records: list[dict]) -> list[tuple[int, int]]:
    from dlrl_jax import tasks  # (the task registry: imported on use, the parsers above need none of it)

    for i, record in enumerate(records):
        if task == "code" and isinstance(record, dict) and record.get("benchmark") == "humaneval" \
                and not record.get("tests"):
            raise ProtocolError("a HumanEval entry of an EGSPO generation file names no entry point (only the test "
                                "is saved): rescore it with --protocol egspo, or evaluate with `dlrl-jax eval`", i)
    try:
        values = [float(v) for v in tasks.accuracy(task, list(texts), list(records), reward_set="dlrl")]
    except ValueError as e:  # the task's record check: "examples[i]['answer'] must be ..."
        found = re.match(r"examples\[(\d+)\]", str(e))
        raise ProtocolError(re.sub(r"examples\[\d+\]", "record", str(e)),
                            int(found.group(1)) if found else None) from None
    return [_dlrl_count(task, v, r) for v, r in zip(values, records)]


def _dlrl_count(task: str, value: float, record: dict) -> tuple[int, int]:
    if task == "sudoku":  # the fraction of blanks, back to cells (k / b in float32 times b rounds to k)
        blanks = sum(ch == "0" for ch in record["puzzle"])
        return int(round(value * blanks)), blanks
    return int(value >= 1.0 - 1e-6), 1


def _egspo_code(texts: list[str], records: list[dict]) -> list[tuple[int, int]]:
    for i, record in enumerate(records):
        try:
            egspo_code.ground_truth(record)
        except egspo_code.CodeRecordError as e:
            raise ProtocolError(str(e), i) from None
    return [(c, 1) for c in egspo_code.correct_many(list(texts), list(records))]


def score(protocol: str, task: str, text: str, record: dict) -> tuple[int, int]:
    """(correct, total) of one generation `text` against `record` under `protocol`'s parser."""
    try:
        return score_many(protocol, task, [text], [record])[0]
    except ProtocolError as e:
        raise ProtocolError(str(e)) from None


def score_many(protocol: str, task: str, texts: list[str], records: list[dict]) -> list[tuple[int, int]]:
    """`score` of each (text, record) pair; code runs every program of the batch in one parallel
    sandbox batch (a sandboxed test costs about a second). A bad record raises ProtocolError with
    its position as `.index`."""
    check(protocol, task)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ProtocolError(f"the generation must be a string, got {type(text).__name__}", i)
    if protocol == "dlrl":
        return _dlrl_many(task, texts, records)
    if task == "code":
        return _egspo_code(texts, records)
    out = []
    for i, (text, record) in enumerate(zip(texts, records)):
        try:
            out.append(_official(protocol, task, text, record))
        except ProtocolError as e:
            raise ProtocolError(str(e), i) from None
    return out
