"""The end-of-run table's sampled columns: the unbiased pass@k against enumerating every k-subset of
the samples, and the table itself on a hand-made summary."""

import itertools

import pytest

from dlrl_jax.app.sampled_eval import pass_at_k
from dlrl_jax.app.train import format_summary


@pytest.mark.parametrize("n,c", [(8, 0), (8, 1), (8, 3), (8, 8), (5, 2), (6, 5), (1, 1)])
def test_pass_at_k_is_the_share_of_k_subsets_holding_a_correct_sample(n, c):
    samples = [True] * c + [False] * (n - c)
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(range(n), k))
        want = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
        assert pass_at_k(n, c, k) == pytest.approx(want, abs=1e-12)


def test_pass_at_k_refuses_impossible_counts():
    for n, c, k in ((4, 5, 1), (4, 1, 5), (4, 1, 0)):
        with pytest.raises(ValueError, match="pass@k needs"):
            pass_at_k(n, c, k)


def test_table_shows_greedy_per_sample_and_pass_at_k_before_and_after():
    summary = {"eval_examples": 256, "seed": 1, "algorithm": "egspo_sa", "seconds": 12.5,
               "initial": {"reward": 0.0, "solved": 0.0},
               "before": {"reward": 0.5, "solved": 0.125, "sampled_solved": 0.0625, "pass@8": 0.25},
               "after": {"reward": 0.75, "solved": 0.375, "sampled_solved": 0.3125, "pass@8": 0.5}}
    lines = format_summary(summary).splitlines()
    assert lines[0].split() == ["held-out", "(256)", "reward", "solved", "per", "sample", "pass@8"]
    assert lines[1].split() == ["initial", "(random", "init)", "0.000", "0.0%", "-", "-"]
    assert lines[2].split() == ["before", "RL", "0.500", "12.5%", "6.2%", "25.0%"]
    assert lines[3].split() == ["after", "RL", "0.750", "37.5%", "31.2%", "50.0%"]
    assert lines[4].split()[:5] == ["RL", "change", "+0.250", "+25.0", "points"] and "(x3.00)" in lines[4]
    # without run.eval_samples the table is today's
    plain = {k: ({"reward": v["reward"], "solved": v["solved"]} if isinstance(v, dict) else v) for k, v in summary.items()}
    assert format_summary(plain).splitlines()[2].split() == ["before", "RL", "0.500", "12.5%"]
