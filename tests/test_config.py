"""Broken configs each fail before anything compiles, with a one-line error naming field and fix."""

import dataclasses
import os

import pytest

from dlrl_jax import config
from dlrl_jax.config import ConfigError


@pytest.mark.parametrize("overrides,message", [
    (["algorithm.groupsize=4"], r"unknown config key 'algorithm.groupsize'; did you mean 'group_size'\?"),
    (["samplr.steps=4"], r"unknown config key 'samplr'; did you mean 'sampler'\?"),
    (["sampler.steps=abc"], r"'sampler.steps' must be an integer, got 'abc'"),
    (["optim.learning_rate=fast"], r"'optim.learning_rate' must be a number"),
    (["run.tensorboard=3"], r"'run.tensorboard' must be true or false"),
    (["sampler.gen_length=20", "sampler.block_length=8"], r"gen_length 20 is not divisible by sampler.block_length 8"),
    (["sampler.gen_length=32", "sampler.block_length=8", "sampler.steps=6"],
     r"sampler.steps 6 is not a multiple of the 4 blocks"),
    (["algorithm.name=ppo"], r"'algorithm.name' is 'ppo'; choose one of"),
    (["algorithm.k=0"], r"'algorithm.k' must be > 0"),
    (["algorithm.k=17"], r"algorithm.k 17 exceeds sampler.steps 16"),
    (["algorithm.beta=-1"], r"'algorithm.beta' must be >= 0"),
    (["algorithm.micro_batches=5"], r"micro_batches 5 does not divide the 64 rows"),
    (["algorithm.group_size=1"], r"group_size must be >= 2"),
    (["model.path=/no/such/model"], r"model.path '/no/such/model' is not a folder"),
    (["task.max_blanks=13"], r"min_blanks..max_blanks must satisfy"),
    (["task.train_file=/no/file.jsonl"], r"'task.train_file': '/no/file.jsonl' does not exist"),
    (["sampler.steps"], r"--set 'sampler.steps' must look like section.key=value"),
    (["seed=null"], r"'seed' cannot be null"),
    (["model.lora_rank=8", "model.lora_targets=q,x"], r"model.lora_targets 'q,x': use a comma-separated subset"),
    (["model.lora_dropout=0.05"], r"model.lora_dropout 0.05 needs LoRA adapters"),
    (["model.lora_rank=4", "model.lora_dropout=1.0"], r"model.lora_dropout must be in \[0, 1\)"),
    (["sampler.cache=dual"], r"sampler.cache 'dual' cannot serve egspo_sa"),
    (["sampler.cache=kv", "algorithm.name=espo"], r"'sampler.cache' is 'kv'; choose one of"),
    (["mesh.fsdp=0"], r"'mesh.fsdp' must be a positive integer, got 0"),
    (["run.keep_checkpoints=0"], r"'run.keep_checkpoints' must be > 0"),
    # the values that once trained to an all-NaN model with exit 0 (issue 18)
    (["optim.learning_rate=nan"], r"'optim.learning_rate' must be a finite number, got nan"),
    (["optim.learning_rate=.inf"], r"'optim.learning_rate' must be a finite number, got inf"),
    (["optim.learning_rate=1e400"], r"'optim.learning_rate' must be a finite number, got inf"),
    (["sft.learning_rate=-.inf"], r"'sft.learning_rate' must be a finite number"),
    (["optim.learning_rate=0"], r"'optim.learning_rate' must be in \(0.0, inf\), got 0.0"),
    (["sampler.temperature=nan"], r"'sampler.temperature' must be a finite number, got nan"),
    (["sampler.eval_temperature=-0.5"], r"'sampler.eval_temperature' must be >= 0"),
    (["optim.b1=5"], r"'optim.b1' must be in \[0.0, 1.0\), got 5.0"),
    (["optim.b2=1"], r"'optim.b2' must be in \[0.0, 1.0\), got 1.0"),
    (["algorithm.beta=nan"], r"'algorithm.beta' must be a finite number"),
    (["algorithm.p_mask_prompt=1.5"], r"'algorithm.p_mask_prompt' must be in \[0.0, 1.0\], got 1.5"),
    (["seed=-1"], r"'seed' must be in \[0, 2147483646\], got -1"),
    (["seed=2147483647"], r"'seed' must be in \[0, 2147483646\], got 2147483647"),
    (["seed=99999999999999999999999"], r"'seed' must be in \[0, 2147483646\]"),
    (["sampler.steps=32"], r"sampler.steps 32 exceeds sampler.gen_length 16: .*use at most 16 steps"),
    (["sampler.gen_length=64", "sampler.block_length=32", "sampler.steps=128"],
     r"sampler.steps 128 exceeds sampler.gen_length 64"),
    (["model.lora_alpha=[1"], r"--set model.lora_alpha: the value '\[1' is not a YAML scalar"),
    (["run.resume=maybe"], r"'run.resume' must be true, false or auto, got 'maybe'"),
    (["run.out_dir=" + __file__], r"run.out_dir '.*test_config.py' is a file, not a folder"),
])
def test_broken_config_names_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config.load(None, overrides)


