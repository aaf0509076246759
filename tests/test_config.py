"""Broken configs each fail before anything compiles, with a one-line error naming field and fix."""

import dataclasses
import importlib.util
import os
import re

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
    (["algorithm.k=3"], r"algorithm.columns_per_update 2 does not divide algorithm.k 3"),
    (["algorithm.name=espo", "algorithm.elbo_strata=5"], r"algorithm.elbo_strata 5 does not divide the 64 rows"),
    (["algorithm.token_mean=token"], r"'algorithm.token_mean' is 'token'; choose one of"),
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
    (["sampler.dream_mask_candidate=keep"], r"'sampler.dream_mask_candidate' is 'keep'; choose one of"),
    (["sampler.dream_mask_candidate=official", "sampler.block_length=4", "sampler.steps=16"],
     r"sampler.dream_mask_candidate official is part of Dream's sampler; set sampler.schedule=dream"),
    (["run.out_dir=" + __file__], r"run.out_dir '.*test_config.py' is a file, not a folder"),
    (["task.name=countdown", "task.sft_teacher=mixed", "task.heuristic_fraction=0.5"],
     r"task.sft_teacher 'mixed' \(the row-order heuristic\) exists for sudoku only, not countdown"),
    (["task.sft_teacher=mixed", "task.heuristic_fraction=1.5"], r"'task.heuristic_fraction' must be in \[0.0, 1.0\]"),
    (["task.sft_teacher=rows"], r"'task.sft_teacher' is 'rows'; choose one of"),
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
    cfg = config.load(str(path), ["algorithm.k=4", "optim.learning_rate=1e-4"])
    assert (cfg.seed, cfg.sampler.steps, cfg.algorithm.k, cfg.optim.learning_rate) == (3, 8, 4, 1e-4)
    assert cfg.sampler.gen_length == config.SamplerSection().gen_length


def test_shipped_configs_are_valid_and_the_demo_config_is_the_default():
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    names = sorted(f for f in os.listdir(root) if f.endswith(".yaml"))
    assert names
    for name in names:
        config.load(os.path.join(root, name))
    demo = config.load(os.path.join(root, "tiny_sudoku_mixed.yaml"))
    assert dataclasses.replace(demo, run=config.RunSection()) == config.load(None)


PAPER_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "paper")
PAPER_OF = {"egspo_sa": "egspo", "egspo": "egspo", "espo": "espo", "diffu_grpo": "d1", "wd1": "wd1"}
# Prompts per optimizer step (EGSPO: per rollout), worked by hand from the official scripts:
# ESPO 8 x 3 x 4 / 6 (math 8 x 2 x 16 / 16, code 8 x 1 x 20 / 10), d1 8 x 6 x 2 / 6, EGSPO 8 x 6 / 8,
# wd1 4 x 6 x 2 / 6.
PROMPTS = {"espo": 16, "d1": 16, "egspo": 6, "wd1": 8}
# Module names PEFT matches the official target list against (the models' own layer names).
MODULES = {"llada8b": {"q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"},
           "dream7b": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}}


# (run.save_every, run.keep_checkpoints) by hand: EGSPO save_steps 200 / 4 optimizer steps per rollout = 50,
# the 20 its eval_checkpoints.sh evaluates; d1 gsm8k 100 / mu 12 -> 9 (108 steps), 1000 / 9 -> 112 of its 500;
# ESPO 500 / mu 8 -> 63, 16 in 1000 of its 40; wd1 countdown 500 / 12 -> 42, 24 in 1000, its limit 20.
HAND_WORKED_CHECKPOINTS = {"llada8b_gsm8k_egspo_sa.yaml": (50, 20), "llada8b_gsm8k_diffu_grpo.yaml": (9, 112),
                           "llada8b_sudoku_espo.yaml": (63, 16), "llada8b_countdown_wd1.yaml": (42, 20)}


