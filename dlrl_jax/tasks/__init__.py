"""Tasks: what a task is, one module each, behind a registry -- the first stage of the pipeline
(prompts -> rollout -> rewards -> objectives -> update).

A task module (`sudoku`, `countdown`, `gsm8k`, `math`, `code`) defines `TASK`, a frozen `TaskSpec`:
its record schema (`normalize` a source row, `validate` a record), its prompts (`question` for chat,
`plain_prompt` for tiny models, `recipe_fields` for the papers' templates in `recipe_prompts`), its SFT
target (`sft_answer`, `sft_reasoning`), its reward sets (`reward_sets`: "dlrl" / "d1" / "espo" -> the
reward and accuracy functions of `dlrl_jax.rewards`), what a reward reads (`extract_answer`), and its
generator where it has one (`generate`, `generate_training`).

    tasks.get("sudoku")          -> TaskSpec (an unknown name: an error naming task.name and the choices)
    tasks.names()                -> ("sudoku", "countdown", "gsm8k", "math", "code")
    tasks.register(spec)         -> adds a TaskSpec
    tasks.score(name, completions, records, reward_set=...)   -> float32 [N]
    tasks.read_records(source, name)                          -> records in the task's schema
    tasks.build_task(section, seed) / tasks.make_task(...) -> Task: records, prompt_text, target_text, score

Adding a task is one module and one line: write `dlrl_jax/tasks/<name>.py` defining `TASK =
TaskSpec(name="<name>", ...)` (its reward functions in `dlrl_jax/rewards/<name>.py` or in the module
itself), then import it below and add `register(<name>.TASK)`. The config accepts every registered
name as `task.name`; `dlrl-jax eval --task` too.
"""

from dlrl_jax.tasks.spec import RewardPair, TaskSpec, UnknownTask, get, names, pair, per_completion, register
from dlrl_jax.tasks import code, countdown, gsm8k, math, sudoku

register(sudoku.TASK)
register(countdown.TASK)
register(gsm8k.TASK)
register(math.TASK)
register(code.TASK)

from dlrl_jax.tasks.scoring import REWARD_SETS, accuracy, extracted_answer, score  # noqa: E402
from dlrl_jax.tasks.build import Task, build_task, make_task, read_records, target_text  # noqa: E402

__all__ = ["REWARD_SETS", "RewardPair", "Task", "TaskSpec", "UnknownTask", "accuracy", "build_task",
           "extracted_answer", "get", "make_task", "names", "pair", "per_completion", "read_records", "register",
           "score", "target_text"]
