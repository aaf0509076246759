"""`dlrl-jax train` on a tiny budget writes a complete run folder; `plot`, `export`, `sample` work on it."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from dlrl_jax import checkpoints, cli, models
from dlrl_jax.app.metrics import read_metrics


# sft.batch_size 8: the SFT shape of tests/training/test_resume.py and test_preemption.py (full model, 64
# training records), so that the suite compiles that SFT program once (the persistent compilation cache).
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run"))
    code = cli.main(["train", "--set", f"run.out_dir={out}", "--set", "sft.steps=3", "--set", "sft.batch_size=8", "--set", "run.iterations=2",
                     "--set", "task.train_size=64", "--set", "task.eval_size=16", "--set", "algorithm.prompts_per_batch=2",
                     "--set", "algorithm.group_size=4", "--set", "run.progress=false", "--set", "run.eval_every=1",
                     "--set", "run.keep_best=true", "--set", "run.keep_checkpoints=1",
                     "--set", "run.keep_best_checkpoints=1"])
    assert code == 0
    return out


def test_run_folder_is_complete(run_dir):
    for name in ("metrics.jsonl", "summary.json", "config.json", "curves.png", "model/config.json",
                 "model/model.safetensors", "model/tokenizer.json"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    assert os.path.isdir(os.path.join(run_dir, "checkpoints", "2"))
    assert os.listdir(os.path.join(run_dir, "tensorboard"))
    records = read_metrics(run_dir)
    rl = [r for r in records if r["phase"] == "rl"]
    assert [r["step"] for r in rl] == [0, 1]
    for r in rl:
        assert 0.0 <= r["reward_mean"] <= 1.0 and np.isfinite(r["loss"]) and r["skipped"] == 0.0
        assert len(r["entropy_profile"]) == 16 and sum(r["selected_histogram"]) == 8 * 4  # rows x K
        phases = [r[f"time_{p}"] for p in ("rollout", "reward", "reference", "update")]
        assert min(phases) > 0 and sum(phases) <= r["time_iteration"] <= sum(phases) + 1.0  # + encoding
    assert all(r["seconds"] > 0 for r in records if r["phase"] in ("eval", "checkpoint"))
    assert [r["step"] for r in records if r["phase"] == "checkpoint"] == [0, 1, 2]
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    assert {"initial", "before", "after"} <= set(summary)
    # A mid-run evaluation happened at iteration 1 (eval_every=1, iterations=2).
    evals = [r for r in records if r["phase"] == "eval"]
    assert [r["step"] for r in evals] == [0, 0, 1, 2]
    # keep_best: the best of the evaluations from "before RL" on (not the random init) was exported
    best = max(evals[1:], key=lambda r: r["reward"])
    assert summary["best"]["reward"] == best["reward"] and summary["best"]["step"] == best["step"]
    assert os.path.isfile(os.path.join(run_dir, "best_model", "model.safetensors"))
    # Orbax kept the newest checkpoint and the one with the best held-out reward (the later one on ties)
    top = max(r["reward"] for r in evals[1:])
    best_step = max(r["step"] for r in evals[1:] if r["reward"] == top)
    kept = sorted(int(d) for d in os.listdir(os.path.join(run_dir, "checkpoints")) if d.isdigit())
    assert kept == sorted({2, best_step}), (kept, evals)


def test_plot_is_a_png_with_the_six_panels(run_dir, tmp_path):
    out = str(tmp_path / "c.png")
    assert cli.main(["plot", run_dir, "--out", out]) == 0
    image = Image.open(out)
    assert image.format == "PNG" and image.size[0] > 3 * image.size[1]
    assert image.info["Description"] == "panels: reward, held-out solved, kl, entropy by step, selected steps, seconds per iteration"


def test_export_and_sample_from_the_trained_model(run_dir, tmp_path, capsys):
    exported = str(tmp_path / "exported")
    assert cli.main(["export", run_dir, "--out", exported]) == 0
    trained = checkpoints.from_pretrained(os.path.join(run_dir, "model"))
    again = checkpoints.from_pretrained(exported)
    np.testing.assert_array_equal(np.asarray(trained.embed[...]), np.asarray(again.embed[...]))
    capsys.readouterr()
    assert cli.main(["sample", "--model", os.path.join(run_dir, "model"), "--prompt-ids", "7 8 9 10",
                     "--gen-length", "8", "--steps", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["tokens"][0]) == 12 and len(result["completion_ids"][0]) == 8
    assert result["tokens"][0][:4] == [7, 8, 9, 10] and 1 not in result["completion_ids"][0]  # no mask left
    assert isinstance(result["text"][0], str)
    assert cli.main(["sample", "--model", os.path.join(run_dir, "model"), "--prompt", "1200", "--no-chat",
                     "--gen-length", "16", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["completion_ids"][0]) == 16


def test_cli_reports_bad_config_in_one_line(tmp_path, capsys):
    assert cli.main(["train", "--set", "algorithm.groupsize=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did you mean 'group_size'" in err
    assert cli.main(["sample", "--model", str(tmp_path / "none"), "--prompt-ids", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err


# egspo and diffu-GRPO train LoRA adapters with dropout (the papers' setting), espo the full model.
# espo samples its training rollouts with the approximate dual KV cache.
# ESPO's case is slow: its loop runs in the golden test, the dual-cache sampler against PyTorch's fast-dllm
# loop in tests/rollout/test_cached_sampler.py, and a full-model run through the CLI in this file's default
# run (test_run_folder_is_complete); EGSPO's case (LoRA dropout) stays.
@pytest.mark.parametrize("algorithm,extra", [pytest.param("espo", ["sampler.cache=dual"], marks=pytest.mark.slow),
                                            pytest.param("diffu_grpo", ["model.lora_rank=4", "model.lora_dropout=0.1"],
                                                         marks=pytest.mark.slow),  # golden runs its loop
                                            ("egspo", ["model.lora_rank=4", "model.lora_dropout=0.1"])])
def test_every_algorithm_trains_through_the_cli(tmp_path, algorithm, extra):
    out = str(tmp_path / algorithm)
    code = cli.main(["train", *[a for x in extra for a in ("--set", x)], "--set", f"run.out_dir={out}",
                     "--set", f"algorithm.name={algorithm}",
                     "--set", "sft.steps=0", "--set", "run.iterations=2", "--set", "algorithm.mu=2",
                     "--set", "algorithm.micro_batches=2", "--set", "task.train_size=32", "--set", "task.eval_size=8",
                     "--set", "algorithm.prompts_per_batch=2", "--set", "algorithm.group_size=4",
                     "--set", "algorithm.elbo_samples=1", "--set", "run.progress=false", "--set", "run.tensorboard=false"])
    assert code == 0
    rl = [r for r in read_metrics(out) if r["phase"] == "rl"]
    assert len(rl) == 2
    for r in rl:
        assert np.isfinite(r["loss"]) and r["skipped"] == 0.0 and 0.3 < r["ratio"] < 3.0


def test_sft_command_trains_and_saves_the_model(tmp_path, capsys):
    out = str(tmp_path / "sft")
    assert cli.main(["sft", "--set", "model.lora_rank=4", "--set", "model.lora_dropout=0.1",
                     "--set", f"run.out_dir={out}", "--set", "sft.steps=2", "--set", "sft.batch_size=8",
                     "--set", "task.train_size=32", "--set", "task.eval_size=8", "--set", "run.progress=false",
                     "--set", "run.tensorboard=false"]) == 0
    losses = [r["loss"] for r in read_metrics(out) if r["phase"] == "sft"]
    assert len(losses) == 2 and all(np.isfinite(losses))
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert "after" not in summary and summary["algorithm"] == "sft"
    # finding 2 (issue 26): `train` into this finished SFT run's folder is refused, changing nothing
    before = {name: open(os.path.join(out, name), "rb").read() for name in ("metrics.jsonl", "summary.json",
                                                                           "config.json", "model/model.safetensors")}
    for resume in ([], ["--resume-or-start"]):
        assert cli.main(["train", "--set", f"run.out_dir={out}", "--set", "run.progress=false"] + resume) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and f"run.out_dir {out} holds an SFT run" in err[0], err
    assert "choose another run.out_dir" in err[0] and "dlrl-jax sft --resume" in err[0]
    assert {name: open(os.path.join(out, name), "rb").read() for name in before} == before
    # its model/ export (merged weights, tokenizer, adapter/) is listed whole in its manifest
    listed = {line.rstrip("\n").split("  ")[1] for line in open(os.path.join(out, "model", "SHA256SUMS"))}
    assert {"model.safetensors", "config.json", "adapter/adapter_model.safetensors"} <= listed
    saved = checkpoints.from_pretrained(os.path.join(out, "model")).cfg
    assert saved.family == "llada" and saved.lora_rank == 0  # the adapter is merged into the export
    # ... and written alone in PEFT's format: the random-init base (seed 0) plus it is the merged export
    from dlrl_jax.checkpoints.peft import load_adapter
    from dlrl_jax.models.lora import merge_lora
    assert cli.main(["export", out, "--out", str(tmp_path / "adapter"), "--adapter-only"]) == 0
    adapted = load_adapter(models.init_model(models.preset("tiny"), seed=0), str(tmp_path / "adapter"))
    assert (adapted.cfg.lora_rank, adapted.cfg.lora_dropout, len(adapted.cfg.lora_targets)) == (4, 0.1, 7)
    merged, exported = merge_lora(adapted), checkpoints.from_pretrained(os.path.join(out, "model"))
    np.testing.assert_allclose(np.asarray(merged.layers.w_down[...]), np.asarray(exported.layers.w_down[...]),
                               atol=1e-6, rtol=0)


@pytest.mark.slow  # a second full training run (about a minute on 2 cores): `python -m pytest -m slow`
def test_evaluating_more_often_does_not_change_training(run_dir, tmp_path):
    out = str(tmp_path / "no_mid_eval")
    assert cli.main(["train", "--set", f"run.out_dir={out}", "--set", "sft.steps=3", "--set", "sft.batch_size=8", "--set", "run.iterations=2",
                     "--set", "task.train_size=64", "--set", "task.eval_size=16", "--set",
                     "algorithm.prompts_per_batch=2", "--set", "algorithm.group_size=4", "--set", "run.progress=false",
                     "--set", "run.eval_every=0", "--set", "run.tensorboard=false"]) == 0
    a = [(r["reward_mean"], r["loss"]) for r in read_metrics(run_dir) if r["phase"] == "rl"]
    b = [(r["reward_mean"], r["loss"]) for r in read_metrics(out) if r["phase"] == "rl"]
    assert a == b
