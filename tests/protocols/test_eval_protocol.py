"""`dlrl-jax eval --protocol d1|egspo|espo`: the papers' evaluation prompts (expected strings typed in
from the official files named at each case), the Sudoku/Countdown subsample against numpy's own draw,
the official batch grouping, ground truths in d1's generation-file formats, the one-line errors (a
missing test file, a paper whose numbers no released code computes, flags a protocol fixes), and one
cheap end-to-end `eval --protocol d1` on the tiny model."""

import dataclasses
import json
import os

import numpy as np
import pytest

from dlrl_jax import checkpoints, cli, models
from dlrl_jax.checkpoints import read_config
from dlrl_jax.data.sudoku import generate_sudoku
from dlrl_jax.models.tokenizer import Tokenizer, write_char_tokenizer
from dlrl_jax.protocols import eval_protocol
from tests.models.test_real_tokenizers import LLADA, _llada_folder

COUNTDOWN = {"numbers": [30, 100, 93], "target": 23}   # d1 dataset/countdown_cd3_test.jsonl, first row
SUDOKU = {"puzzle": "3102200002100320", "solution": "3142243142131324"}  # d1 dataset/4x4_test_sudoku.csv, row 1
GSM8K = {"question": "Janet has 3 ducks. How many?", "answer": "3", "solution": None}
MATH = {"question": "What is $1+1$?", "answer": "2", "solution": None}

# Typed from d1 eval/gsm8k.py GSM_SYSTEM_PROMPT (= vishnutez/egspo-dllm-rl eval/gsm8k.py); note the space
# after "\boxed{}." on its first line.
D1_GSM = ("You are a math expert. You will be given a question to solve. Solve it step by step. Wrap the final "
          "answer in a \\boxed{}. \nRespond in the following format:\n<reasoning>\nYour reasoning here\n"
          "</reasoning>\n<answer>\n\\boxed{...}\n</answer>")
# d1 eval/math500.py MATH500_SYSTEM_PROMPT: no space after "\boxed{}.", and `</answer>" ` then a newline.
D1_MATH = ("You are a math expert. You will be given a question to solve. Solve it step by step. Wrap the final "
           "answer in a \\boxed{}.\nRespond in the following format:\n<reasoning>\nYour reasoning here\n"
           "</reasoning>\n<answer>\n\\boxed{...}\n</answer>\" \n")
# d1 eval/countdown.py CTD_SYSTEM_PROMPT: "\boxed{a + b * c}" runs into "Respond" with no break.
D1_COUNTDOWN = ("Using only the provided numbers, create an arithmetic expression that evaluates to exactly the "
                "provided target number. You may use the operations +, -, *, and / as needed, but each number must "
                "be used exactly once. Think step-by-step. After reasoning, provide only your final expression "
                "inside \\boxed{} tags without including an equals sign or the target number. For example: "
                "\\boxed{a + b * c}Respond in the following format:\n<reasoning>\nYour reasoning here\n"
                "</reasoning>\n<answer>\n\\boxed{...}\n</answer>")
# d1 eval/sudoku.py SUDOKU_SYSTEM_PROMPT
D1_SUDOKU = ("\nPlease solve the following 4x4 Sudoku puzzle. The puzzle is provided as a 16-character string "
             "reading left-to-right, top-to-bottom, where '0' represents empty cells.\n\nRules:\n"
             "- Fill empty cells with digits 1-4\n- Each row must contain digits 1-4 exactly once\n"
             "- Each column must contain digits 1-4 exactly once\n- Each 2x2 box must contain digits 1-4 exactly "
             "once\n\nImportant: Your solution must be a COMPLETE 16-character string with only the digits 1-4, "
             "representing your final solved grid.\n\nRespond in this exact format:\n<reasoning>\n"
             "Your step-by-step solving process\n</reasoning>\n<answer>\n[16-character solution string with no "
             "spaces or separators]\n</answer>\n")
# ML-GSAI/ESPO eval/data_utils.py CTDDataset.__getitem__ content, REASONING_SYSTEM_PROMPT first
ESPO_COUNTDOWN = ("\nRespond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>\n"
                  "\nUsing only the numbers [30, 100, 93], create an arithmetic expression that evaluates to exactly "
                  "23. You must use all numbers from the list, and each number must be used exactly once. You may "
                  "use the operations +, -, *, and / as needed. After reasoning, provide only your final expression "
                  "inside <answer></answer> tags without including an equals sign or the target number. For "
                  "example, if the numbers are [2, 3, 4] and the target is 5, a valid answer is: "
                  "<answer>\n2*4-3\n</answer>")
