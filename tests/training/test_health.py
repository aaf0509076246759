"""RL health guards (dlrl_jax/app/health.py, run.halt_on): conditions parsed or refused by name, the
streak counting against hand-worked sequences, and a forced ratio explosion that halts a real run by
name with exit status 3 and a checkpoint it resumes from."""

import json
import math
import os

import pytest

from dlrl_jax import cli
from dlrl_jax.app.health import Guard, GuardError, HaltWatch, parse_guards


def test_conditions_parse_into_guards():
    assert parse_guards("") == ()
    assert parse_guards("kl>0.5, reward_mean<0.01,first_ratio_dev > 1e-2") == (
        Guard("kl", True, 0.5), Guard("reward_mean", False, 0.01), Guard("first_ratio_dev", True, 0.01))


@pytest.mark.parametrize("bad", ["kl", "kl>>1", "kl>abc", "kl>nan", "kl>inf", "1kl>2", "kl=1", "kl>1,reward<"])
def test_malformed_conditions_are_refused_by_name(bad):
    with pytest.raises(GuardError, match="run.halt_on condition"):
        parse_guards(bad)


def test_a_guard_halts_after_patience_iterations_in_a_row():
    watch = HaltWatch(parse_guards("kl>0.5"), patience=3)
    # hand-worked: the streak is broken at iteration 2 (0.4), then 3, 4, 5 hold -> halt after 5
    for it, kl in enumerate([0.6, 0.7, 0.4, 0.6, 0.6]):
        assert watch.observe(it, {"kl": kl}) is None, it
    reason = watch.observe(5, {"kl": 0.9})
    assert reason == "kl > 0.5 for 3 iteration(s) in a row (iterations 3-5: 0.6, 0.6, 0.9)"


def test_a_non_finite_value_meets_every_condition_and_below_bounds_work():
    watch = HaltWatch(parse_guards("reward_mean<0.01,loss>100"), patience=2)
    assert watch.observe(0, {"reward_mean": 0.5, "loss": math.nan}) is None
    assert watch.observe(1, {"reward_mean": 0.005, "loss": math.inf}).startswith("loss > 100 for 2")
    watch = HaltWatch(parse_guards("reward_mean<0.01"), patience=2)
    assert watch.observe(0, {"reward_mean": 0.0}) is None
    assert watch.observe(1, {"reward_mean": 0.02}) is None  # the streak starts again
    assert watch.observe(2, {"reward_mean": 0.0}) is None
    assert "iterations 2-3" in watch.observe(3, {"reward_mean": 0.009})


def test_an_unknown_metric_is_named_with_the_ones_there_are():
    watch = HaltWatch(parse_guards("klx>1"), patience=1)
    with pytest.raises(GuardError, match="'klx'.*use one of: kl, reward_mean"):
        watch.observe(0, {"kl": 0.1, "reward_mean": 0.5, "entropy_profile": [1.0]})


SETTINGS = ["sft.steps=0", "task.train_size=32", "task.eval_size=8", "algorithm.name=egspo",
            "algorithm.prompts_per_batch=2", "algorithm.group_size=4", "run.iterations=3", "run.progress=false",
            "run.tensorboard=false", "run.eval_every=0"]


def _train(out, *extra):
    args = ["train"]
    for s in [f"run.out_dir={out}", *SETTINGS, *extra]:
        args += ["--set", s]
    return cli.main(args)


# slow (about 30 s on 2 cores): the guards' rules are tested above without a run
@pytest.mark.slow
def test_a_forced_ratio_explosion_halts_by_name_and_resumes(tmp_path, capsys):
    """EGSPO with mu=2 at a learning rate of 0.5: the second pass over the rollout sees a policy far from
    the one that sampled it, so the last optimizer step's mean |ratio - 1| explodes (about 12 here), while
    the first step's (the rollout against the trainer's log-probs at the same parameters) stays at
    rounding level (about 2e-7)."""
    out = str(tmp_path / "run")
    code = _train(out, "algorithm.mu=2", "optim.learning_rate=0.5", "optim.warmup_steps=0",
                  "run.halt_on=ratio_dev>0.5", "run.halt_patience=1")
    err = capsys.readouterr().err
    assert code == 3, err
    assert err.count("\n") == 1 and "halted by run.halt_on: ratio_dev > 0.5 for 1 iteration(s) in a row" in err
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    rl = [r for r in rows if r["phase"] == "rl"]
    assert len(rl) == 1 and rl[0]["ratio_dev"] > 0.5
    assert all(r["first_ratio_dev"] < 1e-3 for r in rl)  # the rollout and the trainer agree before any step
    assert "checkpoint at iteration 1" in err and os.path.isdir(os.path.join(out, "checkpoints", "1"))
    # resumed with the guard relaxed, it continues from iteration 1 to the end
    assert _train(out, "algorithm.mu=2", "optim.learning_rate=0.5", "optim.warmup_steps=0", "run.resume=true",
                  "run.halt_on=ratio_dev>1e9") == 0
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [r["step"] for r in rows if r["phase"] == "rl"] == [0, 1, 2]


def test_a_malformed_guard_is_one_line_before_anything_is_written(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert _train(out, "run.halt_on=kl>>1") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run.halt_on condition 'kl>>1'" in err
    assert not os.path.exists(os.path.join(out, "metrics.jsonl"))


def test_a_checkpoint_written_before_a_field_existed_resumes_at_its_default(tmp_path):
    """Resume rules: a field missing from the checkpoint's config (added by a later version) ran at its
    default; it is a change only when the resumed run sets it otherwise."""
    from dlrl_jax import config
    from dlrl_jax.app.train import _check_same_run
    from dlrl_jax.config import ConfigError

    cfg = config.load(None, [f"run.out_dir={tmp_path}", "task.sft_teacher=solution", "optim.schedule=constant"])
    saved = config.to_dict(cfg)
    del saved["task"]["sft_teacher"], saved["algorithm"]["zero_variance_groups"], saved["optim"]["schedule"]
    _check_same_run(saved, cfg, str(tmp_path))  # what the code did before those fields: no change
    # a default that moved on (the demo's cosine, the auto teacher) is a change for such a checkpoint
    with pytest.raises(ConfigError, match="optim.schedule: 'constant' -> 'cosine'"):
        _check_same_run(saved, config.load(None, [f"run.out_dir={tmp_path}", "task.sft_teacher=solution"]),
                        str(tmp_path))
    changed = config.load(None, [f"run.out_dir={tmp_path}", "algorithm.zero_variance_groups=drop"])
    with pytest.raises(ConfigError, match="algorithm.zero_variance_groups: 'keep' -> 'drop'"):
        _check_same_run(saved, changed, str(tmp_path))
