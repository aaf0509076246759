"""Phase golden: one RL iteration per algorithm through `loop.Run` + `RLLoop.step()`, as `dlrl-jax train`
drives it, against tests/training/test_golden_iteration.py's values (taken on the project's CPU).

At full float32 matmul precision (the golden run is float32). On the CPU the suite's tolerance holds
(rtol 1e-5); an accelerator sums in other orders, which moves float32 values by ~1e-6 relative and
the update's checksums (sums of signed terms, and a learning-rate-sized update of them) by up to ~1e-4,
so there the rollout keys must hold to 1e-4 and the update keys to 1e-3. A token sampled differently
or a changed weight, mask or learning-rate detail moves them by 1e-2 or more (the suite's ROLLOUT_CHANGED
and UPDATE_CHANGED say what each means)."""

from __future__ import annotations

import tempfile

import jax

import common

FLOOR = 1e-2  # values nearer 0 are compared absolutely (the suite's atol / rtol)


def run():
    from tests.training import test_golden_iteration as golden

    jax.config.update("jax_default_matmul_precision", "highest")
    on_cpu = jax.devices()[0].platform == "cpu"
    rollout_rtol, update_rtol = (golden.RTOL, golden.RTOL) if on_cpu else (1e-4, 1e-3)
    warm = golden.sft_warm_start(tempfile.mkdtemp(prefix="dlrl_golden_sft_"))
    for algorithm in common.shapes("golden")["algorithms"]:
        def one(algorithm=algorithm):
            measured = golden.one_iteration(algorithm, warm, tempfile.mkdtemp(prefix=f"dlrl_golden_{algorithm}_"))
            want = golden.GOLDEN[algorithm]
            rel = {k: abs(measured[k] - want[k]) / max(abs(want[k]), FLOOR) for k in want}
            worst_rollout = max(rel[k] for k in golden.ROLLOUT_KEYS)
            worst_update = max(rel[k] for k in golden.UPDATE_KEYS)
            ok = worst_rollout <= rollout_rtol and worst_update <= update_rtol
            common.emit(algorithm=algorithm, rollout_rel=worst_rollout, rollout_tolerance=rollout_rtol,
                        update_rel=worst_update, update_tolerance=update_rtol, status="ok" if ok else "fail",
                        reward_mean=measured["reward_mean"], loss=measured["loss"],
                        note="largest relative difference from the golden values; measured: " +
                             ", ".join(f"{k} {v:.9g}" for k, v in measured.items()))
        common.guarded("algorithm", algorithm, one)


if __name__ == "__main__":
    run()
