"""`dlrl-jax eval --samples N --temperature T`: the accuracy pass stays greedy (its rows equal a plain
greedy evaluation's), N samples per example are drawn at T and written per (example, sample), an
interrupted sampling resumes to the same samples, and pass@k is computed from the written rows (the
values here by enumeration over k-subsets, on rows whose correctness the test sets)."""

import itertools
import json
import os

import numpy as np
import pytest

from dlrl_jax import cli, models
from dlrl_jax.app.evaluation import EvalError, EvalSettings, evaluate_model


def _settings(model_dir, out, **kw):
    base = dict(model=model_dir, task="sudoku", out_dir=out, gen_lengths=(16,), num_examples=6, prompt_style="plain",
                block_length=8, batch_size=4, progress=False)
    return EvalSettings(**dict(base, **kw))


def _rows(path):
    return [json.loads(line) for line in open(path)]


def test_samples_beside_greedy_accuracy_resume_and_pass_at_k(model_dir, tmp_path):
    out = str(tmp_path / "ev")
    evaluate_model(_settings(model_dir, out, samples=4, temperature=1.0), log=lambda *_: None)
    greedy = str(tmp_path / "greedy")
    evaluate_model(_settings(model_dir, greedy), log=lambda *_: None)
    assert _rows(os.path.join(out, "eval_sudoku_16.jsonl")) == _rows(os.path.join(greedy, "eval_sudoku_16.jsonl"))
    path = os.path.join(out, "samples_sudoku_16.jsonl")
    rows = _rows(path)
    assert sorted((r["index"], r["sample"]) for r in rows) == [(i, j) for i in range(6) for j in range(4)]
    assert len({r["completion"] for r in rows if r["index"] == 0}) > 1  # sampled, not four greedy copies
    # interrupted after the first batch, mid-line: the resumed samples are the uninterrupted ones
    lines = open(path).readlines()
    with open(path, "w") as f:
        f.writelines(lines[:4])
        f.write(lines[4][:10])
    evaluate_model(_settings(model_dir, out, samples=4, temperature=1.0), log=lambda *_: None)
    assert _rows(path) == rows
    # pass@k from the written rows: set which samples are right, then let the finished evaluation re-read them
    right = {0: 0, 1: 1, 2: 2, 3: 4, 4: 3, 5: 1}
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(dict(r, correct=float(r["sample"] < right[r["index"]]))) + "\n")
    (summary,) = evaluate_model(_settings(model_dir, out, samples=4, temperature=1.0), log=lambda *_: None)
    for k in (1, 2, 4):
        enumerated = np.mean([np.mean([any(s) for s in itertools.combinations([j < c for j in range(4)], k)])
                              for c in right.values()])
        assert summary[f"pass@{k}"] == pytest.approx(enumerated, abs=1e-12), k
    assert (summary["samples"], summary["temperature"], "pass@3" in summary) == (4, 1.0, False)


def test_samples_need_a_temperature(model_dir, tmp_path, capsys):
    with pytest.raises(EvalError, match="--samples 4 needs --temperature > 0"):
        evaluate_model(_settings(model_dir, str(tmp_path / "x"), samples=4), log=lambda *_: None)
    assert cli.main(["eval", "--model", model_dir, "--task", "sudoku", "--samples", "2", "--gen-lengths", "16"]) == 2
    assert "needs --temperature > 0" in capsys.readouterr().err
