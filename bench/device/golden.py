"""Phase golden: one RL iteration per algorithm through `app.run.Run` + `RLLoop.step()`, as `dlrl-jax train`
drives it, against tests/training/test_golden_iteration.py's values (taken on the project's CPU).

At full float32 matmul precision (the golden run is float32). Each value is compared with what its kind
of statistic can hold across machines (the suite's `allowed`: rtol 1e-5 on non-negative sums and norms,
1e-5 of their magnitude on signed sums, the reward exact). On the CPU that tolerance holds as in the
suite. An accelerator sums in other orders again (warp-level trees, fused kernels, TF32 unless
`highest`), so there each tolerance is ACCELERATOR_SCALE times wider; a token sampled differently or a
changed weight, mask or learning-rate detail still moves the values far more (the suite's control test:
EGSPO and EGSPO-SA, which share a rollout, differ in update_sum by 7% and in update_sumsq by 2e-4). The
row reports the worst ratio of a difference to its tolerance (<= 1 passes)."""

from __future__ import annotations

import tempfile

import jax

import common

ACCELERATOR_SCALE = 100.0


def run():
    from tests.training import test_golden_iteration as golden

    jax.config.update("jax_default_matmul_precision", "highest")
    scale = 1.0 if jax.devices()[0].platform == "cpu" else ACCELERATOR_SCALE
    warm = golden.warm_start_params(tempfile.mkdtemp(prefix="dlrl_golden_sft_"))
    for algorithm in common.shapes("golden")["algorithms"]:
        def one(algorithm=algorithm):
            measured, _, _ = golden.measure_iteration(algorithm, warm,
                                                      tempfile.mkdtemp(prefix=f"dlrl_golden_{algorithm}_"))
            want = golden.GOLDEN[algorithm]
            ratio = {k: abs(measured[k] - want[k]) / (scale * golden.allowed(k, want)) for k in want}
            worst_rollout = max(ratio[k] for k in golden.ROLLOUT_KEYS)
            worst_update = max(ratio[k] for k in golden.UPDATE_KEYS)
            ok = worst_rollout <= 1 and worst_update <= 1
            common.emit(algorithm=algorithm, rollout_ratio=worst_rollout, update_ratio=worst_update,
                        tolerance_scale=scale, status="ok" if ok else "fail",
                        reward_mean=measured["reward_mean"], loss=measured["loss"],
                        note="worst difference from the golden values over its tolerance (<= 1 passes); "
                             "measured: " + ", ".join(f"{k} {v:.9g}" for k, v in measured.items()))
        common.guarded("algorithm", algorithm, one)


if __name__ == "__main__":
    run()
