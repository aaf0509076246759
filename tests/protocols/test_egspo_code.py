"""HumanEval and MBPP (sanitized, with test_imports) under `--protocol egspo` (the closest to EGSPO's
intended evaluation: vishnutez/egspo-dllm-rl eval/human_eval.py, mbpp.py, parser_json.py, which cannot
run as published) and `--protocol dlrl`: tiny handwritten files in the official layouts, completions
right and wrong scored through the sandbox against verdicts worked by hand from the official code
(each comment says which line decides), EGSPO's prompts typed in from its files, the one-line errors,
EGSPO-format generation files through `dlrl-jax rescore`, and one cheap `dlrl-jax eval` on the tiny model.
Sandbox calls are batched: one batch per scoring call below."""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dlrl_jax import cli, models, tasks
from dlrl_jax.data.readers import DataError
from dlrl_jax.protocols import eval_prompts, eval_protocol, parsers

HE_ADD = {"task_id": "HumanEval/0", "entry_point": "add", "canonical_solution": "    return x + y\n",
          "prompt": 'def add(x: int, y: int) -> int:\n    """Add two numbers x and y\n    >>> add(2, 3)\n    5\n    """\n',
          "test": "\n\nMETADATA = {\n    'author': 'jt',\n    'dataset': 'test'\n}\n\n\ndef check(candidate):\n"
                  "    assert candidate(2, 3) == 5\n    assert candidate(-4, 4) == 0\n"}
# a helper defined before the entry point, as in HumanEval/38 and /50; the test calls the helper too
HE_SHIFT = {"task_id": "HumanEval/50", "entry_point": "decode_shift", "canonical_solution": "    ...\n",
            "prompt": 'def encode_shift(s: str):\n    """\n    returns encoded string by shifting every character by 1.\n'
                      '    """\n    return "".join(chr(ord(ch) + 1) for ch in s)\n\n\ndef decode_shift(s: str):\n'
                      '    """\n    takes as input string encoded with encode_shift function. Returns decoded string.\n'
                      '    """\n',
            "test": "\n\ndef check(candidate):\n    for word in ['abc', 'xyz']:\n"
                    "        assert candidate(encode_shift(word)) == word\n"}
MB_AREA = {"task_id": 7, "prompt": "Write a function to find the area of a circle of radius r.",
           "code": "import math\ndef circle_area(r):\n    return math.pi * r * r",
           "test_list": ["assert isclose(circle_area(2), 12.566, rel_tol=1e-3)",
                         "assert isclose(circle_area(1), 3.14159, rel_tol=1e-3)"],
           "test_imports": ["from math import isclose"]}
MB_REV = {"task_id": 8, "prompt": "Write a function to reverse a list.", "code": "def rev(xs):\n    return xs[::-1]",
          "test_list": ["assert rev([1, 2]) == [2, 1]", "assert rev([]) == []"], "test_imports": []}


def _block(code: str) -> str:
    return f"<reasoning>Let me think.</reasoning>\n<answer>\n```python\n{code}```\n</answer><|eot_id|>"


ADD = "def add(x, y):\n    return x + y\n"
DECODE = 'def decode_shift(s: str):\n    return "".join(chr(ord(ch) - 1) for ch in s)\n'
ENCODE = 'def encode_shift(s: str):\n    return "".join(chr(ord(ch) + 1) for ch in s)\n'
AREA = "import math\ndef circle_area(r):\n    return math.pi * r * r\n"