# ML-GSAI/ESPO eval/data_utils.py SUDOKU_SYSTEM_PROMPT (its worked example)
ESPO_SUDOKU = ("\nPlease solve the following 4x4 Sudoku puzzle. The puzzle is provided as a 16-character string "
               "reading left-to-right, top-to-bottom, where '0' represents empty cells.\n\n**Rules:**\n"
               "- Fill empty cells with digits 1-4.\n- Each row must contain digits 1-4 exactly once.\n"
               "- Each column must contain digits 1-4 exactly once.\n- Each 2x2 box must contain digits 1-4 "
               "exactly once.\n\n**Example:**\nPuzzle: 0401002010030310\nThis puzzle grid looks like this:\n"
               "0 4 | 0 1\n0 0 | 2 0\n----+----\n1 0 | 0 3\n0 3 | 1 0\n\nSolution: 2431312412434312\n"
               "The solved grid looks like this:\n2 4 | 3 1\n3 1 | 2 4\n----+----\n1 2 | 4 3\n4 3 | 1 2\n\n"
               "**Important:** Your solution must be a COMPLETE 16-character string with only the digits 1-4, "
               "representing your final solved grid.\n\nRespond in this exact format:\n<reasoning>\n"
               "Your step-by-step solving process\n</reasoning>\n<answer>\n[16-character solution string with no "
               "spaces or separators]\n</answer>\n")
HUMANEVAL = {"question": 'def add(x, y):\n    """Add x and y.\n    >>> add(2, 3)\n    5\n    """\n', "benchmark": "humaneval",
             "tests": ["def check(candidate):\n    assert candidate(1, 1) == 2\n\ncheck(add)\n"], "entry_point": "add",
             "check_code": "def check(candidate):\n    assert candidate(1, 1) == 2\n"}
# vishnutez/egspo-dllm-rl eval/human_eval.py HUMANEVAL_SYSTEM_PROMPT
EGSPO_HUMANEVAL = ("You are a coding expert. You will be given a coding problem to solve. Solve it step by step.\n\n"
                   "Respond in the following format:\n<reasoning>\nYour reasoning here\n</reasoning>\n<answer>\n"
                   "```python\nYour code here\n```\n</answer>\" \n")
SUDOKU_QUESTION = "Solve the following Sudoku puzzle: 3102200002100320\n"  # d1 / ESPO SudokuDataset.__getitem__

# (protocol, task, record) -> the user message: create_prompt's `system_prompt + "\n\n" + question`
# (d1 eval/gsm8k.py), or ESPO's own Countdown content.
EXPECTED = {
    **{(p, "gsm8k"): (GSM8K, D1_GSM + "\n\n" + GSM8K["question"]) for p in ("d1", "egspo")},
    **{(p, "math"): (MATH, D1_MATH + "\n\n" + MATH["question"]) for p in ("d1", "egspo")},
    **{(p, "countdown"): (COUNTDOWN, D1_COUNTDOWN + "\n\nNumbers: [30, 100, 93]\nTarget: 23") for p in ("d1", "egspo")},
    **{(p, "sudoku"): (SUDOKU, D1_SUDOKU + "\n\n" + SUDOKU_QUESTION) for p in ("d1", "egspo")},
    ("espo", "countdown"): (COUNTDOWN, ESPO_COUNTDOWN),
    ("espo", "sudoku"): (SUDOKU, ESPO_SUDOKU + "\n\n" + SUDOKU_QUESTION),
    # vishnutez/egspo-dllm-rl eval/human_eval.py: HUMANEVAL_SYSTEM_PROMPT (its stray `" ` line end) and the
    # prompt's docstring alone, each line stripped (parsers.py extract_human_eval_prompt)
    ("egspo", "code"): (HUMANEVAL, EGSPO_HUMANEVAL + "\n\n" + "Add x and y.\n>>> add(2, 3)\n5"),
}


@pytest.fixture(scope="module")
def llada_tokenizer(tmp_path_factory):
    if not os.path.isdir(LLADA):
        pytest.skip("real model metadata not present")
    return Tokenizer.from_pretrained(_llada_folder(tmp_path_factory.mktemp("llada")), read_config(LLADA))