def _load(name):
    spec = importlib.util.spec_from_file_location(f"paper_{name}", os.path.join(PAPER_DIR, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _expected(model, task, algorithm, official):
    """This project's fields as the official values fix them (mapped here independently of generate.py)."""
    paper = PAPER_OF[algorithm]

    def v(name):
        return official.value(paper, task, name)

    lora = v("use_peft")
    G, GA = v("num_generations"), v("gradient_accumulation_steps")
    exp = {"seed": v("seed"), "model.dtype": v("torch_dtype"), "model.lora_rank": v("lora_r") if lora else 0,
           "task.max_prompt_length": v("max_prompt_length"), "task.truncate_prompts": "left",
           "sampler.gen_length": v("max_completion_length"), "sampler.steps": v("diffusion_steps"),
           "algorithm.group_size": G, "algorithm.beta": v("beta"), "algorithm.eps_low": v("epsilon"),
           "optim.learning_rate": v("learning_rate"), "optim.weight_decay": v("weight_decay"),
           "optim.b1": v("adam_beta1"), "optim.b2": v("adam_beta2"), "optim.grad_clip": v("max_grad_norm"),
           "optim.schedule": {"constant_with_warmup": "constant"}[v("lr_scheduler_type")],
           "algorithm.ref_sync_every": 0 if lora else v("ref_model_sync_steps")}
    # checkpoints: TRL saves every save_steps optimizer steps (EGSPO: K / GA = 4 per rollout, else mu per
    # rollout), and the run keeps what the paper evaluates (EGSPO: 20; else all its run keeps, within 1000)
    per_rollout = v("logps_eval_num_steps") // GA if paper == "egspo" else v("num_iterations")
    exp["run.save_every"] = -(-v("save_steps") // per_rollout)
    exp["run.keep_checkpoints"] = v("checkpoints_evaluated") if paper == "egspo" else \
        min(v("save_total_limit"), -(-1000 // exp["run.save_every"]))
    if lora:
        targets = {m[:-len("_proj")] for m in MODULES[model] & set(v("lora_target_modules"))}
        exp.update({"model.lora_alpha": v("lora_alpha"), "model.lora_dropout": v("lora_dropout"),
                    "model.lora_targets": targets})
    else:
        exp["algorithm.ref_sync_mix"] = v("ref_model_mixup_alpha")
    if paper == "egspo":
        exp.update({"algorithm.k": v("logps_eval_num_steps"), "algorithm.eps_high": v("epsilon_high"),
                    "algorithm.lam": v("lambda1") if algorithm == "egspo_sa" else 0.0, "algorithm.mu": 1,
                    "sampler.temperature": v("temperature"), "sampler.block_length": v("block_length")})
    else:
        exp.update({"algorithm.mu": v("num_iterations"), "algorithm.micro_batches": GA})
        if paper == "espo":
            exp.update({"sampler.temperature": v("generation_temperature"), "algorithm.elbo_samples": v("num_mc")})
            if model == "llada8b":
                exp["sampler.block_length"] = v("block_length")
        else:
            exp.update({"sampler.temperature": v("temperature"), "sampler.block_length": v("block_length"),
                        "algorithm.p_mask_prompt": v("p_mask_prompt")})
    return exp


def test_paper_configs_follow_the_table_of_official_values():
    official = _load("official")
    names = sorted(f for f in os.listdir(PAPER_DIR) if f.endswith(".yaml"))
    assert len(names) == 2 * 5 * 5
    for name in names:
        cfg = config.load(os.path.join(PAPER_DIR, name), ["model.path=null"])  # the checkpoints are not here
        flat = config._flatten(cfg)
        model, task, algorithm = name[:-5].split("_", 2)
        flat["model.lora_targets"] = set(flat["model.lora_targets"].split(","))
        for key, value in _expected(model, task, algorithm, official).items():
            assert flat[key] == value, (name, key, flat[key], value)
        assert cfg.algorithm.prompts_per_batch == PROMPTS[PAPER_OF[algorithm]], name
        rows = cfg.algorithm.prompts_per_batch * cfg.algorithm.group_size
        if algorithm == "diffu_grpo":  # 6 rows per device per micro-step on the official 8 devices
            assert rows // cfg.algorithm.micro_batches == 6 * 8, name
        if algorithm == "wd1":  # 6 rows per device per micro-step on wd1's 4 devices, its own loss
            assert rows // cfg.algorithm.micro_batches == 6 * 4 and cfg.algorithm.wd1_negative_term, name
        if name in HAND_WORKED_CHECKPOINTS:
            assert (cfg.run.save_every, cfg.run.keep_checkpoints) == HAND_WORKED_CHECKPOINTS[name], name
        if task == "math":  # the official MATH training data, whose rows carry the answer in the solution
            assert cfg.task.train_file == "hf:ankner/math-500:train", name
            assert official.value(PAPER_OF[algorithm], task, "dataset").startswith("ankner/math-500 train")


def test_every_official_value_cites_its_file():
    official = _load("official")
    cited = re.compile(r"[\w.\-{},*<>/]+\.(py|sh|sbatch|yaml)\b")
    for paper, table in official.OFFICIAL.items():
        for where, entries in [("common", table["common"])] + list(table["tasks"].items()):
            for key, entry in entries.items():
                assert isinstance(entry, tuple) and len(entry) == 2, (paper, where, key)
                assert cited.search(entry[1]), (paper, where, key, entry[1])


def test_generated_files_are_the_generator_output_and_pending_fields_are_shown_not_written(tmp_path):
    generate = _load("generate")
    names = generate.write_all(str(tmp_path))
    for name in names:
        with open(os.path.join(PAPER_DIR, name)) as f, open(tmp_path / name) as g:
            assert f.read() == g.read(), f"{name} is stale: run python configs/paper/generate.py"
    known = set(config._flatten(config.Config()))
    # sampler.remasking exists, its "entropy" (Dream's order, ESPO on Dream) is what is pending
    assert generate.PENDING & known <= {"sampler.remasking"}, "a pending field exists: remove it from generate.PENDING"
    text = (tmp_path / "llada8b_gsm8k_diffu_grpo.yaml").read_text()
    assert "  quantize_base: nf4" in text and "\nalgorithm:\n" in text  # a field that exists is written
    assert "  token_mean: batch" in text.split("Differences from")[1]  # a field that exists is written


def test_paper_configs_keep_the_mask_candidate_where_they_run_diffusion_generate():
    """ESPO's Dream rollouts call diffusion_generate with no logits hook (the mask token stays a candidate);
    every other paper config decodes with LLaDA's blocks, where the switch does not apply."""
    import yaml

    seen = 0
    for name in sorted(os.listdir(PAPER_DIR)):
        if name.endswith(".yaml"):
            with open(os.path.join(PAPER_DIR, name)) as f:
                sampler = yaml.safe_load(f)["sampler"]
            dream = sampler.get("schedule") == "dream"
            assert sampler.get("dream_mask_candidate") == ("official" if dream else None), name
            seen += dream
    assert seen == 5  # dream7b x 5 tasks x espo
    assert config.load(None, []).sampler.dream_mask_candidate == "exclude"  # this project's default


def test_extreme_but_valid_values_are_accepted():
    cfg = config.load(None, ["seed=2147483646", "optim.b1=0", "algorithm.p_mask_prompt=1", "run.resume=auto",
                             "sampler.steps=16", "sampler.temperature=0"])
    assert (cfg.seed, cfg.optim.b1, cfg.algorithm.p_mask_prompt, cfg.run.resume) == (2**31 - 2, 0.0, 1.0, "auto")
    assert config.load(None, ["run.resume=true"]).run.resume is True
