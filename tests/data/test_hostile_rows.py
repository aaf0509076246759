"""Malformed data rows (issue 26, finding 15) are refused by file and row, never coerced: a list
question is not its text, true / NaN / infinity are not answers, countdown numbers 1.9 or true are not
integers, and a garbage Parquet file is one line. Pure Python: milliseconds."""

import json

import pytest

from dlrl_jax import tasks
from dlrl_jax.data.readers import DataError


def _one_row(tmp_path, row) -> str:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"question": "fine", "answer": "1", "numbers": [1, 2, 3], "target": 6}\n' + row + "\n")
    return str(path)


@pytest.mark.parametrize("task", ["gsm8k", "math"])
@pytest.mark.parametrize("row, message", [
    ('{"question": ["a", "b"], "answer": "1"}', r"'(question|problem)' must be text, got list \['a', 'b'\]"),
    ('{"question": {"text": "a"}, "answer": "1"}', r"'(question|problem)' must be text, got dict \{'text': 'a'\}"),
    ('{"question": "q", "answer": true}', r"'answer' must be text or a finite number, got bool True"),
    ('{"question": "q", "answer": NaN}', r"'answer' must be text or a finite number, got float nan"),
    ('{"question": "q", "answer": Infinity}', r"'answer' must be text or a finite number, got float inf"),
    ('{"question": "q", "answer": [1]}', r"'answer' must be text or a finite number, got list \[1\]"),
])
def test_question_answer_rows_are_refused_by_row(tmp_path, task, row, message):
    with pytest.raises(DataError, match=r"rows\.jsonl row 2: " + message + "; fix that row"):
        tasks.read_records(_one_row(tmp_path, row), task)


@pytest.mark.parametrize("task", ["gsm8k", "math"])
def test_numeric_answers_are_text_of_the_number(tmp_path, task):
    records = tasks.read_records(_one_row(tmp_path, '{"question": "q", "answer": 72}'), task)
    assert records[1]["answer"] == "72" and records[1]["question"] == "q"


@pytest.mark.parametrize("row, message", [
    ('{"numbers": [1.9, 2.9, true], "target": 5}', r"each of 'numbers' must be an integer, got float 1.9"),
    ('{"numbers": [1, 2, true], "target": 5}', r"each of 'numbers' must be an integer, got bool True"),
    ('{"numbers": [1, 2, 3], "target": 5.5}', r"'target' must be an integer, got float 5.5"),
    ('{"numbers": [1, 2, 3], "target": false}', r"'target' must be an integer, got bool False"),
    ('{"numbers": "1 2 3", "target": 6}', r"'numbers' must be a list of integers such as \[30, 100, 93\], got '1 2 3'"),
    ('{"numbers": 7, "target": 6}', r"'numbers' must be a list of integers"),
    ('{"input": "30,1.5,93", "output": "23"}', r"d1's Countdown rows hold 'input' as comma-separated integers "
                                               r"\(\"30,100,93\"\), got '30,1.5,93'"),
    ('{"input": "30,100,93", "output": "x"}', r"'output' \(the target\) must be an integer, got str 'x'"),
])
def test_countdown_rows_are_refused_by_row(tmp_path, row, message):
    with pytest.raises(DataError, match=r"rows\.jsonl row 2: " + message):
        tasks.read_records(_one_row(tmp_path, row), "countdown")


def test_countdown_integers_stored_as_floats_or_text_are_read(tmp_path):
    """Parquet/pandas store integer columns with gaps as floats; CSV cells are text."""
    path = tmp_path / "rows.jsonl"
    path.write_text('{"numbers": [30.0, 100.0, 93.0], "target": 23.0}\n{"nums": "[4, 5, 6]", "target": "15"}\n'
                    '{"input": "30,100,93", "output": "23"}\n')
    assert [(r["numbers"], r["target"]) for r in tasks.read_records(str(path), "countdown")] == [
        ([30, 100, 93], 23), ([4, 5, 6], 15), ([30, 100, 93], 23)]


def test_code_rows_with_non_text_fields_are_refused(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"question": ["write f"], "tests": ["assert f() == 1"]}) + "\n")
    with pytest.raises(DataError, match=r"rows\.jsonl row 1: the question must be text, got list"):
        tasks.read_records(str(path), "code")
    path.write_text(json.dumps({"question": "write f", "tests": ["assert f() == 1"], "tests_in_prompt": "no"}) + "\n")
    with pytest.raises(DataError, match=r"row 1: 'tests_in_prompt' must be true or false, got 'no'"):
        tasks.read_records(str(path), "code")


def test_a_garbage_parquet_file_is_one_line(tmp_path):
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1 this is not parquet at all" * 10)
    with pytest.raises(DataError, match=r"data\.parquet: not a readable Parquet file \(.*\); re-export it"):
        tasks.read_records(str(path), "gsm8k")