@pytest.mark.parametrize("protocol,task", sorted(EXPECTED))
def test_rendered_eval_prompts_equal_the_official_strings(protocol, task, llada_tokenizer):
    record, message = EXPECTED[protocol, task]
    spec = eval_protocol.get(protocol, task)
    assert spec.user_message(task, record) == message
    # LLaDA's real chat template over ONE user message (trimmed by the template), then the prefill
    # "<reasoning>" (eval.py: add_reasoning=True, "prefill for all models")
    assert spec.render(llada_tokenizer, record) == (
        "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\n" + message.strip() + "<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n<reasoning>")


def test_every_paper_task_has_its_expected_prompt_and_nothing_else():
    tasks = ("gsm8k", "math", "countdown", "sudoku", "code")
    available = set()
    for protocol in ("d1", "egspo", "espo"):
        for task in tasks:
            try:
                eval_protocol.get(protocol, task)
                available.add((protocol, task))
            except eval_protocol.ProtocolUnavailable:
                pass
    assert available == set(EXPECTED)


def test_decoding_settings_per_protocol():
    # run_eval.sh / eval_checkpoints.sh: batch 8, 4 at 512, 8 processes; ESPO run_eval.sh: 1 GPU, batch 1
    for protocol in ("d1", "egspo"):
        spec = eval_protocol.get(protocol, "sudoku")
        assert [spec.batch_size_for(g) for g in (128, 256, 512)] == [8, 8, 4] and spec.world_size == 8
    espo = eval_protocol.get("espo", "countdown")
    assert [espo.batch_size_for(g) for g in (128, 256, 512)] == [1, 1, 1] and espo.world_size == 1
    for protocol, task in EXPECTED:
        spec = eval_protocol.get(protocol, task)
        assert (spec.dtype, spec.attend_pads, spec.keep_special_tokens, spec.prefill, spec.dream_remasking) == (
            "bfloat16", True, True, "<reasoning>", "entropy")
        assert spec.subsample == {"gsm8k": None, "math": None, "countdown": 256, "sudoku": 256, "code": None}[task]
    ours = eval_protocol.get("dlrl", "sudoku")
    assert (ours.dtype, ours.batch_size, ours.attend_pads, ours.user_message, ours.parser) == (
        "float32", 16, False, None, None)


def test_the_subsample_is_numpys_seeded_draw():
    # eval.py: init_seed(42) -> np.random.seed(42); then GSM8KDataset.__init__ draws
    # np.random.choice(len(dataset), 256, replace=False), which for replace=False is the first 256 of a
    # permutation of the legacy global generator
    np.random.seed(42)
    want = np.random.permutation(500)[:256]
    got = eval_protocol.subsample_indices(500, 256, 42)
    assert got == want.tolist() and got[:5] == [361, 73, 374, 155, 104] and len(set(got)) == 256
    np.random.seed(42)
    assert eval_protocol.subsample_indices(256, 256, 42) == np.random.permutation(256).tolist()  # Countdown
    assert eval_protocol.subsample_indices(7, None) == list(range(7))  # GSM8K, MATH: every row in order
    with pytest.raises(ValueError, match="256 rows drawn from the test set, which has only 100"):
        eval_protocol.subsample_indices(100, 256)


def test_official_batches_follow_the_distributed_sampler():
    # 10 rows over 3 processes in batches of 2: process r takes r, r+3, ... (no shuffle, no padding rows)
    assert eval_protocol.official_batches(10, 3, 2) == [[0, 3], [6, 9], [1, 4], [7], [2, 5], [8]]
    assert eval_protocol.official_batches(5, 1, 4) == [[0, 1, 2, 3], [4]]


