"""`dlrl-jax eval --checkpoints RUN_DIR`: a tiny run's three kept checkpoints are each evaluated into
their own folder; last / best / mean per length are recomputed here from the per-checkpoint rows;
the final checkpoint's evaluation equals a plain `dlrl-jax eval` of the run's own final export (so
each checkpoint's weights come back exactly); a rerun resumes without evaluating again; EGSPO's
lexicographic choice of "the last 20" is compared with the official expression on real folders."""

import json
import os

import numpy as np
import pytest

from dlrl_jax import checkpoints, cli, models
from dlrl_jax.app.checkpoint_sweep import Checkpoint, choose
from dlrl_jax.app.evaluation import EvalError

# The shapes of tests/training/test_end_to_end.py's runs (the full-model run and the EGSPO LoRA one), so
# that the suite's shared compilation cache already holds their programs; every RL iteration saved.
COMMON = ["run.iterations=2", "run.save_every=1", "run.keep_checkpoints=3", "algorithm.prompts_per_batch=2",
          "algorithm.group_size=4", "run.progress=false", "run.tensorboard=false"]
FULL = COMMON + ["sft.steps=3", "sft.batch_size=8", "task.train_size=64", "task.eval_size=16"]
LORA = COMMON + ["algorithm.name=egspo", "model.lora_rank=4", "model.lora_dropout=0.1", "sft.steps=0",
                 "algorithm.mu=2", "algorithm.micro_batches=2", "task.train_size=32", "task.eval_size=8",
                 "algorithm.elbo_samples=1"]
EVAL = ["--gen-lengths", "16", "--num-examples", "8", "--block-length", "8", "--batch-size", "4", "--no-progress"]


def _train(out, settings):
    assert cli.main(["train", *[a for x in settings + [f"run.out_dir={out}"] for a in ("--set", x)]]) == 0
    return out


def _rows(folder):
    return [json.loads(line) for line in open(os.path.join(folder, "eval_sudoku_16.jsonl"))]


# slow (about 40 s on 2 cores): the selection rules stay in the suite (test_egspo_lexicographic_choice_...)
@pytest.mark.slow
def test_sweep_reports_last_best_mean_and_each_checkpoint_is_its_weights(tmp_path, capsys):
    run = _train(str(tmp_path / "run"), FULL)
    assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == ["0", "1", "2"]  # after SFT, 1, 2
    out = str(tmp_path / "sweep")
    assert cli.main(["eval", "--checkpoints", run, "--out", out, *EVAL]) == 0
    printed = capsys.readouterr().out
    accuracy = {s: np.mean([r["correct"] for r in _rows(os.path.join(out, f"step_{s}"))]) for s in (0, 1, 2)}
    (row,) = json.load(open(os.path.join(out, "checkpoint_sweep.json")))["report"]
    top = max(accuracy.values())
    best = max(s for s in accuracy if accuracy[s] == top)  # a tie goes to the newest
    assert len(set(accuracy.values())) > 1, accuracy  # (the three checkpoints differ: the report is not trivial)
    assert row["last"] == {"step": 2, "accuracy": pytest.approx(accuracy[2])}
    assert row["best"] == {"step": best, "accuracy": pytest.approx(top)}
    assert row["mean"] == pytest.approx(np.mean(list(accuracy.values())))
    assert "selected" not in row and f"{100 * top:.1f}% (step {best})" in printed
    # the final checkpoint's weights are the run's final export: a plain evaluation of it gives the same rows
    assert cli.main(["eval", "--model", os.path.join(run, "model"), "--task", "sudoku", "--prompt-style", "plain",
                     "--out", str(tmp_path / "final"), *EVAL]) == 0
    assert _rows(str(tmp_path / "final")) == _rows(os.path.join(out, "step_2"))
    assert not os.path.exists(os.path.join(out, "step_2", "model"))  # a full model per checkpoint is not kept
    # a rerun with d1's rule finds its checkpoints done (nothing is exported or evaluated again) and picks
    # the best of those after RL started (the papers' runs never save the starting model)
    capsys.readouterr()
    assert cli.main(["eval", "--checkpoints", run, "--out", out, "--selection", "d1", *EVAL]) == 0
    again = capsys.readouterr().out
    d1_best = 2 if accuracy[2] >= accuracy[1] else 1
    (row,) = json.load(open(os.path.join(out, "checkpoint_sweep.json")))["report"]
    assert row["checkpoints"] == [1, 2] and row["selected"]["step"] == d1_best and row["selected"]["rule"] == "d1"
    assert "checkpoint step" not in again and f"{100 * accuracy[d1_best]:.1f}% (step {d1_best}; d1" in again
    # ... and other settings in the same folder are refused by name, not mixed into the report
    assert cli.main(["eval", "--checkpoints", run, "--out", out, "--steps-per-token", "1", *EVAL]) == 2
    assert "different settings (steps_per_token)" in capsys.readouterr().err


