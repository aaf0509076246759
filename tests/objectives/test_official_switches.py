"""The switches that select the official trainers' smaller behaviours, against hand-worked numbers:
d1's token mean over the micro-batch (algorithm.token_mean), ESPO's own stratified mask counts over
groups of rows (algorithm.elbo_strata), the aggregation=mean step log-prob (its old value is a mean
too, so the first ratio is 1), and LoRA dropout in the old-policy pass (algorithm.old_logprob_dropout)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlrl_jax import config, models
from dlrl_jax.app.run import Run
from dlrl_jax.objectives import diffu_grpo, espo
from dlrl_jax.objectives.elbo import draw_masks_in_strata
from dlrl_jax.training import loop
from tests.training.observe import observe_iterations

MASK = 1


def test_diffu_grpo_token_mean_row_and_batch_by_hand():
    cfg = models.preset("tiny", d_model=32, n_layers=1, n_heads=2, n_kv_heads=2, mlp_hidden=64)
    graphdef, params = models.split(models.init_model(cfg, seed=0))
    rng = np.random.default_rng(0)
    batch = {"prompt_ids": jnp.asarray(rng.integers(3, 100, (4, 5)), jnp.int32), "prompt_mask": jnp.ones((4, 5), bool),
             "completion_ids": jnp.asarray(rng.integers(3, 100, (4, 4)), jnp.int32), "key": jax.random.key(1)}
    # rows end after 3, 1, 2 and 4 tokens; advantages 1, -1, 0.5, 2
    batch["completion_mask"] = jnp.asarray(np.arange(4)[None, :] < np.array([3, 1, 2, 4])[:, None])
    batch["advantage"] = jnp.asarray([1.0, -1.0, 0.5, 2.0])
    settings = diffu_grpo.DiffuGRPOSettings(mask_id=MASK, beta=0.04)
    lp = diffu_grpo.token_logprobs(graphdef, params, batch["prompt_ids"], batch["prompt_mask"],
                                   batch["completion_ids"], batch["key"], settings)
    batch.update(old_logprob=lp, ref_logprob=lp)  # ratio 1, k3 0: every real token's loss is -A
    row, _ = diffu_grpo.diffu_grpo_loss(graphdef, params, batch, settings, total_rows=8)
    token, _ = diffu_grpo.diffu_grpo_loss(graphdef, params, batch, dataclasses.replace(settings, token_mean="batch"),
                                          total_rows=8)
    # row: -(1 - 1 + 0.5 + 2) / 8; batch (d1): -(1*3 - 1*1 + 0.5*2 + 2*4) / 10 tokens, x 4 rows / 8
    np.testing.assert_allclose(float(row), -2.5 / 8, atol=1e-5)
    np.testing.assert_allclose(float(token), -11.0 / 10 * 4 / 8, atol=1e-5)


@pytest.mark.parametrize("gen_length,strata,table", [
    (7, 4, lambda k: [k, k + 2, k + 4, k + 6]),            # (G+1)/S = 2: exact
    (4, 3, lambda k: [k, k + 2, k + 3]),                   # 5/3: round(1.67) = 2, round(3.33) = 3
    (2, 2, lambda k: [k, {0: 2, 1: 2, 2: 4}[k]]),          # 3/2: torch.round halves to even (1.5, 2.5 -> 2; 3.5 -> 4)
])
def test_espo_strata_counts_follow_the_official_formula(gen_length, strata, table):
    G = gen_length
    seen_k = set()
    for seed in range(60):
        key = jax.random.key(seed)
        masked, counts = draw_masks_in_strata(key, 0, 2 * strata, G, strata)
        masked, counts = np.asarray(masked), np.asarray(counts)
        np.testing.assert_array_equal(masked.sum(axis=1), counts)
        for group in counts.reshape(2, strata):
            k = int(group[0])
            assert [x % (G + 1) for x in table(k)] == group.tolist(), (k, group)
            seen_k.add(k)
        # micro-batches (row offsets) draw exactly the rows of the whole batch
        first, _ = draw_masks_in_strata(key, 0, strata, G, strata)
        second, _ = draw_masks_in_strata(key, strata, strata, G, strata)
        np.testing.assert_array_equal(np.concatenate([first, second]), masked)
    assert seen_k == set(range(G + 1))  # k ~ U{0..G}


def _prepared(tmp_path, overrides, iterations=1):
    """[(policy params, first inner update's items)] of each RL iteration of a tiny run."""
    cfg = config.load(None, [f"run.out_dir={tmp_path}", "sft.steps=0", "task.train_size=32", "task.eval_size=8",
                             "algorithm.prompts_per_batch=2", "algorithm.group_size=2", "run.progress=false",
                             "run.tensorboard=false", "algorithm.elbo_samples=1", "optim.learning_rate=0.05",
                             *overrides])
    run = Run(cfg)
    rl = loop.RLLoop(run, run.params, run.reference(run.params), progress=False)
    captured = []

    def capture(rl, traj, reward, selection, k):  # before the iteration's jitted call (which donates the state)
        stack, _ = rl.items(traj, reward, selection, k)  # [optimizer steps, items per step, ...]
        captured.append((jax.tree.map(jnp.copy, rl.params), jax.tree.map(lambda x: x[0], stack)))

    observe_iterations(rl, capture)
    for _ in range(iterations):
        rl.step()
    rl.close()
    run.writer.close()
    return rl, captured


@pytest.mark.parametrize("aggregation", [pytest.param("mean", marks=pytest.mark.slow), "sum"])  # (mean: 20 s, slow)
def test_egspo_first_ratio_is_one_for_either_aggregation(tmp_path, aggregation):
    rl, [(params, items)] = _prepared(tmp_path, ["algorithm.name=egspo", f"algorithm.aggregation={aggregation}"])
    loss = jax.jit(rl.algorithm.loss)  # (one compile for every item; op by op is several times slower)
    for i in range(len(items["step"])):
        _, sums = loss(params, jax.tree.map(lambda x: x[i], items))
        np.testing.assert_allclose(float(sums["ratio"]) / float(sums["count"]), 1.0, atol=1e-4)


# slow (34 s: two runs of two iterations); tests/training/test_lora_dropout_items.py stays in the suite
@pytest.mark.slow
def test_old_elbo_with_and_without_train_mode_dropout(tmp_path):
    lora = ["algorithm.name=espo", "model.lora_rank=4", "model.lora_dropout=0.5"]
    for switch in (False, True):
        rl, captured = _prepared(tmp_path / str(switch), [*lora, f"algorithm.old_logprob_dropout={switch}"], 2)
        params, items = captured[1]  # the second iteration: the adapter is trained, so dropping its input matters
        item = jax.tree.map(lambda x: x[0], items)
        plain = espo.elbos(rl.run.graphdef, params, {k: v for k, v in item.items() if k != "dropout_key"},
                           jax.random.wrap_key_data(item["key"]), rl.algorithm.settings)
        same = np.allclose(np.asarray(item["old_elbo"]), np.asarray(plain), rtol=1e-5)
        assert same != switch, f"old_logprob_dropout={switch}: old ELBO equal to the no-dropout ELBO: {same}"
