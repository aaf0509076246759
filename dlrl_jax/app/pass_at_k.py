"""pass@k from n samples per example: the unbiased estimator of Chen et al. 2021 ("Evaluating Large
Language Models Trained on Code", eq. 1): with c of n samples correct,

    pass@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{i = n-c+1}^{n} (1 - k / i)

the probability that k samples drawn without replacement from the n include a correct one. The
product form never forms the binomials (C(200, 100) overflows a float64), and each factor lies in
[0, 1], so it loses no precision. Per example, then averaged over the examples.

Correctness is 1/0 per sample (for Sudoku's fraction of blanks right, a sample counts as correct only
when it solves the whole grid: pass@k asks whether any of k samples is right)."""

from __future__ import annotations

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of one example with `c` of `n` samples correct (1 <= k <= n)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def k_values(n: int) -> list[int]:
    """The k reported for n samples: the powers of 2 up to n, and n itself."""
    if n < 1:
        raise ValueError(f"pass@k needs at least one sample, got {n}")
    return sorted({2 ** i for i in range(n.bit_length()) if 2 ** i <= n} | {n})


def mean_pass_at_k(correct_counts, n: int) -> dict[str, float]:
    """{"pass@k": mean over examples} for every k of `k_values(n)`; `correct_counts[i]`: correct samples
    of example i, out of n."""
    counts = [int(c) for c in correct_counts]
    if not counts:
        raise ValueError("pass@k of no examples")
    return {f"pass@{k}": float(np.mean([pass_at_k(n, c, k) for c in counts])) for k in k_values(n)}