# A second training run (~30 s of CPU): `python -m pytest -m slow`. The suite's case above runs the same
# sweep, restore and model-folder export (which writes this case's base); the adapter is written by
# save_adapter, which tests/training/test_end_to_end.py checks against PEFT's layout through the run export.
@pytest.mark.slow
def test_lora_checkpoints_are_evaluated_as_adapters_on_the_base(tmp_path):
    run = _train(str(tmp_path / "run"), LORA)
    out = str(tmp_path / "sweep")
    assert cli.main(["eval", "--checkpoints", run, "--out", out, "--last", "2", *EVAL]) == 0
    assert sorted(d for d in os.listdir(out) if d.startswith("step_")) == ["step_1", "step_2"]
    # the base is the run's random init (seed 0), whatever the checkpoints hold
    base = checkpoints.from_pretrained(os.path.join(out, "base"))
    init = models.init_model(models.preset("tiny"), seed=0)
    np.testing.assert_array_equal(np.asarray(base.layers.wq[...]), np.asarray(init.layers.wq[...]))
    meta = json.load(open(os.path.join(out, "step_2", "eval_meta.json")))
    assert meta["adapter"] == os.path.abspath(os.path.join(out, "step_2", "adapter"))
    # the final checkpoint's adapter is the run's exported adapter: the same evaluation
    assert cli.main(["eval", "--model", os.path.join(out, "base"), "--adapter", os.path.join(run, "model", "adapter"),
                     "--task", "sudoku", "--prompt-style", "plain", "--out", str(tmp_path / "final"), *EVAL]) == 0
    assert _rows(str(tmp_path / "final")) == _rows(os.path.join(out, "step_2"))


def test_egspo_lexicographic_choice_is_the_official_listing(tmp_path):
    steps = list(range(200, 4001, 200))  # TRL's checkpoint-<global step> every 200 optimizer steps
    for s in steps:
        os.makedirs(tmp_path / f"checkpoint-{s}")
    # eval/eval_checkpoints.py: sorted(os.listdir(args.checkpoint_dir))[::-1][:args.num_checkpoints]
    official = sorted(os.listdir(tmp_path))[::-1][:5]
    found = [Checkpoint(step=s // 4, optimizer_steps=s) for s in steps]  # 4 optimizer steps per iteration
    chosen = choose(found, 5, "lexicographic")
    assert sorted(c.official_name for c in chosen) == sorted(official)
    # by hand: "checkpoint-800" > "-600" > "-4000" > "-400" > "-3800" > "-3600" ... ("8" > "6" > "4" > "3")
    assert [c.optimizer_steps for c in chosen] == [400, 600, 800, 3800, 4000]
    assert [c.optimizer_steps for c in choose(found, 5, "numeric")] == [3200, 3400, 3600, 3800, 4000]


def test_bad_sweep_input_is_one_line_naming_the_fix(tmp_path, capsys):
    assert cli.main(["eval", "--task", "sudoku"]) == 2
    assert "needs --model DIR and --task T (or --checkpoints RUN_DIR" in capsys.readouterr().err
    assert cli.main(["eval", "--checkpoints", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no checkpoints/ folder there" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(EvalError, match="--last must be >= 0"):
        choose([Checkpoint(1, 4)], -1, "numeric")
