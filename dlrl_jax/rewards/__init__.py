"""Reward functions per task (countdown, sudoku, gsm8k, math, code), the completion decoding they read, and
the code sandbox. Which function scores which task under which reward set is said by the task modules
(`dlrl_jax.tasks`); `dlrl_jax.tasks.score` runs them."""


def score(task, completions, examples, **kwargs):
    """The published entry point (DESIGN.md's contract): rewards [N] float32, one per completion, from
    `dlrl_jax.tasks.score` with the same keyword arguments. Imported on call: the task modules build on
    the reward functions of this package, so this package cannot import them at load time."""
    from dlrl_jax.tasks import score as score_by_task
    return score_by_task(task, completions, examples, **kwargs)