# (record, generation, EGSPO's verdict, dlrl's verdict)
CASES = [
    ("add", _block(ADD), 1, 1),
    ("add", _block("def add(x, y):\n    return x - y\n"), 0, 0),                  # add(2, 3) = -1
    # EGSPO checks the FIRST def (parser_json.py `def\s+(\w+)\s*\(`): _is_int(2, 3) is a TypeError;
    # dlrl checks the entry point
    ("add", _block("def _is_int(v):\n    return isinstance(v, int)\n\n" + ADD), 0, 1),
    ("add", f"<answer>\n```py\n{ADD}```\n</answer>", 0, 1),                        # EGSPO needs "```python\n"
    # EGSPO reads the first block anywhere (add -> 0 fails add(2, 3) == 5); dlrl the last one in <answer>
    ("add", f"```python\ndef add(x, y):\n    return 0\n```\n" + _block(ADD), 0, 1),
    # the official exit-status check counts this right (exit 0 before the tests run); the judge does not
    ("add", _block("import sys\nsys.exit(0)\ndef add(x, y):\n    return x - y\n"), 0, 0),
    ("add", _block("add = lambda x, y: x + y\n"), 0, 1),                            # no `def`: EGSPO runs nothing
    ("add", _block(""), 0, 0),                                                      # empty block: `if prog:` fails
    ("add", "<answer>\n```python\n" + ADD, 0, 0),                                   # unclosed fence: no block
    ("add", "def add(x, y):\n    return x + y", 0, 0),                              # no fence
    # the test calls encode_shift, which lives in the prompt, not in the program: NameError for both
    ("shift", _block(DECODE), 0, 0),
    ("shift", _block(ENCODE + "\n" + DECODE), 0, 1),                                # EGSPO checks encode_shift
    ("shift", _block(DECODE + "\n" + ENCODE), 1, 1),
    ("area", _block(AREA), 1, 1),                                                   # isclose from test_imports
    # 2*pi*r equals pi*r*r at r = 2 but not at r = 1: pass@1 needs every assert
    ("area", _block("import math\ndef circle_area(r):\n    return 2 * math.pi * r\n"), 0, 0),
    ("area", _block("import math\ndef area(r):\n    return math.pi * r * r\n"), 0, 0),  # the asserts call circle_area
    ("rev", _block("def rev(xs):\n    return xs[::-1]\n"), 1, 1),
    # an object whose __eq__ is always True passes the official in-process assert; the judge refuses it
    ("rev", _block("class _Any:\n    def __eq__(self, other):\n        return True\n\ndef rev(xs):\n"
                   "    return _Any()\n"), 0, 0),
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("code")
    he = tasks.read_records(_jsonl(folder / "humaneval.jsonl", [HE_ADD, HE_SHIFT]), "code")
    mbpp_path = folder / "mbpp_sanitized_test.parquet"
    pq.write_table(pa.Table.from_pylist([MB_AREA, MB_REV]), mbpp_path)
    mb = tasks.read_records(str(mbpp_path), "code")
    return {"add": he[0], "shift": he[1], "area": mb[0], "rev": mb[1]}


def test_humaneval_and_mbpp_rows_become_code_records(records):
    add, area, rev = records["add"], records["area"], records["rev"]
    assert add["tests"] == [HE_ADD["test"] + "\ncheck(add)\n"] and add["check_code"] == HE_ADD["test"]
    assert (add["benchmark"], add["entry_point"], add["question"], add["tests_in_prompt"]) == (
        "humaneval", "add", HE_ADD["prompt"], False)
    # each assert with the imports it needs in front (read back from Parquet)
    assert area["tests"] == ["from math import isclose\nassert isclose(circle_area(2), 12.566, rel_tol=1e-3)",
                             "from math import isclose\nassert isclose(circle_area(1), 3.14159, rel_tol=1e-3)"]
    assert (area["benchmark"], area["question"], area["test_imports"], area["solution"]) == (
        "mbpp", MB_AREA["prompt"], ["from math import isclose"], MB_AREA["code"])
    assert rev["tests"] == MB_REV["test_list"] and rev["test_imports"] == []


@pytest.mark.parametrize("row,message", [
    ({**HE_ADD, "entry_point": None}, "humaneval.jsonl row 2: missing 'entry_point'"),
    ({**HE_ADD, "test": "assert add(1, 1) == 2\n"}, "humaneval.jsonl row 2: HumanEval 'test' must define `def check"),
    ({**HE_ADD, "entry_point": "add me"}, "humaneval.jsonl row 2: 'entry_point' must be a Python function name"),
    ({**MB_AREA, "test_imports": "import math"}, "humaneval.jsonl row 2: 'test_imports' must be a list of strings"),
    ({**MB_AREA, "test_list": []}, "humaneval.jsonl row 2: 'test_list' is empty"),
    ({**MB_AREA, "prompt": None}, "humaneval.jsonl row 2: missing 'prompt' \\(MBPP sanitized\\)"),
])
def test_malformed_rows_are_one_line_naming_file_and_row(tmp_path, row, message):
    with pytest.raises(DataError, match=message):
        tasks.read_records(_jsonl(tmp_path / "humaneval.jsonl", [HE_ADD, row]), "code")


def test_egspo_questions_and_ground_truths_as_its_dataset_classes_build_them(records):
    # parsers.py extract_human_eval_prompt: the first docstring, lines stripped, no signature
    assert eval_prompts.question_text("code", records["add"]) == "Add two numbers x and y\n>>> add(2, 3)\n5"
    # ... the helper's docstring where the prompt defines a helper first
    assert eval_prompts.question_text("code", records["shift"]) == (
        "returns encoded string by shifting every character by 1.")
    assert eval_prompts.humaneval_docstring('def f():\n    """Return 1."""\n') == "Return 1."  # one line, > 6 chars
    assert eval_prompts.humaneval_docstring("def f():\n    '''Two\n    lines.'''\n    return 2\n") == "Two\nlines."
    assert eval_prompts.humaneval_docstring("def f():\n    return 3\n") == ""
    # mbpp.py __getitem__: the prompt, "\n\n Your code should pass the following tests:\n\n", the asserts
    assert eval_prompts.question_text("code", records["area"]) == (
        "Write a function to find the area of a circle of radius r.\n\n Your code should pass the following tests:"
        "\n\nassert isclose(circle_area(2), 12.566, rel_tol=1e-3)\nassert isclose(circle_area(1), 3.14159, "
        "rel_tol=1e-3)")
    # typed from eval/mbpp.py MBPP_SYSTEM_PROMPT: four backticks on its first line, `</answer>" ` at its end
    assert eval_protocol.get("egspo", "code").user_message("code", records["rev"]) == (
        "You are a coding expert. You will be given a coding problem to solve. Solve it step by step. Ensure you "
        "wrap the answer in ```python````\n\nRespond in the following format:\n<reasoning>\nYour reasoning here\n"
        "</reasoning>\n<answer>\n```python\nYour code here\n```\n</answer>\" \n\n\nWrite a function to reverse a "
        "list.\n\n Your code should pass the following tests:\n\nassert rev([1, 2]) == [2, 1]\nassert rev([]) == []")
    # the saved ground_truth: HumanEval's test; MBPP's "\n".join(test_imports) + "\n\n" + "\n".join(test_list)
    assert eval_protocol.ground_truth("code", records["add"]) == HE_ADD["test"]
    assert eval_protocol.ground_truth("code", records["area"]) == (
        "from math import isclose\n\nassert isclose(circle_area(2), 12.566, rel_tol=1e-3)\n"
        "assert isclose(circle_area(1), 3.14159, rel_tol=1e-3)")
    assert eval_protocol.ground_truth("code", records["rev"]) == "\n\nassert rev([1, 2]) == [2, 1]\nassert rev([]) == []"


def test_pass_at_1_through_the_sandbox_against_hand_worked_verdicts(records):
    texts = [text for _, text, _, _ in CASES]
    chosen = [records[name] for name, _, _, _ in CASES]
    egspo = parsers.score_many("egspo", "code", texts, chosen)
    dlrl = parsers.score_many("dlrl", "code", texts, chosen)
    assert egspo == [(e, 1) for _, _, e, _ in CASES]
    assert dlrl == [(d, 1) for _, _, _, d in CASES]


def _d1_file(path, entries):
    path.write_text(json.dumps({"generations": entries}))
    return str(path)


def _rescore(capsys, *args):
    code = cli.main(["rescore", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_egspo_generation_files_rescore(tmp_path, capsys, records):
    """EGSPO's eval.py would save {question, generations, ground_truth}; HumanEval's ground truth is the
    test (no entry point), MBPP's the imports and asserts."""
    he = _d1_file(tmp_path / "humaneval_instruct_128_64_0_generations.json", [
        {"question": "Add", "generations": text, "ground_truth": HE_ADD["test"]}
        for name, text, _, _ in CASES if name == "add"][:5])
    code, out, _ = _rescore(capsys, "--protocol", "egspo", "--task", "code", he, "--json")
    assert code == 0 and json.loads(out.splitlines()[-1]) == {"correct": 1, "total": 5, "accuracy": 20.0}
    code, _, err = _rescore(capsys, "--protocol", "dlrl", "--task", "code", he)
    assert code == 2 and f"{he} generations[0]: a HumanEval entry" in err and "--protocol egspo" in err
    mbpp_truth = eval_protocol.ground_truth("code", records["area"])
    mb = _d1_file(tmp_path / "mbpp_instruct_128_64_0_generations.json", [
        {"question": "Area", "generations": text, "ground_truth": mbpp_truth}
        for name, text, _, _ in CASES if name == "area"])
    for protocol in ("egspo", "dlrl"):  # the first right, the other two wrong, under both
        code, out, _ = _rescore(capsys, "--protocol", protocol, "--task", "code", mb, "--json")
        assert code == 0 and json.loads(out.splitlines()[-1])["correct"] == 1
    bad = _d1_file(tmp_path / "mbpp_x_0_generations.json", [
        {"question": "q", "generations": "x", "ground_truth": mbpp_truth},
        {"question": "q", "generations": "x", "ground_truth": 5}])
    code, _, err = _rescore(capsys, "--protocol", "egspo", "--task", "code", bad)
    assert code == 2 and f"{bad} generations[1]: 'ground_truth' must be the test text" in err
    assert len(err.strip().splitlines()) == 1


def test_eval_protocol_egspo_code_end_to_end(model_dir, tmp_path, capsys):
    data = _jsonl(tmp_path / "humaneval.jsonl", [HE_ADD, HE_SHIFT])
    out = str(tmp_path / "ev")
    argv = ["eval", "--model", model_dir, "--task", "code", "--protocol", "egspo", "--data", data,
            "--gen-lengths", "8", "--block-length", "8", "--batch-size", "2", "--world-size", "1", "--out", out,
            "--no-progress"]
    assert cli.main(argv) == 0
    rows = [json.loads(line) for line in open(os.path.join(out, "eval_code_8.jsonl"))]
    message = eval_protocol.get("egspo", "code").user_message("code", rows[0]["record"])
    assert rows[0]["prompt_input"] == "<|user|>" + message + "<|assistant|><reasoning>"
    assert message.endswith("</answer>\" \n\n\nAdd two numbers x and y\n>>> add(2, 3)\n5")
    assert [r["ground_truth"] for r in rows] == [HE_ADD["test"], HE_SHIFT["test"]]
    # 8 generated characters cannot hold "```python\n" and a closing fence: nothing runs, both wrong
    assert [(r["correct"], r["total"]) for r in rows] == [(0, 1), (0, 1)]
    code, text, _ = _rescore(capsys, "--protocol", "egspo", "--task", "code", os.path.join(out, "eval_code_8.jsonl"),
                             "--json")
    assert code == 0 and json.loads(text.splitlines()[-1]) == {"correct": 0, "total": 2, "accuracy": 0.0}
    # a code file that is neither HumanEval nor MBPP: refused under egspo, naming the row
    other = _jsonl(tmp_path / "other.jsonl", [{"question": "q", "tests": ["assert f() == 1"]}])
    assert cli.main([a if a != data else other for a in argv[:-3]] + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{other} row 1: --protocol egspo evaluates HumanEval or MBPP rows" in err
