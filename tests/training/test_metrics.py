"""Metrics sinks: metrics.jsonl rows as written, TensorBoard events, and a W&B run (offline mode, so
no network or account is needed) that holds the logged keys; only the lead process writes."""

import glob
import os
import time

from dlrl_jax.app.metrics import MetricsWriter, read_metrics


def test_jsonl_tensorboard_and_wandb_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    writer = MetricsWriter(str(tmp_path), tensorboard=True, wandb_project="dlrl-test", config={"seed": 3})
    writer.write("rl", 0, {"reward_mean": 0.25, "entropy_profile": [1.0, 2.0]})
    writer.write("eval", 1, {"reward": 0.5})
    writer.close()
    rows = read_metrics(str(tmp_path))
    assert [(r["phase"], r["step"]) for r in rows] == [("rl", 0), ("eval", 1)]
    assert rows[0]["reward_mean"] == 0.25 and rows[0]["entropy_profile"] == [1.0, 2.0] and rows[1]["reward"] == 0.5
    assert glob.glob(os.path.join(tmp_path, "tensorboard", "events.out.tfevents.*"))
    [run_file] = glob.glob(os.path.join(tmp_path, "wandb", "offline-run-*", "run-*.wandb"))
    keys = (b"rl/reward_mean", b"eval/reward", b"rl/step", b"dlrl-test")
    deadline = time.monotonic() + 60  # wandb-core may still be flushing its file after finish() on a busy machine
    while True:
        data = open(run_file, "rb").read()
        if all(key in data for key in keys) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for key in keys:
        assert key in data, key


def test_a_non_lead_process_writes_nothing(tmp_path):
    writer = MetricsWriter(str(tmp_path), tensorboard=True, enabled=False, wandb_project="never")
    writer.write("rl", 0, {"reward_mean": 1.0})
    writer.close()
    assert not os.path.exists(os.path.join(tmp_path, "metrics.jsonl"))
    assert not os.path.exists(os.path.join(tmp_path, "tensorboard")) and not os.path.exists(tmp_path / "wandb")
