"""`dlrl-jax eval`: per-example JSONL whose rewards re-derive by hand, an accuracy table, resumption
after a kill (torn last line included) that gives exactly the uninterrupted result, refusal to mix
settings, and chat-templated file tasks."""

import json
import os

import numpy as np
import pytest

from dlrl_jax import cli, models
from dlrl_jax.data import readers
from dlrl_jax.app.evaluation import EvalError, EvalSettings, evaluate_model


def _rows(path):
    return [json.loads(line) for line in open(path)]


def _settings(model_dir, out, **kw):
    base = dict(model=model_dir, task="sudoku", out_dir=out, gen_lengths=(16,), num_examples=10, prompt_style="plain",
                block_length=8, batch_size=4, progress=False)
    return EvalSettings(**dict(base, **kw))


def test_eval_writes_rows_whose_rewards_rederive_and_a_table(model_dir, tmp_path, capsys):
    out = str(tmp_path / "ev")
    assert cli.main(["eval", "--model", model_dir, "--task", "sudoku", "--gen-lengths", "16,32", "--out", out,
                     "--num-examples", "10", "--prompt-style", "plain", "--block-length", "8", "--batch-size", "4",
                     "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "| gen 16 | 8 | 8 | 10 |" in table and "| gen 32 | 16 | 8 | 10 |" in table
    summary = json.load(open(os.path.join(out, "eval_summary.json")))
    for length, entry in zip((16, 32), summary):
        rows = _rows(os.path.join(out, f"eval_sudoku_{length}.jsonl"))
        assert [r["index"] for r in rows] == list(range(10))
        for r in rows:  # d1's sudoku reward by hand: digits of the completion vs the solution on the blanks
            puzzle = r["prompt"]
            record = next(x for x in _records(model_dir) if x["puzzle"] == puzzle)
            digits = "".join(c for c in r["completion"] if c.isdigit())[:16].ljust(16, "0")
            blanks = [i for i, c in enumerate(puzzle) if c == "0"]
            assert r["reward"] == pytest.approx(np.mean([digits[i] == record["solution"][i] for i in blanks]))
            assert r["extracted"] == digits and r["correct"] == r["reward"]
            assert r["record"] == record  # the ground truth `dlrl-jax rescore` reads
        assert entry["accuracy"] == pytest.approx(np.mean([r["correct"] for r in rows]))
        # rescore's "dlrl" protocol on the written rows: eval's accuracy (8 blanks each: cells = mean)
        assert cli.main(["rescore", "--protocol", "dlrl", "--task", "sudoku", "--json",
                         os.path.join(out, f"eval_sudoku_{length}.jsonl")]) == 0
        rescored = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert rescored["total"] == 80 and rescored["accuracy"] == pytest.approx(100 * entry["accuracy"])
        assert entry["steps"] == length // 2 and entry["examples"] == 10


def _records(model_dir):
    from dlrl_jax.app.evaluation import load_records
    return load_records(EvalSettings(model=model_dir, task="sudoku", out_dir="", num_examples=10))


def test_an_interrupted_eval_resumes_to_the_uninterrupted_result(model_dir, tmp_path):
    full = str(tmp_path / "full")
    evaluate_model(_settings(model_dir, full), log=lambda *_: None)
    expected = _rows(os.path.join(full, "eval_sudoku_16.jsonl"))
    part = str(tmp_path / "part")
    evaluate_model(_settings(model_dir, part), log=lambda *_: None)
    path = os.path.join(part, "eval_sudoku_16.jsonl")
    lines = open(path).readlines()
    with open(path, "w") as f:  # killed after the first batch, halfway through writing the next line
        f.writelines(lines[:4])
        f.write(lines[4][:20])
    messages = []
    evaluate_model(_settings(model_dir, part), log=messages.append)
    assert "4 of 10 already done" in messages[0]
    assert _rows(path) == expected


def test_changed_settings_are_refused_in_the_same_folder(model_dir, tmp_path):
    out = str(tmp_path / "ev")
    evaluate_model(_settings(model_dir, out, num_examples=4), log=lambda *_: None)
    with pytest.raises(EvalError, match=r"different settings \(temperature\)"):
        evaluate_model(_settings(model_dir, out, num_examples=4, temperature=0.5), log=lambda *_: None)
    with pytest.raises(EvalError, match="gen length 12: gen_length 12 is not divisible by block_length 8"):
        evaluate_model(_settings(model_dir, str(tmp_path / "x"), gen_lengths=(12,)), log=lambda *_: None)


def test_chat_eval_on_the_shipped_gsm8k_file(model_dir, tmp_path):
    out = str(tmp_path / "gsm")
    summary = evaluate_model(EvalSettings(model=model_dir, task="gsm8k", out_dir=out, gen_lengths=(32,),
                                          data=readers.packaged_file("gsm8k_mini.jsonl"), num_examples=6,
                                          batch_size=6, progress=False), log=lambda *_: None)
    rows = _rows(os.path.join(out, "eval_gsm8k_32.jsonl"))
    assert len(rows) == 6 and summary[0]["examples"] == 6
    assert all(r["prompt"].startswith("Answer in this format") and "<answer>" in r["prompt"] for r in rows)
    # a random model does not answer; its rows say so rather than vanish
    assert all(r["correct"] == 0.0 for r in rows)