def test_protocol_defaults_fill_only_unset_settings():
    from dlrl_jax.app.evaluation import EvalSettings, resolve, sampler_settings

    base = dict(model="M", task="sudoku", out_dir="", data="given.csv")
    dream, spec = resolve(EvalSettings(**base, protocol="espo"), "dream")
    assert (dream.dtype, dream.remasking, dream.attend_pads, dream.world_size, dream.reward_set, dream.decode) == (
        "bfloat16", "entropy", True, 1, "espo", "official")
    assert dream.batch_size is None and spec.batch_size_for(512) == 1
    assert sampler_settings(dream, 128, 7, "dream").schedule == "dream"  # ESPO's diffusion_generate call
    # ... with no logits hook: the mask token stays among the candidates
    assert sampler_settings(dream, 128, 7, "dream").dream_mask_candidate == "official"
    blocks, _ = resolve(EvalSettings(**base, protocol="espo", block_length=32), "dream")  # LLaDA's blocks asked
    assert sampler_settings(blocks, 128, 7, "dream").dream_mask_candidate == "exclude"
    asked, _ = resolve(EvalSettings(**base, protocol="espo", dream_mask_candidate="exclude"), "dream")
    assert sampler_settings(asked, 128, 7, "dream").dream_mask_candidate == "exclude"
    llada, _ = resolve(EvalSettings(**base, protocol="d1"), "llada")
    assert (llada.dtype, llada.remasking, llada.attend_pads, llada.world_size, llada.dream_mask_candidate) == (
        "bfloat16", "low_confidence", True, 8, "exclude")
    given, _ = resolve(EvalSettings(**base, protocol="d1", dtype="float32", remasking="random", attend_pads=False,
                                    world_size=7, batch_size=3), "llada")
    assert (given.dtype, given.remasking, given.attend_pads, given.world_size, given.batch_size) == (
        "float32", "random", False, 7, 3)
    ours, _ = resolve(EvalSettings(model="M", task="sudoku", out_dir=""), "dream")  # dlrl: today's defaults
    assert (ours.dtype, ours.remasking, ours.attend_pads, ours.data, ours.reward_set, ours.dream_mask_candidate) == (
        "float32", "low_confidence", False, None, "dlrl", "exclude")


def test_ground_truth_in_d1s_generation_file_formats():
    # eval/parsers.py Parser.extract_answer_gsm8k: r"####\s*\$?([\d,]+(?:\.\d+)?)" as a float, commas dropped
    assert eval_protocol.ground_truth("gsm8k", {"answer": "1,234"}) == 1234.0
    assert eval_protocol.ground_truth("gsm8k", {"answer": "$18.50"}) == 18.5
    assert eval_protocol.ground_truth("gsm8k", {"answer": "-3"}) is None  # the pattern takes no sign
    assert eval_protocol.ground_truth("math", MATH) == "2"
    assert eval_protocol.ground_truth("countdown", COUNTDOWN) == [[30, 100, 93], 23]
    assert eval_protocol.ground_truth("sudoku", SUDOKU) == "3142243142131324"


