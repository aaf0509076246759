"""The run's independent random streams: each is fold_in(key(seed), STREAM) (evaluation: key(seed ^
EVAL_STREAM)), so that the draws of one never move when another is used more or less often, and a
resumed run (or the vmapped seeds of app/seeded.py) draws exactly what a straight run draws."""

import jax
import jax.numpy as jnp

DROPOUT_STREAM = 0xD0     # LoRA dropout keys of the training forwards (old-policy passes: DROPOUT_STREAM + 1)
MASK_STREAM = 0x5EED      # ESPO's, diffu-GRPO's and wd1's mask draws, then folded with the update index
EVAL_STREAM = 0xE7A1      # held-out evaluation: key(seed ^ EVAL_STREAM), folded with the RL iteration
SAMPLES_STREAM = 0x5A3E   # pass@k samples of an evaluation: its key folded with this (then the sample's batch)


def eval_key(seed, step):
    """The held-out evaluation's key after `step` RL iterations (a batch folds in its first row):
    fold_in(key(seed ^ EVAL_STREAM), step). `seed` may be traced (the seeded program's vmapped seeds)."""
    mixed = seed ^ EVAL_STREAM if isinstance(seed, int) else jnp.bitwise_xor(seed, EVAL_STREAM)
    return jax.random.fold_in(jax.random.key(mixed), step)
