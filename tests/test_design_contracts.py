"""The entry points ../shared/DESIGN.md promises to other code and users stay where it says they are,
whatever the package layout behind them."""

import numpy as np

from dlrl_jax import models, rewards


def test_models_from_pretrained_reads_back_what_save_pretrained_wrote(tmp_path):
    cfg = models.preset("tiny", d_model=32, n_layers=1, n_heads=2, n_kv_heads=2, mlp_hidden=64, vocab_size=40)
    model = models.init_model(cfg, seed=0)
    models.save_pretrained(model, str(tmp_path))
    loaded = models.from_pretrained(str(tmp_path), dtype="float32")
    ids = np.array([[3, 5, 7, 9, 11, 2]], np.int32)
    mask = np.ones(ids.shape, bool)
    want, got = np.asarray(model(ids, mask)), np.asarray(loaded(ids, mask))
    assert got.shape == (1, 6, 40)
    np.testing.assert_array_equal(got, want)


def test_rewards_score_gives_one_reward_per_completion():
    example = {"puzzle": "1234341221434321".replace("1", "0", 2), "solution": "1234341221434321"}
    # two blanks (cells 0 and 6, the first two 1s); the first completion fills both right, the second
    # only cell 0 (a 2 in cell 6)
    assert [i for i, ch in enumerate(example["puzzle"]) if ch == "0"] == [0, 6]
    got = rewards.score("sudoku", ["1234341221434321", "1234342221434321"], [example, example],
                        reward_set="dlrl")
    assert got.dtype == np.float32 and got.shape == (2,)
    np.testing.assert_allclose(got, [1.0, 0.5])
