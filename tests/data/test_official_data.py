"""The papers' own data sets, read from small files written here in each official schema (the columns
the official loaders read, see readers.HUB_SOURCES): Countdown-Tasks-3to4 and d1's Countdown test
file, d1's Sudoku CSV, MATH training rows that carry only a worked solution, KodCode-Light-RL-10K and
ESPO's AceCode file; and the generators' defaults against the official test sets' distributions."""

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dlrl_jax import tasks
from dlrl_jax.data import generate_countdown, generate_sudoku, readers
from tests.data.test_countdown_gen import search
from tests.data.test_sudoku_gen import brute_force


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_countdown_hub_rows_keep_the_official_three_number_subset(tmp_path, monkeypatch):
    rows = [{"target": 24, "nums": [2, 3, 4]}, {"target": 98, "nums": [44, 19, 35, 1]},
            {"target": 5, "nums": [1, 2, 3]}]
    path = tmp_path / "countdown.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    # a local copy is read as it is; the hub name gets the official loaders' filter len(nums) == 3
    assert len(tasks.read_records(str(path), "countdown")) == 3
    monkeypatch.setattr(readers, "_read_hub", lambda source: pq.read_table(path).to_pylist())  # no network here
    assert tasks.read_records("hf:Jiayi-Pan/Countdown-Tasks-3to4:train", "countdown") == [
        {"numbers": [2, 3, 4], "target": 24}, {"numbers": [1, 2, 3], "target": 5}]


def test_d1_countdown_test_file(tmp_path):
    path = _jsonl(tmp_path / "countdown_cd3_test.jsonl", [{"input": "30,100,93", "output": "23"},
                                                          {"input": "83,18,75", "output": "10"}])
    assert tasks.read_records(path, "countdown") == [{"numbers": [30, 100, 93], "target": 23},
                                                       {"numbers": [83, 18, 75], "target": 10}]
    bad = _jsonl(tmp_path / "bad.jsonl", [{"input": "30,100,93", "output": "23"}, {"input": "3;4;5", "output": "6"}])
    with pytest.raises(readers.DataError, match=r"bad.jsonl row 2: d1's Countdown rows hold 'input'"):
        tasks.read_records(bad, "countdown")


def test_d1_sudoku_csv_keeps_leading_zeros(tmp_path):
    path = tmp_path / "4x4_test_sudoku.csv"
    with open(path, "w", newline="") as f:  # the first two rows of d1's dataset/4x4_test_sudoku.csv
        w = csv.writer(f)
        w.writerows([["Puzzle", "Solution"], ["3102200002100320", "3142243142131324"],
                     ["0140432014020000", "2143432114323214"]])
    records = tasks.read_records(str(path), "sudoku")
    assert records == [{"puzzle": "3102200002100320", "solution": "3142243142131324"},
                       {"puzzle": "0140432014020000", "solution": "2143432114323214"}]
    assert [brute_force(r["puzzle"]) for r in records] == [[r["solution"]] for r in records]
    assert tasks.score("sudoku", ["<answer>\n2143432114323214\n</answer>"], records[1:]).tolist() == [1.0]


def test_math_training_rows_take_the_answer_from_the_solution(tmp_path):
    rows = [{"problem": "Half of one?", "solution": "It is $\\boxed{\\frac{1}{2}}$.", "level": "Level 1", "type": "A"},
            {"problem": "p2", "solution": "First $\\boxed{1}$, finally $\\boxed{\\{2, 3\\}}$.", "level": "",
             "type": ""},
            {"problem": "p3", "solution": "So the answer is $\\boxed 5$.", "level": "", "type": ""}]
    path = tmp_path / "math_train.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert [r["answer"] for r in tasks.read_records(str(path), "math")] == ["\\frac{1}{2}", "\\{2, 3\\}", "5"]
    # MATH-500 rows carry their own answer, which is kept
    own = _jsonl(tmp_path / "math500.jsonl", [{"problem": "p4", "solution": "$\\boxed{7.0}$", "answer": "7"}])
    assert tasks.read_records(own, "math")[0]["answer"] == "7"
    bad = _jsonl(tmp_path / "m.jsonl", [{"problem": "p", "solution": "no box here"}])
    with pytest.raises(readers.DataError, match=r"m.jsonl row 1: missing 'answer'.*'solution' ending in"):
        tasks.read_records(bad, "math")


