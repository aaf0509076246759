"""Readers: local JSONL / JSON / CSV / Parquet files, or `hf:NAME[:CONFIG]:SPLIT` hub names where a
network exists, into one record schema per task (the schema `dlrl_jax.rewards.score` reads):

  sudoku     {"puzzle": 16 chars, 0 = blank, "solution": 16 chars}
  countdown  {"numbers": [ints], "target": int}
  gsm8k      {"question": str, "answer": str, "solution": str | None}
  math       {"question": str, "answer": str, "solution": str | None}
  code       {"question": str, "tests": [statements], "entry_point": str | None,
              "solution": str | None, "tests_in_prompt": bool}

The source layouts the papers use are recognised: GSM8K ("question", "answer" ending in "#### n"),
MATH500 ("problem", "answer"), Countdown ("nums" or "numbers", "target"), d1's Sudoku CSV
("Puzzle", "Solution"), MBPP ("text", "test_list", "code") and HumanEval ("prompt", "test",
"entry_point"). A record that fits none of them is an error naming the file and row; nothing is
skipped.

The papers' own data (see HUB_SOURCES for the hub names and the official files that load them) read
the same way: d1's Countdown test file ("input" "30,100,93", "output" "23"), MATH training rows that
carry only a worked "solution" (the reference answer is its last \\boxed{}, as the official rewards
take it), KodCode-Light-RL-10K ("question", "solution", "test": a pytest file that imports from
`solution`; one test per zero-argument function, as EGSPO's reward counts them) and ESPO's AceCode
file ("question", "test_cases": assert statements). `hf:Jiayi-Pan/Countdown-Tasks-3to4` keeps its
3-number rows, as the official loaders do.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from typing import Callable

TASKS = ("sudoku", "countdown", "gsm8k", "math", "code")


class DataError(ValueError):
    """A data file or record is unusable; the message names the file, the row and the fix."""


def read_records(source: str, task: str) -> list[dict]:
    """Every record of `source` in `task`'s schema, in file order."""
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    raw = _official_rows(source, _read_hub(source)) if source.startswith("hf:") else _read_file(source)
    if not raw:
        raise DataError(f"{source}: no records; point task.train_file / task.eval_file at a non-empty file")
    return [normalize(task, r, f"{source} row {i + 1}") for i, r in enumerate(raw)]


def _read_file(path: str) -> list[dict]:
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".jsonl":
        rows = []
        for line_no, line in enumerate(_utf8_text(path).split("\n"), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"{path} line {line_no}: not valid JSON ({e.msg}); each line must be one "
                                "JSON object") from None
        return rows
    if ext == ".json":
        try:
            rows = json.loads(_utf8_text(path))
        except json.JSONDecodeError as e:
            raise DataError(f"{path} line {e.lineno} column {e.colno}: not valid JSON ({e.msg}); fix the file "
                            "there") from None
        if not isinstance(rows, list):
            raise DataError(f"{path}: a .json data file must hold a list of records; use .jsonl for one per line")
        return rows
    if ext == ".csv":
        # csv's default field limit (128 KiB) would stop a long field with no row named; read it whole
        # and let the prompt-length check name the row if it is too long for the model
        csv.field_size_limit(2**31 - 1)
        reader = csv.DictReader(io.StringIO(_utf8_text(path), newline=""))
        try:
            return list(reader)
        except csv.Error as e:
            raise DataError(f"{path} line {reader.line_num}: not valid CSV ({e}); fix the file there") from None
    if ext == ".parquet":
        import pyarrow.parquet as pq
        return pq.read_table(path).to_pylist()
    raise DataError(f"{path}: unsupported extension {ext!r}; use .jsonl, .json, .csv or .parquet")


