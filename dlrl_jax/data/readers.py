"""Readers: local JSONL / JSON / CSV / Parquet files, or `hf:NAME[:CONFIG]:SPLIT` hub names where a
network exists, as raw rows (`read_rows`). Each task turns a row into its record schema
(`dlrl_jax.tasks.<task>.normalize`; `dlrl_jax.tasks.read_records` does both): the source layouts the
papers use are recognised there, and a row that fits none of them is an error naming the file and
row; nothing is skipped.

HUB_SOURCES names the hub data sets the papers use and the official files that load them;
`hf:Jiayi-Pan/Countdown-Tasks-3to4` keeps its 3-number rows, as the official loaders do.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re


class DataError(ValueError):
    """A data file or record is unusable; the message names the file, the row and the fix."""


def read_rows(source: str) -> list[dict]:
    """Every raw row of `source` in file order (a hub data set: the rows its official loader keeps)."""
    raw = _official_rows(source, _read_hub(source)) if source.startswith("hf:") else _read_file(source)
    if not raw:
        raise DataError(f"{source}: no records; point task.train_file / task.eval_file at a non-empty file")
    return raw


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
        import pyarrow as pa
        import pyarrow.parquet as pq
        try:
            return pq.read_table(path).to_pylist()
        except pa.ArrowException as e:
            raise DataError(f"{path}: not a readable Parquet file ({' '.join(str(e).split())[:200]}); re-export it, "
                            "or use .jsonl") from None
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
    "google-research-datasets/mbpp": {"tasks": ("code",), "columns": ("text or prompt", "test_list", "code"),
                                      "official": "EGSPO eval/mbpp.py load_dataset(\"mbpp\", \"sanitized\", "
                                                  "split=\"test\") (sanitized: prompt, test_imports)"},
    "mbpp": {"tasks": ("code",), "columns": ("text or prompt", "test_list", "code"),
             "official": "the old name of google-research-datasets/mbpp (EGSPO eval/mbpp.py)"},
    "openai/openai_humaneval": {"tasks": ("code",), "columns": ("prompt", "test", "entry_point"),
                                "official": "EGSPO eval/human_eval.py load_dataset(\"openai/openai_humaneval\", "
                                            "split=\"test\")"},
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
    return [r for r in rows if len(field(r, "nums", "numbers") or ()) == keep]


def source_fingerprint(source: str) -> str | None:
    """sha256 of a local data file's bytes (what a resumed run or evaluation must find unchanged); None
    for a hub name (its rows come from the hub's own versioned copy)."""
    if source.startswith("hf:"):
        return None
    digest = hashlib.sha256()
    with open(source, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def field(r: dict, *names: str):
    """The first of `names` the row has (case-insensitive) that is not None, else None."""
    lower = {str(k).lower(): v for k, v in r.items()}
    for n in names:
        if n in lower and lower[n] is not None:
            return lower[n]
    return None


def require(value, where: str, what: str):
    """`value`, or a DataError naming `where` and `what` is missing."""
    if value is None or value == "" or value == []:
        raise DataError(f"{where}: missing {what}")
    return value


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


def text_field(value, where: str, what: str, numbers: bool = False) -> str:
    """`value` as text; with `numbers`, a finite int or float is also taken (an answer stored as a
    number: 72, 0.5). Anything else (a list, a mapping, true/false, NaN, infinity) is a DataError naming
    `where` and `what`: str() of it would quietly become a question or a reference answer ("True")."""
    if isinstance(value, str):
        return value
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)
    kind = "text or a finite number" if numbers else "text"
    raise DataError(f"{where}: {what} must be {kind}, got {type(value).__name__} {_shown(value)}; fix that row")


_INTEGER = re.compile(r"^\s*[-+]?[0-9]+\s*$")


def integer_field(value, where: str, what: str) -> int:
    """`value` as an int: an int, a float with no fraction (2.0, as Parquet/pandas may store it) or the
    text of one ("23"); true/false, 1.9, NaN or other text are a DataError naming `where` and `what`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.match(value) and len(value) < 100:
        return int(value)
    raise DataError(f"{where}: {what} must be an integer, got {type(value).__name__} {_shown(value)}; fix that row")


def packaged_file(name: str) -> str:
    """Path of a data file shipped with the package (dlrl_jax/data/files)."""
    path = os.path.join(os.path.dirname(__file__), "files", name)
    if not os.path.isfile(path):
        shipped = sorted(os.listdir(os.path.dirname(path))) if os.path.isdir(os.path.dirname(path)) else []
        raise DataError(f"no shipped data file {name!r}; shipped: {shipped}")
    return path
