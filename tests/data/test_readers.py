"""Readers: every file format and source layout into the task schema; errors name file and row; the
shipped GSM8K-style and MBPP-style files are checked against independent oracles (their own
calculator annotations; their reference solutions run against their tests in the sandbox)."""

import csv
import json
import re
from fractions import Fraction

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dlrl_jax import tasks
from dlrl_jax.data import readers
from dlrl_jax.rewards.countdown import evaluate as safe_evaluate

SUDOKU = [{"Puzzle": "1200340000000000", "Solution": "1234341221434321"},
          {"Puzzle": "0000340021434321", "Solution": "1234341221434321"}]
EXPECTED = [{"puzzle": "1200340000000000", "solution": "1234341221434321"},
            {"puzzle": "0000340021434321", "solution": "1234341221434321"}]


def _write(tmp_path, ext, rows):
    path = tmp_path / f"data.{ext}"
    if ext == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif ext == "json":
        path.write_text(json.dumps(rows))
    elif ext == "csv":
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


@pytest.mark.parametrize("ext", ["jsonl", "json", "csv", "parquet"])
def test_every_format_reads_the_same_records(tmp_path, ext):
    assert tasks.read_records(_write(tmp_path, ext, SUDOKU), "sudoku") == EXPECTED


def test_source_layouts_map_to_the_task_schema(tmp_path):
    gsm = tasks.read_records(_write(tmp_path, "jsonl", [{"question": "q?", "answer": "2 * 3 = 6\n#### 1,236"}]), "gsm8k")
    assert gsm == [{"question": "q?", "answer": "1236", "solution": "2 * 3 = 6"}]
    math = tasks.read_records(_write(tmp_path, "json", [{"problem": "p", "answer": "\\frac{1}{2}", "solution": "s"}]),
                                "math")
    assert math == [{"question": "p", "answer": "\\frac{1}{2}", "solution": "s"}]
    cd = tasks.read_records(_write(tmp_path, "parquet", [{"nums": [3, 5, 7], "target": 22}]), "countdown")
    assert cd == [{"numbers": [3, 5, 7], "target": 22}]
    he = tasks.read_records(_write(tmp_path, "jsonl", [{"prompt": "def f(x):\n", "entry_point": "f",
                                                          "test": "def check(c):\n    assert c(1) == 2\n",
                                                          "canonical_solution": "    return x + 1\n"}]), "code")[0]
    assert he["tests"] == ["def check(c):\n    assert c(1) == 2\n\ncheck(f)\n"] and he["tests_in_prompt"] is False
    mbpp = tasks.read_records(_write(tmp_path, "jsonl", [{"text": "t", "code": "c", "test_list": ["assert 1"],
                                                            "test_setup_code": "import math"}]), "code")[0]
    assert mbpp["tests"] == ["import math\nassert 1"] and mbpp["question"] == "t" and mbpp["solution"] == "c"


def test_errors_name_the_file_and_row(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "a", "answer": "1"}\n{"question": oops}\n')
    with pytest.raises(readers.DataError, match=r"bad.jsonl line 2: not valid JSON"):
        tasks.read_records(str(bad), "gsm8k")
    missing = _write(tmp_path, "jsonl", [{"question": "a", "answer": "1"}, {"question": "b"}])
    with pytest.raises(readers.DataError, match=r"data.jsonl row 2: missing 'answer'"):
        tasks.read_records(missing, "gsm8k")
    short = _write(tmp_path, "json", [{"puzzle": "123", "solution": "1234341221434321"}])
    with pytest.raises(readers.DataError, match=r"row 1: a 4x4 sudoku needs 16-digit"):
        tasks.read_records(short, "sudoku")
    with pytest.raises(readers.DataError, match=r"unsupported extension '.txt'"):
        (tmp_path / "x.txt").write_text("x")
        tasks.read_records(str(tmp_path / "x.txt"), "gsm8k")
    with pytest.raises(readers.DataError, match="no such file"):
        tasks.read_records(str(tmp_path / "absent.jsonl"), "gsm8k")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(readers.DataError, match="no records"):
        tasks.read_records(str(empty), "gsm8k")
    with pytest.raises(readers.DataError, match="unknown task 'chess'"):
        tasks.read_records(str(empty), "chess")


def test_hub_names_without_datasets_say_what_to_install():
    pytest.importorskip("pyarrow")
    try:
        import datasets  # noqa: F401
        pytest.skip("datasets is installed here")
    except ImportError:
        pass
    with pytest.raises(readers.DataError, match=r"pip install 'dlrl_jax\[hub\]'"):
        tasks.read_records("hf:openai/gsm8k:main:test", "gsm8k")


_CALC = re.compile(r"<<([^=>]+)=([^>]+)>>")


def test_shipped_gsm8k_file_is_arithmetically_consistent():
    raw = [json.loads(line) for line in open(readers.packaged_file("gsm8k_mini.jsonl"))]
    records = tasks.read_records(readers.packaged_file("gsm8k_mini.jsonl"), "gsm8k")
    assert len(records) >= 24
    for row, rec in zip(raw, records):
        steps = _CALC.findall(row["answer"])
        assert steps, row["question"]
        for expression, value in steps:  # each calculator annotation, re-evaluated by the safe parser
            assert safe_evaluate(expression)[0] == Fraction(value), (expression, value)
        assert Fraction(steps[-1][1]) == Fraction(rec["answer"])  # the final answer is the last result
        # and the reward gives full correctness for it
        assert tasks.score("gsm8k", [f"<answer>{rec['answer']}</answer>"], [rec], correctness_only=True)[0] == 1.0


# slow (15-45 s on 2 cores): the sandbox's verdicts are tested in the suite (tests/rewards/test_sandbox.py)
@pytest.mark.slow
def test_shipped_mbpp_solutions_pass_their_own_tests_in_the_sandbox():
    records = tasks.read_records(readers.packaged_file("mbpp_mini.jsonl"), "code")
    assert len(records) >= 20
    completions = [f"<answer>\n```python\n{r['solution']}\n```\n</answer>" for r in records]
    assert tasks.score("code", completions, records, correctness_only=True).tolist() == [1.0] * len(records)
    wrong = [f"<answer>\n```python\n{r['solution']}\n```\n</answer>" for r in records[1:] + records[:1]]
    assert tasks.score("code", wrong, records, correctness_only=True).sum() == 0.0