def _utf8_text(path: str) -> str:
    """The file's text; bytes that are not UTF-8 are an error naming the line and byte offset."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path} line {line} (byte {e.start}): not UTF-8 text ({e.reason}); re-save the file as "
                        "UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None


def _read_hub(source: str) -> list[dict]:
    parts = source[3:].split(":")
    if len(parts) not in (2, 3):
        raise DataError(f"{source}: hub sources are hf:NAME:SPLIT or hf:NAME:CONFIG:SPLIT")
    try:
        import datasets
    except ImportError:
        raise DataError(f"{source}: reading hub data sets needs the `datasets` package "
                        "(pip install 'dlrl_jax[hub]') and a network; or download the data to a local file")
    name, config, split = (parts[0], None, parts[1]) if len(parts) == 2 else parts
    return list(datasets.load_dataset(name, config, split=split))


# Hub data sets the papers use (and near relatives users reach for): the tasks each serves, the columns
# its rows carry, and the file of the official code that loads it.
HUB_SOURCES = {
    "openai/gsm8k": {"tasks": ("gsm8k",), "columns": ("question", "answer"),
                     "official": "d1 diffu-grpo/data_utils.py get_gsm8k_questions; ESPO espo/data_utils.py"},
    "ankner/math-500": {"tasks": ("math",), "columns": ("problem", "solution"),
                        "official": "d1 diffu-grpo/data_utils.py get_math_questions (split train; answer = the "
                                    "solution's last \\boxed{}); EGSPO egspo/data_utils.py; ESPO espo/data_utils.py"},
    "HuggingFaceH4/MATH-500": {"tasks": ("math",), "columns": ("problem", "solution", "answer")},
    "DigitalLearningGmbH/MATH-lighteval": {"tasks": ("math",), "columns": ("problem", "level", "solution", "type")},
    "Jiayi-Pan/Countdown-Tasks-3to4": {"tasks": ("countdown",), "columns": ("target", "nums"), "numbers": 3,
                                       "official": "d1 diffu-grpo/data_utils.py get_countdown_questions "
                                                   "(filter len(nums) == 3); EGSPO and ESPO data_utils.py"},
    "KodCode/KodCode-Light-RL-10K": {"tasks": ("code",), "columns": ("question", "solution", "test"),
                                     "official": "EGSPO egspo/data_utils.py get_code_questions"},
    "TIGER-Lab/AceCode-89K": {"tasks": ("code",), "columns": ("question", "test_cases"),
                              "official": "ESPO recipes/process_data.py -> recipes/acecode_hard.jsonl"},
    "google-research-datasets/mbpp": {"tasks": ("code",), "columns": ("text", "test_list", "code")},
    "openai/openai_humaneval": {"tasks": ("code",), "columns": ("prompt", "test", "entry_point")},
}


def _hub_name(source: str) -> str:
    return source[3:].split(":")[0]


def check_source(source: str, task: str) -> None:
    """Before anything is read: a known hub data set must serve `task` (its columns fit the task's
    schema). Unknown names and local files pass here; their rows are checked when read."""
    known = HUB_SOURCES.get(_hub_name(source)) if source.startswith("hf:") else None
    if known and task not in known["tasks"]:
        fits = sorted(n for n, v in HUB_SOURCES.items() if task in v["tasks"])
        raise DataError(f"{source}: its rows ({', '.join(known['columns'])}) are {'/'.join(known['tasks'])} data, "
                        f"not {task}; use one of {', '.join('hf:' + n for n in fits)} or a local file")


def _official_rows(source: str, rows: list[dict]) -> list[dict]:
    """The rows of a hub data set the official loaders keep (Countdown: the 3-number subset)."""
    keep = HUB_SOURCES.get(_hub_name(source), {}).get("numbers")
    if keep is None:
        return rows
    return [r for r in rows if len(_field(r, "nums", "numbers") or ()) == keep]


def _field(r: dict, *names: str):
    lower = {str(k).lower(): v for k, v in r.items()}
    for n in names:
        if n in lower and lower[n] is not None:
            return lower[n]
    return None


def _require(value, where: str, what: str):
    if value is None or value == "" or value == []:
        raise DataError(f"{where}: missing {what}")
    return value


def _sudoku(r: dict, where: str) -> dict:
    puzzle = str(_require(_field(r, "puzzle", "quizzes"), where, "'puzzle' (16 digits, 0 for blanks)"))
    solution = str(_require(_field(r, "solution", "solutions"), where, "'solution' (16 digits)"))
    puzzle, solution = puzzle.replace(".", "0").strip(), solution.strip()
    if len(puzzle) != 16 or not puzzle.isdigit() or len(solution) != 16 or not solution.isdigit():
        raise DataError(f"{where}: a 4x4 sudoku needs 16-digit 'puzzle' and 'solution', got {puzzle!r}, {solution!r}")
    return {"puzzle": puzzle, "solution": solution}


def _countdown_d1_test(r: dict, where: str) -> dict:
    """d1's dataset/countdown_cd3_test.jsonl: {"input": "30,100,93", "output": "23"} (eval/countdown.py)."""
    try:
        numbers = [int(x) for x in str(r["input"]).split(",")]
        target = int(str(_require(_field(r, "output"), where, "'output' (the target)")).strip())
    except ValueError:
        raise DataError(f"{where}: d1's Countdown rows hold 'input' as comma-separated integers and 'output' as an "
                        f"integer, got {r.get('input')!r}, {r.get('output')!r}") from None
    return {"numbers": numbers, "target": target}


