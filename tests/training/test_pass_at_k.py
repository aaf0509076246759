"""The unbiased pass@k estimator against exhaustive enumeration over k-subsets of n samples, and
against exact integer binomials (scipy's comb, or Python's math.comb) where enumeration is too long."""

import itertools
import math
from fractions import Fraction

import pytest

from dlrl_jax.app.pass_at_k import k_values, mean_pass_at_k, pass_at_k


@pytest.mark.parametrize("n", range(1, 8))
def test_pass_at_k_is_the_share_of_k_subsets_with_a_correct_sample(n):
    for c in range(n + 1):
        samples = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(samples, k))
            expected = Fraction(sum(any(s) for s in subsets), len(subsets))
            assert pass_at_k(n, c, k) == pytest.approx(float(expected), abs=1e-12), (n, c, k)


def test_pass_at_k_at_large_n_against_exact_binomials():
    try:
        from scipy.special import comb
    except ImportError:  # the exact integers are what scipy's comb(exact=True) returns
        comb = lambda a, b, exact=True: math.comb(a, b)  # noqa: E731
    for n, c, k in ((200, 3, 100), (200, 0, 7), (200, 199, 2), (1000, 17, 500), (64, 5, 64), (50, 25, 1)):
        expected = 1 - Fraction(int(comb(n - c, k, exact=True)), int(comb(n, k, exact=True)))
        assert pass_at_k(n, c, k) == pytest.approx(float(expected), rel=1e-12, abs=1e-15), (n, c, k)


def test_pass_at_1_is_the_share_correct_and_the_reported_ks():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert (k_values(1), k_values(8), k_values(10), k_values(16)) == ([1], [1, 2, 4, 8], [1, 2, 4, 8, 10],
                                                                       [1, 2, 4, 8, 16])
    # two examples: 1 of 4 right (pass@2 = 1 - C(3,2)/C(4,2) = 1/2), 4 of 4 right (1): mean 3/4
    assert mean_pass_at_k([1, 4], 4) == pytest.approx({"pass@1": (0.25 + 1) / 2, "pass@2": 0.75, "pass@4": 1.0})
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(4, 1, 5)
