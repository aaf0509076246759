"""`dlrl-jax plot RUN_DIR`: reward, KL, per-step entropy and the selected-step histogram, one PNG."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dlrl_jax.training.metrics import read_metrics  # noqa: E402

PANELS = ("reward", "kl", "entropy by step", "selected steps", "seconds per iteration")
PHASES = ("rollout", "reward", "reference", "update")


def plot_run(run_dir: str, out: str | None = None) -> str:
    """Draws the run's metrics into RUN_DIR/curves.png (or `out`) and returns the path."""
    if not os.path.isfile(os.path.join(run_dir, "metrics.jsonl")):
        raise FileNotFoundError(f"{run_dir} has no metrics.jsonl; pass the run folder of `dlrl-jax train`")
    records = read_metrics(run_dir)
    rl = [r for r in records if r["phase"] == "rl"]
    evals = [r for r in records if r["phase"] == "eval"]
    # With an SFT warm start there are two evaluations at step 0 (random init, then before RL): the
    # curve starts at the later one.
    starts = [i for i, r in enumerate(evals) if r["step"] == 0]
    evals = evals[starts[-1]:] if starts else evals
    fig, axes = plt.subplots(1, 5, figsize=(22, 3.8))
    ax = axes[0]
    if rl:
        steps = [r["step"] for r in rl]
        ax.plot(steps, [r["reward_mean"] for r in rl], alpha=0.4, label="rollout reward")
        ax.plot(steps, _smooth([r["reward_mean"] for r in rl]), label="rollout reward (smoothed)")
    if evals:
        ax.plot([r["step"] for r in evals], [r["reward"] for r in evals], "o-", label="held-out reward")
    ax.set_title(PANELS[0])
    ax.set_xlabel("RL iteration")
    ax.legend(fontsize=7)
    with_kl = [r for r in rl if "kl" in r]  # wd1 has no reference term
    axes[1].plot([r["step"] for r in with_kl], [r["kl"] for r in with_kl])
    axes[1].set_title(PANELS[1])
    axes[1].set_xlabel("RL iteration")
    if rl:
        profile = np.array([r["entropy_profile"] for r in rl])
        for frac in (0.0, 0.5, 1.0):
            i = min(int(frac * (len(rl) - 1)), len(rl) - 1)
            axes[2].plot(profile[i], label=f"iteration {rl[i]['step']}")
        axes[2].legend(fontsize=7)
        hists = [r["selected_histogram"] for r in rl if "selected_histogram" in r]  # EGSPO only
        if hists:
            hist = np.sum(hists, axis=0)
            axes[3].bar(np.arange(len(hist)), hist)
    axes[2].set_title(PANELS[2])
    axes[2].set_xlabel("denoising step")
    axes[3].set_title(PANELS[3])
    axes[3].set_xlabel("denoising step")
    timed = [r for r in rl if "time_rollout" in r]
    if timed:  # stacked phases; the first iteration includes compilation
        axes[4].stackplot([r["step"] for r in timed], *[[r[f"time_{p}"] for r in timed] for p in PHASES],
                          labels=PHASES)
        axes[4].legend(fontsize=7)
    axes[4].set_title(PANELS[4])
    axes[4].set_xlabel("RL iteration")
    fig.tight_layout()
    out = out or os.path.join(run_dir, "curves.png")
    fig.savefig(out, dpi=90, metadata={"Description": "panels: " + ", ".join(PANELS)})
    plt.close(fig)
    return out


def _smooth(values, window: int = 5):
    values = np.asarray(values, float)
    if len(values) < window:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")