def _countdown(r: dict, where: str) -> dict:
    if _field(r, "numbers", "nums") is None and _field(r, "input") is not None:
        return _countdown_d1_test(r, where)
    numbers = _require(_field(r, "numbers", "nums"), where, "'numbers' (a list of integers)")
    target = _require(_field(r, "target"), where, "'target' (an integer)")
    if isinstance(numbers, str):
        numbers = json.loads(numbers)
    try:
        numbers = [int(x) for x in numbers]
        target = int(target)
    except (TypeError, ValueError):
        raise DataError(f"{where}: 'numbers' must be integers and 'target' an integer, got {numbers!r}, {target!r}")
    return {"numbers": numbers, "target": target}


def _gsm8k(r: dict, where: str) -> dict:
    question = _require(_field(r, "question", "problem"), where, "'question'")
    answer = str(_require(_field(r, "answer"), where, "'answer'"))
    solution = None
    if "####" in answer:  # GSM8K's own layout: worked solution, then "#### final answer"
        solution, answer = answer.rsplit("####", 1)
        solution = solution.strip()
    return {"question": str(question), "answer": answer.strip().replace(",", ""), "solution": solution}


def boxed_reference(solution: str) -> str | None:
    """The reference answer in a MATH worked solution as the official rewards take it (d1/EGSPO
    math500_utils.py remove_boxed(last_boxed_only_string(.))): the text after the last "\\boxed " up to
    a "$" when that spaced form occurs, else the braces of the last \\boxed{...} (nesting counted)."""
    if "\\boxed " in solution:
        return solution.split("\\boxed ")[-1].split("$")[0]
    start = solution.rfind("\\boxed{")
    if start < 0:
        return None
    depth = 0
    for j in range(start + len("\\boxed"), len(solution)):
        depth += {"{": 1, "}": -1}.get(solution[j], 0)
        if depth == 0:
            return solution[start + len("\\boxed{"):j]
    return None


def _math(r: dict, where: str) -> dict:
    question = _require(_field(r, "question", "problem"), where, "'problem' or 'question'")
    answer = _field(r, "answer")
    if answer is None and isinstance(_field(r, "solution"), str):  # MATH train rows: only the worked solution
        answer = boxed_reference(_field(r, "solution"))
    answer = _require(answer, where, "'answer' (the reference final answer), or a 'solution' ending in \\boxed{}")
    return {"question": str(question), "answer": str(answer), "solution": _field(r, "solution")}


