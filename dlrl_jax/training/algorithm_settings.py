"""The settings of the RL objectives: the config's `algorithm:` section (dlrl_jax.config reads it from
YAML and validates it). It lives with the training engine, which reads it through `Context.algorithm`,
so the engine needs no import of the application's whole `Config`."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class AlgorithmSection:
    name: str = "egspo_sa"        # egspo | egspo_sa | espo | diffu_grpo | wd1 | sft
    prompts_per_batch: int = 8
    group_size: int = 8
    k: int = 4                    # selected steps per completion
    selection: str = "top_k_entropy"  # top_k_entropy | random | uniform | adaptive
    adaptive_alpha: float = 0.7
    lam: float = 0.5              # stepwise-advantage weight (egspo_sa); egspo uses 0
    eps_low: float = 0.2
    eps_high: float = 0.5
    beta: float = 0.0             # KL weight; 0 in the demo (bench/RESULTS.md, issue 28); the papers' configs set 0.04 / 0.01
    mu: int = 1                   # optimizer steps per rollout batch
    micro_batches: int = 1
    aggregation: str = "sum"
    elbo_samples: int = 2         # espo: Monte-Carlo ELBO samples M (each two coupled passes)
    elbo_remat: bool | str = "auto"  # espo: recompute each ELBO pass in the backward (less memory, ~1/3 more
    #                               work); auto: only when the passes' activations would pass 1 GiB
    p_mask_prompt: float = 0.15   # diffu_grpo: prompt-token mask probability
    # egspo/egspo_sa: selected-step columns per optimizer step, as the official trainer's gradient
    # accumulation joins its one-column micro-steps (k / columns optimizer steps per pass, mu passes per
    # rollout); 0: one optimizer step over all k columns per pass, their losses summed
    columns_per_update: int = 2
    token_mean: str = "row"       # diffu_grpo: "row" (each row's token mean, then rows) | "batch" (d1: over all
    #                               completion tokens of the micro-batch)
    elbo_strata: int = 0          # espo: rows per stratified mask-count group (ESPO: the per-device batch);
    #                               0: the micro-batch
    old_logprob_dropout: bool = False  # espo/diffu_grpo: LoRA dropout also in the old-policy pass (the
    #                               official trainers compute it in train mode)
    ref_sync_every: int = 0       # > 0: every N optimizer steps ref <- ref_sync_mix * policy + (1 - mix) * ref
    ref_sync_mix: float = 0.6     # (TRL's sync_ref_model / ref_model_mixup_alpha; full fine-tuning only)
    wd1_negative_term: bool = True  # wd1: also push down the negative-weighted samples (wll_d1_neg, the paper's);
    #                               false: positive weights only (wd1's wll_d1_pos_only ablation)
    settings: dict | None = None  # a registered objective's own settings (AlgorithmSpec.settings): a mapping
    #                               here (--set algorithm.settings.NAME=value), its frozen struct once validated
    zero_variance_groups: str = "keep"  # keep | drop: weight the groups whose rewards are all equal out of
    #                               the loss, renormalised to the mean over the kept rows (DAPO's dynamic
    #                               sampling in fixed shapes; no paper config uses it)
    # espo and diffu_grpo clip symmetrically at eps_low (ESPO 0.2, d1 0.5)


def optimizer_steps_per_iteration(a: AlgorithmSection, stepwise: bool, k: int | None = None) -> int:
    """Optimizer steps one RL iteration takes: mu passes, each over k selected columns in groups of
    columns_per_update for a stepwise objective (one with a step selector: `Algorithm.select`; k: the
    iteration's K, adaptive K's from the host)."""
    k = a.k if k is None else k
    if stepwise and a.columns_per_update:
        return a.mu * k // a.columns_per_update
    return a.mu
