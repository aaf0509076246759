"""Training's held-out evaluation: `eval_correct` is the task's correctness (Sudoku: the fraction of
blanks right) beside `solved` (reward >= 1, unchanged), and `run.eval_samples` adds pass@k of sampled
completions. The completions are written by the test (the run's decoder is replaced), so every
expected number is worked out here by hand and by enumeration over k-subsets."""

import itertools

import numpy as np
import pytest

from dlrl_jax import config
from dlrl_jax.app.evaluation import held_out, held_out_pass_at_k
from dlrl_jax.app.run import Run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = config.load(None, [f"run.out_dir={tmp_path_factory.mktemp('run')}", "sft.steps=0", "task.train_size=16",
                             "task.eval_size=6", "run.progress=false", "run.tensorboard=false"])
    r = Run(cfg)
    yield r
    r.writer.close()


def _with_wrong_cells(record, wrong: int) -> str:
    """The solution with the first `wrong` blank cells changed to another digit."""
    cells = list(record["solution"])
    for i in [i for i, c in enumerate(record["puzzle"]) if c == "0"][:wrong]:
        cells[i] = "1" if cells[i] != "1" else "2"
    return "".join(cells)


def _decoder(texts_of_call):
    """A stand-in for run.decode: the n-th call returns texts_of_call(n) (one text per row of the batch)."""
    calls = []

    def decode(_ids):
        calls.append(None)
        return texts_of_call(len(calls) - 1)
    return decode


def test_eval_correct_is_the_share_of_blanks_right_beside_solved(run, monkeypatch):
    records = run.task.eval
    wrong = [0, 1, 3, 0, 2, 8]  # blank cells answered wrong, per record (8 blanks or fewer: all wrong)
    texts = [_with_wrong_cells(r, w) for r, w in zip(records, wrong)]
    batch = 4
    padded = texts + [texts[-1]] * (-len(texts) % batch)  # the last batch repeats its last record
    monkeypatch.setattr(run, "decode", _decoder(lambda n: padded[n * batch:(n + 1) * batch]))
    result = held_out(run, run.params, records, batch, samples=False)  # the greedy metrics (no pass@k draws)
    blanks = [r["puzzle"].count("0") for r in records]
    by_hand = np.mean([max(b - w, 0) / b for b, w in zip(blanks, wrong)])
    assert result["eval_correct"] == pytest.approx(by_hand, abs=1e-6)
    assert result["solved"] == pytest.approx(2 / 6)  # the two records answered whole
    assert result["reward"] == pytest.approx(by_hand, abs=1e-6)  # the demo's Sudoku reward is the same fraction
    assert not any(k.startswith("eval_pass@") for k in result)  # run.eval_samples 0: greedy metrics only


def test_pass_at_k_of_sampled_completions_by_enumeration(run, monkeypatch):
    records = run.task.eval[:5]
    n = 4
    right = [0, 1, 2, 4, 3]  # correct samples of each record's 4 (a sample with one wrong cell is not correct)
    # batch 4 = one record's 4 samples per call (the samples of a record are drawn together)
    monkeypatch.setattr(run, "decode", _decoder(lambda call: [
        _with_wrong_cells(records[call], 0 if j < right[call] else 1) for j in range(n)]))
    result = held_out_pass_at_k(run, run.params, records, 4, n)
    for k in (1, 2, 4):
        enumerated = np.mean([np.mean([any(s) for s in itertools.combinations([j < c for j in range(n)], k)])
                              for c in right])
        assert result[f"eval_pass@{k}"] == pytest.approx(enumerated, abs=1e-12), k
    assert set(result) == {"eval_pass@1", "eval_pass@2", "eval_pass@4"}


def test_eval_samples_adds_pass_at_k_to_the_held_out_evaluation(run, monkeypatch):
    monkeypatch.setattr(run, "cfg", config.load(None, [f"run.out_dir={run.out_dir}", "sft.steps=0",
                                                       "task.train_size=16", "task.eval_size=6", "run.eval_samples=3"]))
    greedy = held_out(run, run.params, run.task.eval[:2], 4)
    # pass@k of the untrained model's samples: bounded, and non-decreasing in k (more draws, more chances)
    assert set(greedy) == {"reward", "solved", "eval_correct", "eval_pass@1", "eval_pass@2", "eval_pass@3"}
    assert 0.0 <= greedy["eval_pass@1"] <= greedy["eval_pass@2"] <= greedy["eval_pass@3"] <= 1.0
    # training's evaluations along the way ask for greedy only (samples=False): the same greedy numbers
    along_the_way = held_out(run, run.params, run.task.eval[:2], 4, samples=False)
    assert along_the_way == {k: greedy[k] for k in ("reward", "solved", "eval_correct")}


def test_pass_at_the_group_size_is_reported_when_it_is_not_a_power_of_two(run, monkeypatch):
    """The end-of-run table shows pass@k for k = algorithm.group_size: reported beside the powers of 2."""
    monkeypatch.setattr(run, "cfg", config.load(None, [f"run.out_dir={run.out_dir}", "sft.steps=0", "task.train_size=16",
                                                       "task.eval_size=6", "algorithm.group_size=3"]))
    records = run.task.eval[:3]
    n, right = 4, [1, 2, 0]
    monkeypatch.setattr(run, "decode", _decoder(lambda call: [
        _with_wrong_cells(records[call], 0 if j < right[call] else 1) for j in range(n)]))
    result = held_out_pass_at_k(run, run.params, records, 4, n)
    assert set(result) == {"eval_pass@1", "eval_pass@2", "eval_pass@3", "eval_pass@4"}
    enumerated = np.mean([np.mean([any(s) for s in itertools.combinations([j < c for j in range(n)], 3)])
                          for c in right])  # (3 of 4 with one correct: 3/4; with two: 1; none: 0)
    assert result["eval_pass@3"] == pytest.approx(enumerated, abs=1e-12) == pytest.approx((0.75 + 1 + 0) / 3)
