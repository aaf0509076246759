"""The step selector against numpy: argsort with ties and padding, uniform spacing, random draws."""

import jax
import numpy as np
import pytest

from dlrl_jax.objectives.selection import adaptive_k, select_steps


def _numpy_top_k(entropy, count, k):
    out = []
    for e, c in zip(entropy, count):
        usable = [s for s in range(len(e)) if c[s] > 0]
        # sort by (-entropy, step): the earlier step wins a tie
        out.append(sorted(usable, key=lambda s: (-e[s], s))[:k])
    return out


def test_top_k_matches_numpy_with_ties_and_padding():
    rng = np.random.default_rng(0)
    B, T, K = 6, 16, 5
    entropy = rng.choice([0.1, 0.5, 0.9, 1.3], size=(B, T)).astype(np.float32)  # many ties
    count = np.full((B, T), 2)
    count[1, 10:] = 0  # padding: steps that committed nothing
    count[2, 3:] = 0   # only 3 usable steps < K
    entropy[1, 12] = 99.0  # a padded step with a huge entropy must still be skipped
    steps, valid = select_steps(entropy, count, jax.random.key(0), k=K)
    want = _numpy_top_k(entropy, count, K)
    for b in range(B):
        got = [int(s) for s, v in zip(steps[b], valid[b]) if v]
        assert got == want[b], (b, got, want[b])
    assert valid[2].tolist() == [True, True, True, False, False]


def test_uniform_spacing_and_last_step():
    T = 12
    entropy = np.zeros((3, T), np.float32)
    count = np.ones((3, T), int)
    count[1, 9:] = 0   # last usable step is 8
    count[2, 2:] = 0   # two usable steps only
    steps, valid = select_steps(entropy, count, jax.random.key(0), k=4, mode="uniform")
    assert steps[0].tolist() == [2, 5, 8, 11]
    assert steps[1].tolist() == [2, 4, 6, 8]  # 8 - floor((3-j) 9/4) for j = 0..3: 8-6, 8-4, 8-2, 8-0
    assert [int(s) for s, v in zip(steps[2], valid[2]) if v] == [0, 1]


def test_random_selection_is_distinct_includes_last_and_is_uniform():
    T, K, draws = 10, 3, 3000
    count = np.ones((draws, T), int)
    count[:, 7:] = 0  # last usable step is 6
    steps, valid = select_steps(np.zeros((draws, T), np.float32), count, jax.random.key(1), k=K, mode="random")
    steps = np.asarray(steps)
    assert valid.all()
    assert (steps[:, -1] == 6).all() and (np.diff(steps, axis=1) > 0).all()
    freq = np.bincount(steps[:, :-1].ravel(), minlength=T)[:6] / (draws * (K - 1))
    np.testing.assert_allclose(freq, np.full(6, 1 / 6), atol=0.02)  # the other K-1 uniform over 0..5


def test_adaptive_k_against_hand_table():
    entropy = np.array([[4.0, 3.0, 2.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    count = np.ones_like(entropy)
    # row 0: totals 10, top-2 = 7 >= 0.7*10 -> 2; row 1: need 3 of 4 (0.75 >= 0.7) -> 3; max = 3
    assert adaptive_k(entropy, count, 0.7) == 3
    assert adaptive_k(entropy, count, 0.7, k_max=2) == 2
    with pytest.raises(ValueError, match="alpha must be in"):
        adaptive_k(entropy, count, 0.0)
