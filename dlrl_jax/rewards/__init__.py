"""Reward functions per task (countdown, sudoku, gsm8k, math, code), the completion decoding they read, and
the code sandbox. Which function scores which task under which reward set is said by the task modules
(`dlrl_jax.tasks`); `dlrl_jax.tasks.score` runs them."""
