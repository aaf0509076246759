"""`dlrl-jax rescore` on small generation files written here: d1's JSON format (several files of one
setup summed as parse_and_get_acc.py sums them; Sudoku micro-averaged over blank cells) and
`dlrl-jax eval` rows; malformed files stop with one line naming the file and the entry."""

import json

import pytest

from dlrl_jax import cli

PUZZLE, SOLUTION = "4320004330100004", "4321124334122134"  # 8 blanks
PUZZLE4 = "4321124334120000"  # 4 blanks, the same solution


def _d1_file(path, entries):
    path.write_text(json.dumps({"generations": entries, "metrics": {}, "gen_length": 128}))
    return str(path)


def _sudoku(puzzle, text):
    return {"question": f"Solve the following Sudoku puzzle: {puzzle}\n", "prompt_input": "...",
            "generations": text, "ground_truth": SOLUTION}


def _run(capsys, *args):
    code = cli.main(["rescore", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_sudoku_files_of_one_setup_sum_cells(tmp_path, capsys):
    first = _d1_file(tmp_path / "sudoku_instruct_128_64_0_generations.json",
                     [_sudoku(PUZZLE, "<answer>\n4321124334122134\n</answer><|eot_id|>")])  # 8 of 8
    second = _d1_file(tmp_path / "sudoku_instruct_128_64_1_generations.json",
                      [_sudoku(PUZZLE4, "<answer>4321124334122100</answer><|eot_id|>")])  # 2 of 4
    code, out, _ = _run(capsys, "--protocol", "d1", "--task", "sudoku", first, second, "--json")
    assert code == 0
    # cells summed over the set: 10 / 12 (the mean of per-puzzle fractions would be 75%)
    assert json.loads(out.strip().splitlines()[-1]) == {"correct": 10, "total": 12, "accuracy": pytest.approx(250 / 3)}
    assert f"{first}: 8 / 8" in out and f"{second}: 2 / 4" in out


def test_gsm8k_file_counts_every_entry(tmp_path, capsys):
    path = _d1_file(tmp_path / "gsm8k_instruct_256_128_0_generations.json", [
        {"question": "a", "generations": "<answer>\\boxed{18}</answer><|eot_id|>", "ground_truth": 18.0},
        {"question": "b", "generations": "\\boxed{17} \\boxed{18}", "ground_truth": 18.0},  # first box: 17
        {"question": "c", "generations": "\\boxed{-3}", "ground_truth": None},  # d1 saves None: wrong, counted
    ])
    code, out, _ = _run(capsys, "--protocol", "egspo", "--task", "gsm8k", path, "--json")
    assert code == 0 and json.loads(out.strip().splitlines()[-1]) == {"correct": 1, "total": 3,
                                                                      "accuracy": pytest.approx(100 / 3)}


def test_countdown_d1_and_espo_differ_on_an_unboxed_answer(tmp_path, capsys):
    path = _d1_file(tmp_path / "countdown_instruct_128_64_0_generations.json", [
        {"question": "Numbers: [49, 55, 53]\nTarget: 51", "generations": "<answer>49 + 55 - 53</answer>",
         "ground_truth": [[49, 55, 53], 51]},
        {"question": "Numbers: [1, 2, 3]\nTarget: 6", "generations": "\\boxed{1 \\times 2 \\times 3 = 6}",
         "ground_truth": [[1, 2, 3], 6]},
    ])
    assert json.loads(_run(capsys, "--protocol", "d1", "--task", "countdown", path, "--json")[1].splitlines()[-1]) == \
        {"correct": 1, "total": 2, "accuracy": 50.0}
    assert json.loads(_run(capsys, "--protocol", "espo", "--task", "countdown", path, "--json")[1].splitlines()[-1]) \
        == {"correct": 2, "total": 2, "accuracy": 100.0}


@pytest.mark.parametrize("content,message", [
    ({"generations": [{"question": "a", "generations": "x", "ground_truth": 1.0},
                      {"question": "b", "generations": "x"}]},
     "generations[1]: the entry has no 'ground_truth'"),
    ({"generations": [{"question": "a", "ground_truth": 1.0}]}, "generations[0]: needs 'generations'"),
    ({"generations": [{"question": "a", "generations": "x", "ground_truth": "18"}]},
     "generations[0]: 'ground_truth' must be a number"),
    ([1, 2], "a d1 generation file is an object whose 'generations' is a list"),
])
def test_malformed_d1_files_name_file_and_entry(tmp_path, capsys, content, message):
    path = tmp_path / "gsm8k_x_0_generations.json"
    path.write_text(json.dumps(content))
    code, _, err = _run(capsys, "--protocol", "d1", "--task", "gsm8k", str(path))
    assert code == 2 and f"dlrl-jax rescore: error: {path}" in err and message in err and len(err.splitlines()) == 1


def test_unreadable_json_and_mixed_setups_are_errors(tmp_path, capsys):
    bad = tmp_path / "math500_instruct_128_64_0_generations.json"
    bad.write_text('{"generations": [')
    code, _, err = _run(capsys, "--protocol", "d1", "--task", "math", str(bad))
    assert code == 2 and f"{bad} line 1 column 18: not valid JSON" in err
    a = _d1_file(tmp_path / "math500_instruct_128_64_1_generations.json", [])
    b = _d1_file(tmp_path / "math500_instruct_256_128_0_generations.json", [])
    code, _, err = _run(capsys, "--protocol", "d1", "--task", "math", a, b)
    assert code == 2 and "different setups: math500_instruct_128_64" in err
    code, _, err = _run(capsys, "--protocol", "espo", "--task", "math", a)
    assert code == 2 and "protocol 'espo' has no math parser" in err


def _eval_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_eval_rows_rescored_with_their_records(tmp_path, capsys):
    record = {"question": "q", "answer": "18", "solution": None}
    path = _eval_rows(tmp_path / "eval_gsm8k_128.jsonl", [
        {"index": 0, "prompt": "p", "completion": "<answer>\\boxed{18}</answer>", "record": record},
        {"index": 1, "prompt": "p", "completion": "<answer>18</answer>", "record": record},
    ])
    code, out, err = _run(capsys, "--protocol", "d1", "--task", "gsm8k", path, "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["correct"] == 2  # a box, then the <answer>'s number
    assert "no 'raw_completion'" in err  # the official parser read text with special tokens dropped: said
    code, out, _ = _run(capsys, "--protocol", "dlrl", "--task", "gsm8k", path, "--json")
    assert json.loads(out.splitlines()[-1])["correct"] == 1  # dlrl reads the tag's text: "\\boxed{18}" != "18"


def test_eval_rows_of_a_plain_prompt_are_wrapped_for_dlrl(tmp_path, capsys):
    (tmp_path / "eval_meta.json").write_text(json.dumps({"prompt_style": "plain"}))
    path = _eval_rows(tmp_path / "eval_countdown_16.jsonl", [
        {"index": 0, "prompt": "49 55 53 = 51", "completion": "49 + 55 - 53", "record": {"numbers": [49, 55, 53],
                                                                                          "target": 51}}])
    code, out, _ = _run(capsys, "--protocol", "dlrl", "--task", "countdown", path, "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["correct"] == 1  # as eval scores it: <answer>...</answer>


def test_old_eval_rows_without_a_record_are_refused(tmp_path, capsys):
    path = _eval_rows(tmp_path / "eval_sudoku_16.jsonl", [{"index": 0, "prompt": "p", "completion": "1234"}])
    code, _, err = _run(capsys, "--protocol", "dlrl", "--task", "sudoku", path)
    assert code == 2 and f"{path} line 1: the row holds no ground truth ('record')" in err
