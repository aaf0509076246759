"""`dlrl-jax plot RUN_DIR`: reward, held-out solved rate, KL, per-step entropy, the selected-step histogram
and seconds per iteration, one PNG."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dlrl_jax.app.metrics import read_metrics  # noqa: E402

PANELS = ("reward", "held-out solved", "kl", "entropy by step", "selected steps", "seconds per iteration")
PHASES = ("rollout", "reward", "reference", "update")


def plot_run(run_dir: str, out: str | None = None) -> str:
    """Draws the run's metrics into RUN_DIR/curves.png (or `out`) and returns the path."""
    if not os.path.isfile(os.path.join(run_dir, "metrics.jsonl")):
        raise FileNotFoundError(f"{run_dir} has no metrics.jsonl; pass the run folder of `dlrl-jax train`")
    torn = []
    records = read_metrics(run_dir, torn_tail=torn)
    if torn:
        print(f"[dlrl-jax] plot: {run_dir}/metrics.jsonl line {torn[0]} is torn (a run killed mid-write, or "
              "still writing); plotting the rows before it")
    rl = [r for r in records if r["phase"] == "rl"]
    evals = [r for r in records if r["phase"] == "eval"]
    # With an SFT warm start there are two evaluations at step 0 (random init, then before RL): the
    # curve starts at the later one.
    starts = [i for i, r in enumerate(evals) if r["step"] == 0]
    evals = evals[starts[-1]:] if starts else evals
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.3 * len(PANELS), 3.8))
    ax = dict(zip(PANELS, axes))
    for name, axis in ax.items():
        axis.set_title(name)
        axis.set_xlabel("denoising step" if name in ("entropy by step", "selected steps") else "RL iteration")
    if rl:
        steps = [r["step"] for r in rl]
        ax["reward"].plot(steps, [r["reward_mean"] for r in rl], alpha=0.4, label="rollout reward")
        ax["reward"].plot(steps, _smooth([r["reward_mean"] for r in rl]), label="rollout reward (smoothed)")
    if evals:
        ax["reward"].plot([r["step"] for r in evals], [r["reward"] for r in evals], "o-", label="held-out reward")
    ax["reward"].legend(fontsize=7)
    solved = [r for r in evals if "solved" in r]
    if solved:  # the share of held-out prompts answered fully right, greedy decoding
        ax["held-out solved"].plot([r["step"] for r in solved], [100 * r["solved"] for r in solved], "o-", color="C2",
                                   label="solved (reward >= 1)")
    correct = [r for r in evals if "eval_correct" in r]
    if correct:  # the task's own correctness, what `dlrl-jax eval` reports as accuracy (Sudoku: blanks right)
        ax["held-out solved"].plot([r["step"] for r in correct], [100 * r["eval_correct"] for r in correct], "s--",
                                   color="C3", label="task accuracy")
        ax["held-out solved"].legend(fontsize=7)
    ax["held-out solved"].set_ylabel("% solved / accuracy")
    with_kl = [r for r in rl if "kl" in r]  # wd1 has no reference term
    ax["kl"].plot([r["step"] for r in with_kl], [r["kl"] for r in with_kl])
    if rl:
        profile = np.array([r["entropy_profile"] for r in rl])
        for frac in (0.0, 0.5, 1.0):
            i = min(int(frac * (len(rl) - 1)), len(rl) - 1)
            ax["entropy by step"].plot(profile[i], label=f"iteration {rl[i]['step']}")
        ax["entropy by step"].legend(fontsize=7)
        hists = [r["selected_histogram"] for r in rl if "selected_histogram" in r]  # EGSPO only
        if hists:
            hist = np.sum(hists, axis=0)
            ax["selected steps"].bar(np.arange(len(hist)), hist)
    timed = [r for r in rl if "time_rollout" in r]
    if timed:  # stacked phases; the first iteration includes compilation
        ax["seconds per iteration"].stackplot([r["step"] for r in timed],
                                              *[[r[f"time_{p}"] for r in timed] for p in PHASES], labels=PHASES)
        ax["seconds per iteration"].legend(fontsize=7)
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
