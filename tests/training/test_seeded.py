"""The seeded run (app/seeded.py): many seeds in one compiled program equal the seeds run one by
one, and its JAX Sudoku reward equals the host reward path (decode -> Task.score) on many completions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlrl_jax import config
from dlrl_jax.app import seeded
from dlrl_jax.config import ConfigError
from dlrl_jax.data.sudoku import generate_sudoku
from dlrl_jax.rewards.decoding import completion_texts
from dlrl_jax.rewards.sudoku_tokens import TokenTable, cells, sudoku_cell_reward
from dlrl_jax.tasks import make_task
from dlrl_jax.training import setup

TINY = ["task.train_size=48", "task.eval_size=10", "sft.steps=3", "sft.batch_size=8", "algorithm.prompts_per_batch=2",
        "algorithm.group_size=4", "sampler.steps=4", "algorithm.k=2", "run.iterations=3", "run.eval_every=2"]
# XLA:CPU with LLVM's cheap passes: a third of the compile time; both programs get the same options
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _tokenizer():
    model, tokenizer = setup.build_model_and_tokenizer(config.load(None, []).model)
    return tokenizer, model.cfg.vocab_size


def _completions(tokenizer, vocab, rng, solutions, n_rows):
    """Completions [n_rows, 16] that hit every path of the host decode and reward: digits (right and
    wrong), EOS early or late, mask / pad / special / unknown ids between digits, letters and
    punctuation, a written "</answer>" (cuts the answer), a written "<answer>" (does not)."""
    ids = tokenizer.encode
    digit_ids = np.asarray(ids("0123456789"))
    specials = np.asarray([tokenizer.mask_id, tokenizer.pad_id, 3, 4, 5, 6, vocab - 1, 110])
    rows = np.empty((n_rows, 16), np.int64)
    for i in range(n_rows):
        solution = solutions[i]
        kind = i % 6
        if kind == 0:  # the solution with some cells wrong
            row = [int(c) if rng.random() < 0.8 else int(rng.integers(0, 10)) for c in solution]
            row = list(digit_ids[row])
        elif kind == 1:  # digits with junk between them, then EOS somewhere
            row = [int(rng.choice(digit_ids)) if rng.random() < 0.6 else int(rng.choice(specials))
                   for _ in range(16)]
            row[int(rng.integers(0, 16))] = tokenizer.eos_id
        elif kind == 2:  # anything in the vocabulary
            row = list(rng.integers(0, vocab, 16))
        elif kind == 3:  # a written close tag among digits (mask ids may split it: it still counts)
            tag = ids("</answer>")
            head = list(digit_ids[[int(c) for c in solution[:3]]])
            tag = tag[:4] + [tokenizer.mask_id] + tag[4:] if rng.random() < 0.5 else tag
            row = (head + tag + list(digit_ids[[int(c) for c in solution]]))[:16]
        elif kind == 4:  # a written open tag: the match widens, every digit still counts
            row = (ids("<answer>") + list(digit_ids[[int(c) for c in solution]]))[:16]
            row = row[8:] + row[:8] if rng.random() < 0.5 else row
        else:  # letters, spaces and digits
            row = list(rng.choice(ids("12 34\nab<>/x") + [tokenizer.eos_id], 16))
        rows[i] = row
    return rows


def test_token_reward_equals_the_host_reward():
    tokenizer, vocab = _tokenizer()
    rng = np.random.default_rng(0)
    records = []
    for blanks in (0, 1, 4, 8, 10, 12):
        records += generate_sudoku(blanks, 40, num_blanks=blanks)
    records = [records[i] for i in rng.permutation(len(records))]
    completions = _completions(tokenizer, vocab, rng, [r["solution"] for r in records], len(records))
    # the oracle: the host path of the training loop (decode up to EOS, then Task.score with the dlrl set)
    task = make_task("sudoku", "plain", [], [])
    expected = task.score(completion_texts(tokenizer, completions, "cut_eos"), records)
    table = TokenTable.from_tokenizer(tokenizer, vocab, 16)
    reward, solved = jax.jit(lambda c, p, s: sudoku_cell_reward(c, p, s, table))(
        jnp.asarray(completions, jnp.int32), cells([r["puzzle"] for r in records]),
        cells([r["solution"] for r in records]))
    reward = np.asarray(reward)
    assert len(np.unique(expected)) > 10 and 0.05 < (expected >= 1).mean() < 0.9  # many different cases
    bad = np.flatnonzero(np.abs(reward - expected) > 1e-6)
    assert not len(bad), (f"{len(bad)} of {len(records)} rewards differ, e.g. completion {completions[bad[0]].tolist()} "
                          f"of {records[bad[0]]}: JAX {reward[bad[0]]}, host {expected[bad[0]]}")
    np.testing.assert_array_equal(np.asarray(solved), expected >= 1 - 1e-6)


def test_token_table_refuses_what_it_cannot_score():
    tokenizer, vocab = _tokenizer()
    with pytest.raises(ValueError, match="gen_length 17"):
        TokenTable.from_tokenizer(tokenizer, vocab, 17)
    with pytest.raises(ConfigError, match="model.lora_rank"):
        seeded.make_train(config.load(None, ["model.lora_rank=4"]))
    with pytest.raises(ConfigError, match="task.reward_set"):
        seeded.make_train(config.load(None, ["task.reward_set=d1"]))


# slow, every case (egspo_sa: about a minute on 2 cores, two whole-run compiles): the seeded program runs in the
# suite in tests/training/test_seeded_equals_train.py
@pytest.mark.parametrize("algorithm", [pytest.param("egspo_sa", marks=pytest.mark.slow),
                                       pytest.param("egspo", marks=pytest.mark.slow),
                                       pytest.param("espo", marks=pytest.mark.slow),
                                       pytest.param("diffu_grpo", marks=pytest.mark.slow)])
def test_vmapped_seeds_equal_separate_runs(algorithm):
    """jit(vmap(train)) over 3 seeds gives each seed's metrics of jit(train) run alone: vmap adds a batch
    axis and nothing else. A seed-dependent leak (a key, a data row or a reduction across seeds) breaks it."""
    extra = {"espo": ["algorithm.elbo_samples=1", "algorithm.beta=0.01"],
             "diffu_grpo": ["algorithm.eps_low=0.5"]}.get(algorithm, [])
    cfg = config.load(None, TINY + [f"algorithm.name={algorithm}"] + extra)
    train = seeded.make_train(cfg)
    seeds = [0, 1, 2]
    per_seed = [seeded.seed_data(cfg, s) for s in seeds]
    seed_array, stacked = jnp.asarray(seeds, jnp.int32), seeded.stack_seed_data(per_seed)
    together = jax.jit(jax.vmap(train)).lower(seed_array, stacked).compile(FAST_COMPILE)(seed_array, stacked)
    alone = jax.jit(train).lower(seed_array[0], per_seed[0]).compile(FAST_COMPILE)
    for i, seed in enumerate(seeds):
        single = alone(seed_array[i], per_seed[i])
        for (path, a), b in zip(jax.tree.leaves_with_path(together), jax.tree.leaves(single), strict=True):
            # Two programs (batched and not) sum in different orders: the losses are signed means of
            # O(1)-nat terms, so they may differ by 1e-5 of that scale (tests/training/test_golden_iteration.py
            # says why); rewards are exact, and a token sampled differently moves one by a whole cell's share.
            np.testing.assert_allclose(np.asarray(a)[i], b, rtol=1e-5, atol=1e-5,
                                       err_msg=f"seed {seed}, metric {jax.tree_util.keystr(path)}")
    # the seeds really differ (a vmap that broadcast one seed would pass the loop above only by luck)
    assert len({round(float(x), 6) for x in together["sft_loss"][:, 0]}) == 3
    assert together["rl"]["reward_mean"].shape == (3, 3) and together["eval"]["reward"].shape == (3, 1)
    assert np.all(np.isfinite(np.asarray(together["rl"]["loss"])))


# slow (about 50 s on 2 cores): tests/training/test_seeded_equals_train.py runs the seeded program in the suite
@pytest.mark.slow
def test_a_warm_start_handed_in_continues_the_same_run():
    """make_warm_start's (params, key) handed to train with sft.steps=0 give the RL iterations and
    evaluations of the run that made them (what bench/compare_sudoku.py relies on to train every
    algorithm from one warm start per seed): the same SFT scan and key chain, split in two programs."""
    cfg = config.load(None, TINY + ["algorithm.name=diffu_grpo", "algorithm.eps_low=0.5"])
    straight = jax.jit(seeded.make_train(cfg)).lower(jnp.int32(1), seeded.seed_data(cfg, 1)).compile(FAST_COMPILE)(
        jnp.int32(1), seeded.seed_data(cfg, 1))
    warm = jax.jit(seeded.make_warm_start(cfg))
    params, key, losses = warm(jnp.int32(1), seeded.seed_data(cfg, 1))
    # two XLA programs (and compile options): float32 rounding may differ in the last bits on another CPU
    np.testing.assert_allclose(np.asarray(losses), np.asarray(straight["sft_loss"]), rtol=1e-5, atol=1e-5)
    rl_cfg = config.load(None, TINY + ["algorithm.name=diffu_grpo", "algorithm.eps_low=0.5", "sft.steps=0"])
    data = seeded.seed_data(rl_cfg, 1, params, key)
    continued = jax.jit(seeded.make_train(rl_cfg)).lower(jnp.int32(1), data).compile(FAST_COMPILE)(jnp.int32(1), data)
    for name in ("eval_before", "eval_after", "eval", "rl"):
        for (path, a), b in zip(jax.tree.leaves_with_path(continued[name]), jax.tree.leaves(straight[name]), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5,
                                       err_msg=f"{name}{jax.tree_util.keystr(path)}")
