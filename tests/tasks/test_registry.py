"""The task registry: lookups by name with a named error, every task answering for every reward set,
and a task added from outside (one TaskSpec and one register call) running through the config,
build_task, prompts, SFT targets and scoring with nothing else changed."""

import numpy as np
import pytest

from dlrl_jax import config, tasks
from dlrl_jax.config import ConfigError
from dlrl_jax.tasks import spec as spec_module


def test_the_five_tasks_in_order_and_an_unknown_name_is_named_with_the_choices():
    assert tasks.names() == ("sudoku", "countdown", "gsm8k", "math", "code")
    assert tasks.get("countdown").name == "countdown"
    with pytest.raises(tasks.UnknownTask, match=r"^task.name 'sudokuu' is unknown; use one of sudoku, countdown, "
                                                r"gsm8k, math, code$"):
        tasks.get("sudokuu")
    with pytest.raises(ValueError, match=r"--task 'x' is unknown"):  # also a ValueError, naming the given field
        tasks.get("x", field="--task")
    with pytest.raises(ValueError, match="task 'sudoku' is registered twice"):
        tasks.register(tasks.get("sudoku"))


def test_every_task_scores_under_every_reward_set_and_only_the_puzzles_have_generators():
    for name in tasks.names():
        spec = tasks.get(name)
        assert set(spec.reward_sets) == set(tasks.REWARD_SETS), name
        assert (spec.generate is not None) == (name in ("sudoku", "countdown")) == (spec.plain_prompt is not None)
    assert [n for n in tasks.names() if tasks.get(n).uses_sandbox] == ["code"]
    # d1's Sudoku reward by hand: blanks at cells 0 and 5, the answer fills cell 0 right and cell 5 wrong
    record = {"puzzle": "0234" + "3" + "0" + "12" + "2143" + "4321", "solution": "1234" + "3412" + "2143" + "4321"}
    completion = "<answer>1234" + "3312" + "2143" + "4321</answer>"
    assert tasks.score("sudoku", [completion], [record], reward_set="d1").tolist() == [0.5]
    assert tasks.extracted_answer("sudoku", completion, "d1") == "1234331221434321"


def _reverse_task() -> tasks.TaskSpec:
    """A new task as a user would write it: reverse a word; reward 1 for the exact reversal."""
    def reward(completion, record):
        return float(completion.split("<answer>")[-1].split("</answer>")[0].strip() == record["word"][::-1])

    def generate(seed, n):
        rng = np.random.default_rng(seed)
        return [{"word": "".join(rng.choice(list("abcdefgh"), 5)), "solution": None} for _ in range(n)]

    def validate(record, index):
        if not isinstance(record.get("word"), str):
            raise ValueError(f"examples[{index}]['word'] must be a string")

    return tasks.TaskSpec(
        name="reverse", normalize=lambda row, where: {"word": str(row["word"])}, validate=validate,
        question=lambda r: f"Reverse {r['word']}.", recipe_fields=lambda r: {"question": r["word"]},
        sft_answer=lambda r: r["word"][::-1], reward_sets={s: tasks.pair(reward, reward) for s in tasks.REWARD_SETS},
        extract_answer=lambda completion, reward_set: completion, plain_prompt=lambda r: r["word"],
        generate=generate, generate_training=lambda seed, n, section: [
            dict(r, solution=r["word"][::-1]) for r in generate(seed, n)])


def test_a_task_registered_from_outside_runs_through_config_build_and_scoring(monkeypatch):
    monkeypatch.setitem(spec_module._REGISTRY, "reverse", _reverse_task())
    cfg = config.load(None, ["task.name=reverse", "task.train_size=30", "task.eval_size=10"])
    task = tasks.build_task(cfg.task, cfg.seed)
    assert len(task.eval) == 10 and not {r["word"] for r in task.eval} & {r["word"] for r in task.train}
    first = task.train[0]
    assert task.prompt_text(first) == first["word"]  # plain style
    assert task.target_text(first) == first["word"][::-1]
    assert task.score([first["word"][::-1], first["word"]], [first, first]).tolist() == [1.0, 0.0]
    chat = tasks.make_task("reverse", "chat", [], [first])
    assert chat.prompt_text(first).endswith(f"\n\nReverse {first['word']}.")
    assert chat.target_text(first) == f"<reasoning>\n\n</reasoning>\n<answer>\n{first['word'][::-1]}\n</answer>\n"


def test_a_task_without_a_generator_or_a_plain_prompt_is_refused_by_name():
    with pytest.raises(ConfigError, match="task.prompt_style 'plain' exists for sudoku and countdown; use 'chat' "
                                          "for math"):
        tasks.make_task("math", "plain", [], [])
    with pytest.raises(ConfigError, match="task.name 'chess' is unknown; use one of sudoku, countdown"):
        tasks.make_task("chess", "chat", [], [])