KOD_TEST = """from solution import add_pair

def _helper():
    return 3

def test_small():
    assert add_pair(1, 2) == _helper()

def test_negative():
    assert add_pair(-1, -2) == -3
"""


def test_kodcode_rows_give_one_test_per_test_function_and_score_in_the_sandbox(tmp_path):
    rows = [{"question": "Add two numbers.", "solution": "def add_pair(a, b):\n    return a + b\n", "test": KOD_TEST,
             "test_info": [{"function_name": "add_pair"}], "gpt_difficulty": "easy"}]
    path = tmp_path / "kodcode.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    [record] = tasks.read_records(str(path), "code")
    assert record["entry_point"] == "add_pair" and record["test_file"] == KOD_TEST
    # EGSPO's reward counts every zero-argument function, the helper too (it passes whenever it runs)
    assert record["tests"] == [KOD_TEST + f"\n{name}()\n" for name in ("_helper", "test_small", "test_negative")]
    right = "<answer>\n```python\ndef add_pair(a, b):\n    return a + b\n```\n</answer>"
    half = "<answer>\n```python\ndef add_pair(a, b):\n    return abs(a + b)\n```\n</answer>"  # fails test_negative
    # fraction of the three functions passing + 0.5 x format 1.0 (a python block inside <answer>)
    assert tasks.score("code", [right, half], [record, record], reward_set="dlrl").tolist() == pytest.approx([1.5, 2 / 3 + 0.5])
    one = "from solution import sq\n\ndef test_sq():\n    assert sq(2) == 4\n    assert sq(-3) == 9\n"
    single = tasks.get("code").normalize({"question": "q", "solution": "s", "test": one}, "row")
    assert single["tests"] == ["from solution import sq\nassert sq(2) == 4",
                               "from solution import sq\nassert sq(-3) == 9"]


def test_acecode_rows_are_assert_statements(tmp_path):
    rows = [{"id": "a1", "source": "oss", "question": "Write double(x).", "test_cases": ["assert double(2) == 4",
                                                                                       "assert double(0) == 0"]},
            {"id": "a2", "source": "evol", "question": "Please complete:\n```\ndef f():\n```\n",
             "test_cases": ["assert f() is None"]}]
    records = tasks.read_records(_jsonl(tmp_path / "acecode_hard.jsonl", rows), "code")
    assert records[0]["tests"] == ["assert double(2) == 4", "assert double(0) == 0"]
    # ESPO appends the first test case to the prompt unless the question already holds a fenced block
    assert [r["tests_in_prompt"] for r in records] == [True, False]
    bad = _jsonl(tmp_path / "bad.jsonl", [{"question": "q", "test_cases": []}])
    with pytest.raises(readers.DataError, match=r"bad.jsonl row 1: 'test_cases' must be a non-empty list"):
        tasks.read_records(bad, "code")


def test_known_hub_sets_are_checked_against_the_task():
    readers.check_source("hf:ankner/math-500:train", "math")
    readers.check_source("hf:some/unknown-set:train", "math")  # unknown: checked when read
    with pytest.raises(readers.DataError, match=r"are countdown data, not math; use one of .*hf:ankner/math-500"):
        readers.check_source("hf:Jiayi-Pan/Countdown-Tasks-3to4:train", "math")


def test_generator_defaults_follow_the_official_test_sets():
    # d1's countdown_cd3_test.jsonl: 3 numbers in 1..100, targets in 1..100
    puzzles = generate_countdown(0, 200)
    assert all(len(p["numbers"]) == 3 and all(1 <= x <= 100 for x in p["numbers"]) for p in puzzles)
    targets = [p["target"] for p in puzzles]
    assert min(targets) >= 1 and max(targets) <= 100 and max(targets) > 50 and min(targets) < 20
    assert all(search(p["numbers"], p["target"]) for p in puzzles[:40])
    # d1's 4x4_test_sudoku.csv: every puzzle has 8 blanks
    assert all(r["puzzle"].count("0") == 8 for r in generate_sudoku(0, 20))