def test_yaml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        config.load(str(bad))
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("model: 3\n")
    with pytest.raises(ConfigError, match="model: expected a mapping"):
        config.load(str(wrong))


def test_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\nsampler:\n  steps: 8\nalgorithm:\n  k: 2\n")
    cfg = config.load(str(path), ["algorithm.k=3", "optim.learning_rate=1e-4"])
    assert (cfg.seed, cfg.sampler.steps, cfg.algorithm.k, cfg.optim.learning_rate) == (3, 8, 3, 1e-4)
    assert cfg.sampler.gen_length == config.SamplerSection().gen_length


def test_shipped_configs_are_valid_and_the_demo_config_is_the_default():
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    names = sorted(f for f in os.listdir(root) if f.endswith(".yaml"))
    assert names
    for name in names:
        config.load(os.path.join(root, name))
    demo = config.load(os.path.join(root, "tiny_sudoku_egspo_sa.yaml"))
    assert dataclasses.replace(demo, run=config.RunSection()) == config.load(None)


# The papers' settings, typed here from ../shared/ALGORITHMS.md (not from the generator).
PAPER = {"egspo_sa": {"optim.learning_rate": 3e-5, "optim.weight_decay": 0.1, "algorithm.k": 8, "algorithm.beta": 0.04,
                      "algorithm.lam": 0.5, "algorithm.eps_low": 0.2, "algorithm.eps_high": 0.5, "model.lora_rank": 128,
                      "model.lora_alpha": 64.0, "model.lora_dropout": 0.05, "algorithm.group_size": 8},
         "espo": {"optim.learning_rate": 3e-6, "optim.weight_decay": 0.01, "algorithm.mu": 8, "algorithm.elbo_samples": 2},
         "diffu_grpo": {"optim.learning_rate": 3e-6, "algorithm.group_size": 6, "algorithm.mu": 12,
                        "algorithm.eps_low": 0.5, "algorithm.beta": 0.04, "algorithm.p_mask_prompt": 0.15}}
ESPO_BETA_EPS = {"gsm8k": (1e-3, 0.2), "math": (1e-3, 0.2), "countdown": (3e-3, 0.0), "sudoku": (1e-2, 0.2)}


def test_paper_configs_load_and_carry_the_papers_settings():
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "paper")
    names = sorted(f for f in os.listdir(root) if f.endswith(".yaml"))
    assert len(names) == 2 * 5 * 4
    for name in names:
        cfg = config.load(os.path.join(root, name), ["model.path=null"])  # the checkpoints are not here
        flat = config._flatten(cfg)
        model, task, algorithm = name[:-5].split("_", 2)
        for key, value in PAPER.get(algorithm, {}).items():
            if not (algorithm == "espo" and task == "mbpp" and key == "optim.learning_rate"):  # code: 1e-6, below
                assert flat[key] == value, (name, key)
        assert (cfg.sampler.gen_length, cfg.sampler.block_length, cfg.sampler.steps, cfg.sampler.temperature) == \
            (256, 32, 128, 0.9), name
        if algorithm == "espo" and task in ESPO_BETA_EPS:
            assert (cfg.algorithm.beta, cfg.algorithm.eps_low) == ESPO_BETA_EPS[task], name
        if algorithm == "espo" and task == "mbpp":
            assert cfg.model.lora_rank == 0 and cfg.optim.learning_rate == 1e-6


def test_extreme_but_valid_values_are_accepted():
    cfg = config.load(None, ["seed=2147483646", "optim.b1=0", "algorithm.p_mask_prompt=1", "run.resume=auto",
                             "sampler.steps=16", "sampler.temperature=0"])
    assert (cfg.seed, cfg.optim.b1, cfg.algorithm.p_mask_prompt, cfg.run.resume) == (2**31 - 2, 0.0, 1.0, "auto")
    assert config.load(None, ["run.resume=true"]).run.resume is True