def _kodcode(r: dict, where: str) -> dict:
    """KodCode: "test" is a pytest file importing from `solution`. As EGSPO's coding_reward_func counts
    them, every zero-argument function the file defines (regex `def (\\w+)\\(\\):`, helpers included)
    is one test: the file, then a call to it. A file with at most one such function is split into one
    test per `assert` line, as the official split_test_function does (which, unlike here, then loses the
    solution's import: see FIDELITY.md). The file itself is kept as "test_file"."""
    test_file = str(_field(r, "test"))
    names = re.findall(r"def (\w+)\(\):", test_file)
    if len(names) > 1:
        tests = [f"{test_file}\n{name}()\n" for name in names]
    else:
        imports = [ln for ln in test_file.splitlines() if ln.startswith(("from ", "import "))]
        tests = ["\n".join(imports + [ln.strip()]) for ln in test_file.splitlines() if ln.strip().startswith("assert")]
    if not tests:
        raise DataError(f"{where}: the KodCode 'test' file has no test functions (def name():) and no asserts")
    imported = re.search(r"from solution import (\w+)", test_file)
    return {"question": str(_require(_field(r, "question"), where, "'question'")), "tests": tests,
            "entry_point": imported.group(1) if imported else None, "solution": _field(r, "solution"),
            "tests_in_prompt": False, "test_file": test_file}


def _acecode(r: dict, where: str) -> dict:
    """AceCode (ESPO's recipes/acecode_hard.jsonl): "test_cases" are assert statements. ESPO shows the
    first in the prompt unless the question already holds a fenced block (espo/data_utils.py)."""
    tests = _field(r, "test_cases")
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        raise DataError(f"{where}: 'test_cases' must be a non-empty list of assert statements, got {tests!r}")
    question = str(_require(_field(r, "question"), where, "'question'"))
    return {"question": question, "tests": list(tests), "entry_point": None, "solution": None,
            "tests_in_prompt": "\n```\n" not in question}


def _code(r: dict, where: str) -> dict:
    entry_point = _field(r, "entry_point")
    if _field(r, "test_cases") is not None:
        return _acecode(r, where)
    if isinstance(_field(r, "test"), str) and entry_point is None:  # HumanEval rows name their entry point
        return _kodcode(r, where)
    if _field(r, "test_list") is not None:  # MBPP
        tests = _field(r, "test_list")
        setup = _field(r, "test_setup_code") or ""
        tests = [(setup + "\n" + t).strip() for t in tests]
        question, in_prompt = _require(_field(r, "text", "question", "prompt"), where, "'text'"), True
    elif isinstance(_field(r, "test"), str):  # HumanEval: a check(candidate) function
        entry = _require(entry_point, where, "'entry_point' (HumanEval tests call check(entry_point))")
        tests = [_field(r, "test") + f"\ncheck({entry})\n"]
        question, in_prompt = _require(_field(r, "prompt", "question"), where, "'prompt'"), False
    else:
        tests = _require(_field(r, "tests"), where, "'tests' (or MBPP's 'test_list', HumanEval's 'test')")
        question = _require(_field(r, "question", "prompt", "text"), where, "'question'")
        in_prompt = bool(r.get("tests_in_prompt", True))
    if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests) or not tests:
        raise DataError(f"{where}: tests must be a non-empty list of Python statements, got {tests!r}")
    solution = _field(r, "code", "canonical_solution", "solution")
    return {"question": str(question), "tests": list(tests), "entry_point": entry_point,
            "solution": solution, "tests_in_prompt": in_prompt}


_NORMALIZERS: dict[str, Callable[[dict, str], dict]] = {
    "sudoku": _sudoku, "countdown": _countdown, "gsm8k": _gsm8k, "math": _math, "code": _code}


def normalize(task: str, record, where: str) -> dict:
    """One source record in `task`'s schema; `where` names it in errors ("file row n")."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: a record must be an object with named fields, got {type(record).__name__}")
    return _NORMALIZERS[task](record, where)


def packaged_file(name: str) -> str:
    """Path of a data file shipped with the package (dlrl_jax/data/files)."""
    path = os.path.join(os.path.dirname(__file__), "files", name)
    if not os.path.isfile(path):
        shipped = sorted(os.listdir(os.path.dirname(path))) if os.path.isdir(os.path.dirname(path)) else []
        raise DataError(f"no shipped data file {name!r}; shipped: {shipped}")
    return path
