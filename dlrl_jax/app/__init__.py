"""The application on top of the RL engine (`dlrl_jax.training`): what the `dlrl-jax` commands run.

  run.py         `Run`: the host side of a run made from its configuration (mesh, model, tokenizer, task,
                 prompt length, run folder, the loops' settings): the edge below which no code sees
                 the whole configuration
  train.py       the `dlrl-jax train` / `sft` driver: run lock, SIGTERM saves, Orbax checkpoints and
                 resume, held-out evaluations, exports, the summary
  seeded.py      many seeds of the tiny Sudoku run as one pure program (`jit(vmap(train))`), built
                 from the engine's own pieces
  evaluation.py  the evaluator shared by training's held-out evaluations and `dlrl-jax eval`
  metrics.py     metrics sinks: metrics.jsonl, TensorBoard, Weights & Biases
  plot.py        `dlrl-jax plot`
  preemption.py  SIGTERM handling and the resumable exit status
  run_lock.py    one run per folder
"""