def _fails_in_one_line(capsys, argv):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_a_missing_default_file_is_one_line_naming_it_and_where_to_get_it(model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(eval_protocol.DATA_DIR_ENV, raising=False)
    err = _fails_in_one_line(capsys, ["eval", "--model", model_dir, "--task", "countdown", "--protocol", "d1",
                                      "--gen-lengths", "16", "--out", str(tmp_path / "a")])
    assert "countdown_cd3_test.jsonl" in err and "github.com/dllm-reasoning/d1 dataset/countdown_cd3_test.jsonl" in err
    monkeypatch.setenv(eval_protocol.DATA_DIR_ENV, str(tmp_path))
    err = _fails_in_one_line(capsys, ["eval", "--model", model_dir, "--task", "sudoku", "--protocol", "espo",
                                      "--gen-lengths", "16", "--out", str(tmp_path / "b")])
    assert f"4x4_test_sudoku.csv, not in {tmp_path}" in err and "dataset/4x4_test_sudoku.csv" in err


@pytest.mark.parametrize("argv,message", [
    (["--protocol", "espo", "--task", "gsm8k"], "OpenCompass .*closest is --protocol d1"),
    (["--protocol", "egspo", "--task", "code"], "HumanEval .*164.*MBPP sanitized.*257.*pass --data "
                                                 "hf:openai/openai_humaneval:test or --data "
                                                 "hf:google-research-datasets/mbpp:sanitized:test"),
    (["--protocol", "espo", "--task", "code"], "OpenCompass for LLaDA .*mbpp_gen_830460.*Dream's lm-eval.*closest is "
                                               "--protocol egspo --data hf:openai/openai_humaneval:test"),
    (["--protocol", "d1", "--task", "sudoku", "--prompt-recipe", "d1"], "drop --prompt-recipe"),
])
def test_unreproducible_or_contradictory_requests_are_one_line(model_dir, tmp_path, capsys, argv, message):
    import re
    err = _fails_in_one_line(capsys, ["eval", "--model", model_dir, "--gen-lengths", "16", "--out",
                                      str(tmp_path / "x"), *argv])
    assert re.search(message, err), err


def test_eval_protocol_d1_end_to_end(model_dir, tmp_path, capsys):
    """d1's Sudoku evaluation on the tiny model: a 300-row file in d1's CSV layout, its numpy-seeded
    subsample (first 4 of the 256), the official batch grouping (here 2 processes x batch 2, so pads
    are attended at each batch's own width), special tokens kept for d1's parser, ground truth in rows."""
    data = tmp_path / "data"
    data.mkdir()
    puzzles = generate_sudoku(5, 300, 8)
    with open(data / "4x4_test_sudoku.csv", "w") as f:
        f.write("Puzzle,Solution\n" + "".join(f"{r['puzzle']},{r['solution']}\n" for r in puzzles))
    out = str(tmp_path / "ev")
    argv = ["eval", "--model", model_dir, "--task", "sudoku", "--protocol", "d1", "--data-dir", str(data),
            "--gen-lengths", "8", "--block-length", "8", "--num-examples", "4", "--batch-size", "2",
            "--world-size", "2", "--out", out, "--no-progress"]
    assert cli.main(argv) == 0
    rows = sorted((json.loads(line) for line in open(os.path.join(out, "eval_sudoku_8.jsonl"))),
                  key=lambda r: r["index"])
    np.random.seed(42)
    drawn = np.random.permutation(300)[:4].tolist()
    specials = ("<pad>", "<mask>", "<eos>", "<bos>", "<|user|>", "<|assistant|>", "<unk>")
    for row, source in zip(rows, drawn):
        assert row["test_row"] == source and row["record"] == puzzles[source]
        assert row["ground_truth"] == puzzles[source]["solution"]
        assert row["question"] == f"Solve the following Sudoku puzzle: {puzzles[source]['puzzle']}\n"
        assert row["prompt_input"] == "<|user|>" + D1_SUDOKU + "\n\n" + row["question"] + "<|assistant|><reasoning>"
        assert row["total"] == 8  # d1's parser counts the blank cells
        stripped = row["raw_completion"]
        for token in specials:
            stripped = stripped.replace(token, "")
        assert stripped == row["completion"]  # completion: skip_special_tokens=True; raw: kept, uncut
    # the processes' batches: rows 0, 2 on process 0 and 1, 3 on process 1
    order = [json.loads(line)["index"] for line in open(os.path.join(out, "eval_sudoku_8.jsonl"))]
    assert order == [0, 2, 1, 3]
    summary = json.load(open(os.path.join(out, "eval_summary.json")))[0]
    assert (summary["protocol"], summary["total"], summary["correct"]) == ("d1", 32, sum(r["correct"] for r in rows))
    meta = json.load(open(os.path.join(out, "eval_meta.json")))
    assert (meta["protocol"], meta["dtype"], meta["attend_pads"], meta["reward_set"]) == ("d1", "bfloat16", True, "d1")
    # killed after process 0's batch and half a line of process 1's: the rerun regenerates the torn row's whole
    # batch (its pad width depends on it) and writes only the missing rows, equal to the first run
    path = os.path.join(out, "eval_sudoku_8.jsonl")
    lines = open(path).readlines()
    with open(path, "w") as f:
        f.writelines(lines[:2])
        f.write(lines[2][:30])
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert sorted(open(path).readlines()) == sorted(lines)
    # under another protocol: refused by name
    err = _fails_in_one_line(capsys, [a if a != "d1" else "egspo" for a in argv])
    assert "different settings (protocol)" in err


RELEASED = os.environ.get("DLRL_D1_EVAL_BASELINES", "")
TEST_FILES = os.environ.get(eval_protocol.DATA_DIR_ENV, "")


@pytest.mark.skipif(not (os.path.isdir(RELEASED) and os.path.isdir(TEST_FILES)),
                    reason="set DLRL_D1_EVAL_BASELINES (d1's eval/eval_baselines/*.json) and DLRL_EVAL_DATA (d1's "
                           "dataset/ test files) to check against d1's released generations")
@pytest.mark.parametrize("task,setup", [("sudoku", "sudoku_instruct_128_64"),
                                        ("countdown", "countdown_instruct_256_128")])
def test_subsample_and_process_split_equal_d1s_released_files(task, setup):
    """d1's released LLaDA generations (one file per process; that run used 7) list each process's
    questions and ground truths in order: they must be the protocol's draw, split as official_batches
    splits it (see tests/protocols/test_d1_released.py for how to extract the files)."""
    import glob

    from dlrl_jax import tasks as task_registry
    from dlrl_jax.protocols import eval_prompts

    spec = eval_protocol.get("d1", task)
    records = task_registry.read_records(os.path.join(TEST_FILES, spec.default_data), task)
    order = eval_protocol.subsample_indices(len(records), spec.subsample)
    files = sorted(glob.glob(os.path.join(RELEASED, f"{setup}_*_generations.json")))
    groups = eval_protocol.official_batches(len(order), len(files), 8)
    for path in files:
        rank = int(path.rsplit("_", 2)[-2])
        mine = [p for group in groups for p in group if p % len(files) == rank]
        entries = json.load(open(path))["generations"]
        assert [(e["question"], e["ground_truth"]) for e in entries] == [
            (eval_prompts.question_text(task, records[order[p]]), eval_protocol.ground_truth(task, records[order[p]]))
            for p in mine]


def test_a_papers_parser_reads_the_text_with_special_tokens_kept():
    """Hand-worked with d1's Sudoku patterns (eval/parse_and_get_acc.py): "<answer>" + 8 digits +
    "<|eot_id|>" is read by the second pattern (its capture stops at <|eot_id|>), padded with 0 to 16;
    the puzzle's blanks are cells 0 2 3 7 8 11 13 15, of which the digits 1432 2341 fill 0 2 3 7 right
    (4 of 8). With the special token dropped no pattern matches: 0 of 8."""
    from dlrl_jax import tasks as task_registry
    from dlrl_jax.app.evaluation import EvalSettings, _correct

    record = {"puzzle": "0400234002104020", "solution": "1432234132144123"}
    raw, stripped = "<answer>14322341<|eot_id|>", "<answer>14322341"
    task = task_registry.make_task("sudoku", "chat", [], [record], "d1", "dlrl")
    s = EvalSettings(model="M", task="sudoku", out_dir="", protocol="d1")
    assert _correct(s, eval_protocol.get("d1", "sudoku"), task, [stripped], [raw], [record]) == ([4], [8])
    unkept = dataclasses.replace(eval_protocol.get("d1", "sudoku"), keep_special_tokens=False)
    assert _correct(s, unkept, task, [stripped], [raw], [record]) == ([0], [8])


def test_prompts_are_tokenized_as_the_official_tokenizer_call_and_padded_per_batch(tmp_path):
    """eval.py's collate_fn calls `tokenizer(prompts, padding_side="left", padding="longest")`: the
    tokenizer's default special tokens are added (here a post-processor that puts <bos> first, as some
    tokenizers do on top of their chat template), the batch is as wide as its longest prompt, and the
    model gets no mask. This project's own protocol adds nothing and pads to the fixed width, masked."""
    from dlrl_jax.app.evaluation import encode_rendered

    folder = write_char_tokenizer(str(tmp_path / "tok"))
    with open(os.path.join(folder, "tokenizer.json")) as f:
        raw = json.load(f)
    raw["post_processor"] = {"type": "TemplateProcessing",
                             "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                                        {"Sequence": {"id": "A", "type_id": 0}}],
                             "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                                      {"Sequence": {"id": "B", "type_id": 1}}],
                             "special_tokens": {"<bos>": {"id": "<bos>", "ids": [3], "tokens": ["<bos>"]}}}
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(raw, f)
    tok = Tokenizer.from_pretrained(folder, mask_id=1, eos_id=2, pad_id=0)
    a, b = tok.encode("ab"), tok.encode("abcd")  # ids of the characters alone
    ids, mask = encode_rendered(tok, ["ab", "abcd"], length=9, attend_pads=True, add_special_tokens=True)
    assert ids.tolist() == [[0, 0, 3] + a, [3] + b] and mask.all()
    ids, mask = encode_rendered(tok, ["ab", "abcd"], length=6, attend_pads=False, add_special_tokens=False)
    assert ids.tolist() == [[0, 0, 0, 0] + a, [0, 0] + b]
    assert mask.tolist() == [[False] * 4 + [True] * 2, [False] * 2 + [True] * 4]
    assert eval_protocol.get("espo", "sudoku").add_special_tokens
    assert not eval_protocol.get("dlrl", "sudoku").add_special_tokens
