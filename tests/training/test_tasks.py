"""Tasks from generators and files: held-out prompts never in training, generated Countdown solutions
reach their targets under the (independent) safe reward parser, chat prompts and SFT targets in the
papers' format score full marks by d1's hand-worked rules, and bad task settings fail by name."""

import pytest

from dlrl_jax import cli, config
from dlrl_jax.config import ConfigError
from dlrl_jax.data import readers
from dlrl_jax.tasks import build_task


def _cfg(*overrides):
    """The task section and seed that build_task takes, of the config with `overrides`."""
    cfg = config.load(None, list(overrides))
    return cfg.task, cfg.seed


def test_generated_countdown_solutions_score_full_reward():
    task = build_task(*_cfg("task.name=countdown", "task.train_size=200", "task.eval_size=50"))
    assert len(task.train) == 200 and len(task.eval) == 50
    held_out = {(tuple(r["numbers"]), r["target"]) for r in task.eval}
    assert not held_out & {(tuple(r["numbers"]), r["target"]) for r in task.train}
    targets = [task.target_text(r) for r in task.train]
    assert task.score(targets, task.train).tolist() == [1.0] * 200
    assert task.prompt_text(task.train[0]) == " ".join(map(str, task.train[0]["numbers"])) + " = " + \
        str(task.train[0]["target"])


def test_gsm8k_from_the_shipped_file_in_the_chat_format():
    task = build_task(*_cfg("task.name=gsm8k", "task.prompt_style=chat", "task.eval_size=5",
                           f"task.train_file={readers.packaged_file('gsm8k_mini.jsonl')}"))
    assert len(task.eval) == 5 and len(task.train) == 20
    assert not {r["question"] for r in task.eval} & {r["question"] for r in task.train}
    prompt = task.prompt_text(task.train[0])
    assert prompt.startswith("Answer in this format:\n<reasoning>") and task.train[0]["question"] in prompt
    # the worked solution as a target: 2 correct + .5 integer + .5 strict + .5 soft + 4 tags x .125 = 4.0
    targets = [task.target_text(r) for r in task.train]
    assert task.score(targets, task.train).tolist() == [4.0] * 20
    assert task.correct(targets, task.train).tolist() == [1.0] * 20


def test_bad_task_settings_fail_by_name(tmp_path):
    with pytest.raises(ConfigError, match="task 'gsm8k' has no generator: set task.train_file"):
        build_task(*_cfg("task.name=gsm8k", "task.prompt_style=chat"))
    with pytest.raises(ConfigError, match="prompt_style 'plain' exists for sudoku and countdown"):
        build_task(*_cfg("task.name=gsm8k", f"task.train_file={readers.packaged_file('gsm8k_mini.jsonl')}"))
    with pytest.raises(ConfigError, match=r"'task.train_file': .*nope.jsonl' does not exist"):
        build_task(*_cfg("task.name=math", "task.prompt_style=chat", f"task.train_file={tmp_path}/nope.jsonl"))


def test_sft_without_worked_solutions_stops_before_compiling(tmp_path, capsys):
    data = tmp_path / "code.jsonl"  # MBPP layout without the reference "code"
    data.write_text("".join(f'{{"text": "Return {i}.", "test_list": ["assert f() == {i}"]}}\n' for i in range(12)))
    code = cli.main(["train", "--set", "task.name=code", "--set", "task.prompt_style=chat", "--set",
                     f"task.train_file={data}", "--set", "task.eval_size=2", "--set", f"run.out_dir={tmp_path}/run",
                     "--set", "run.progress=false"])
    assert code == 2
    steps = config.SFTSection().steps  # the default's
    assert f"sft.steps={steps} but 10 of 10 training records have no worked solution" in capsys.readouterr().err


def test_a_mesh_that_does_not_fit_the_devices_is_named(tmp_path, capsys):
    assert cli.main(["train", "--set", "mesh.data=3", "--set", f"run.out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "mesh: mesh data x fsdp x tensor = 3 x 1 x 1 = 3 does not match the 1 devices" in err
