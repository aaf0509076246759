"""The application on top of the RL engine (`dlrl_jax.training`): what the `dlrl-jax` commands run.

  train.py       the `dlrl-jax train` / `sft` driver: run lock, SIGTERM saves, Orbax checkpoints and
                 resume, held-out evaluations, exports, the summary
  evaluation.py  the evaluator shared by training's held-out evaluations and `dlrl-jax eval`
  metrics.py     metrics sinks: metrics.jsonl, TensorBoard, Weights & Biases
  plot.py        `dlrl-jax plot`
  preemption.py  SIGTERM handling and the resumable exit status
  run_lock.py    one run per folder
"""
