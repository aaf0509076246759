"""Dream's sampler and the sampling options reached from the config, `dlrl-jax sample` / `eval` and a
training run on a tiny Dream-layout model."""

import json

import jax
import numpy as np
import pytest
import torch

from dlrl_jax import checkpoints, cli, config, models, rollout
from dlrl_jax.app.evaluation import EvalSettings, sampler_settings
from dlrl_jax.models.tokenizer import write_char_tokenizer
from tests.rollout.dream_reference import diffusion_generate
from tests.rollout.test_dream_sampler import MASK, pair  # noqa: F401 (the tiny Dream checkpoint fixture)


def _sample_cli(capsys, path, prompt, *flags):
    code = cli.main(["sample", "--model", path, "--prompt-ids", " ".join(map(str, prompt)), "--gen-length", "8",
                     "--steps", "4", "--temperature", "0", "--json", *flags])
    assert code == 0
    return np.asarray(json.loads(capsys.readouterr().out)["tokens"])


@pytest.mark.parametrize("order,top_p", [("entropy", "0.9"), pytest.param("topk_margin", None, marks=pytest.mark.slow)])
def test_sample_cli_on_a_dream_folder_decodes_as_diffusion_generate(pair, capsys, order, top_p):  # noqa: F811
    torch_model, (graphdef, params), path = pair
    prompt = [5, 17, 33, 2, 71]
    got = _sample_cli(capsys, path, prompt, "--remasking", order, *(["--top-p", top_p] if top_p else []))
    want = diffusion_generate(torch_model, torch.tensor([prompt]), np.ones((1, 5), bool), 8, 4, MASK, alg=order,
                              top_p=float(top_p) if top_p else None)
    np.testing.assert_array_equal(got, want.numpy())


def test_sample_cli_block_length_selects_llada_blocks_on_a_dream_folder(pair, capsys):  # noqa: F811
    _, (graphdef, params), path = pair
    prompt = np.asarray([[5, 17, 33, 2, 71]], np.int32)
    got = _sample_cli(capsys, path, prompt[0], "--remasking", "entropy", "--block-length", "4")
    blocks = rollout.generate(graphdef, params, prompt, np.ones_like(prompt, bool), jax.random.key(0),
                              rollout.SamplerSettings(gen_length=8, block_length=4, steps=4, mask_id=MASK,
                                                      remasking="entropy"))
    np.testing.assert_array_equal(got, np.asarray(blocks.tokens))


def test_eval_flags_reach_the_sampler():
    args = cli.build_parser().parse_args(
        ["eval", "--model", "M", "--task", "sudoku", "--remasking", "maskgit_plus", "--top-p", "0.95", "--top-k", "50",
         "--alg-temp", "0.1", "--noise-dtype", "float32", "--dream-mask-candidate", "official"])
    s = EvalSettings(model=args.model, task=args.task, out_dir="", block_length=args.block_length,
                     remasking=args.remasking, schedule=args.schedule, top_p=args.top_p, top_k=args.top_k,
                     alg_temp=args.alg_temp, noise_dtype=args.noise_dtype,
                     dream_mask_candidate=args.dream_mask_candidate)
    dream = sampler_settings(s, 64, 7, family="dream")
    assert (dream.schedule, dream.remasking, dream.top_p, dream.top_k, dream.alg_temp, dream.dream_mask_candidate) == \
        ("dream", "maskgit_plus", 0.95, 50, 0.1, "official")
    parser = cli.build_parser()  # unset, eval takes the protocol's; sample keeps this project's default
    assert parser.parse_args(["eval", "--model", "M", "--task", "sudoku"]).dream_mask_candidate is None
    assert parser.parse_args(["sample", "--model", "M", "--prompt-ids", "1"]).dream_mask_candidate == "exclude"
    llada = sampler_settings(EvalSettings(model="M", task="sudoku", out_dir="", noise_dtype="bfloat16"), 64, 7)
    assert (llada.schedule, llada.block_length, llada.steps, llada.noise_dtype) == ("blocks", 32, 32, "bfloat16")


@pytest.mark.parametrize("overrides,message", [
    (["sampler.remasking=fifo"], r"'sampler.remasking' is 'fifo'; choose one of \['low_confidence', 'random', "
                                 r"'origin', 'maskgit_plus', 'topk_margin', 'entropy'\]"),
    (["sampler.schedule=llada"], r"'sampler.schedule' is 'llada'; choose one of \['auto', 'blocks', 'dream'\]"),
    (["sampler.noise_dtype=float16"], r"'sampler.noise_dtype' is 'float16'; choose one of"),
    (["sampler.top_p=0"], r"sampler.top_p must be in \(0, 1\]"),
    (["sampler.top_k=0"], r"sampler.top_k must be a positive integer"),
    (["sampler.top_k=2.5"], r"'sampler.top_k' must be an integer"),
    (["sampler.alg_temp=-0.1"], r"sampler.alg_temp must be >= 0"),
    (["sampler.alg_temp=0.1", "sampler.block_length=16"], r"sampler.alg_temp 0.1 is part of Dream's sampler"),
    (["sampler.schedule=dream", "sampler.block_length=8"], r"sampler.block_length 8 has no meaning for "
                                                           r"sampler.schedule=dream"),
    (["sampler.schedule=dream", "sampler.noise_dtype=bfloat16"], r"samples as torch's Categorical does"),
    (["sampler.schedule=dream", "sampler.cache=dual", "algorithm.name=espo"], r"sampler.schedule=dream needs cache "
                                                                              r"none"),
    (["sampler.block_length=0"], r"'sampler.block_length' must be > 0 \(or null: no blocks\)"),
])
def test_sampler_config_errors_name_the_field(overrides, message):
    with pytest.raises(config.ConfigError, match=message):
        config.from_dict({}, overrides)


def test_sampler_config_accepts_esp_dream_setting():
    cfg = config.from_dict({}, ["sampler.schedule=dream", "sampler.remasking=entropy", "sampler.top_p=0.95",
                                "sampler.temperature=1.0", "sampler.alg_temp=0"])
    assert (cfg.sampler.block_length, cfg.sampler.top_p, cfg.sampler.alg_temp) == (None, 0.95, 0.0)


@pytest.fixture(scope="module")
def tiny_dream_dir(tmp_path_factory):
    """The embedded demo's tiny shape in Dream's layout (Qwen2 names, q/k/v biases, shifted logits)."""
    cfg = models.preset("tiny", family="dream", qkv_bias=True, n_layers=2)
    path = str(tmp_path_factory.mktemp("tiny_dream"))
    checkpoints.save_pretrained(models.init_model(cfg, seed=0), path)
    write_char_tokenizer(path)
    return path


@pytest.mark.slow  # about 40 s each on two shared cores
@pytest.mark.parametrize("algorithm,mask_candidate", [("egspo_sa", "exclude"), ("espo", "exclude"),
                                                      ("espo", "official")])
def test_train_dream_with_dreams_sampler(tiny_dream_dir, tmp_path, algorithm, mask_candidate):
    """EGSPO-SA (step log-probs, entropies, greedy completions) and ESPO train a Dream-layout model whose
    rollouts run Dream's sampler (schedule auto, no block_length: 16 tokens in 8 steps is [1, 2, ...]);
    ESPO also as its paper configs run it, the mask token among the candidates."""
    from dlrl_jax.app.metrics import read_metrics
    from dlrl_jax.app.run import Run

    sets = [f"model.path={tiny_dream_dir}", f"algorithm.name={algorithm}", f"run.out_dir={tmp_path}",
            "sft.steps=0", "run.iterations=1", "task.train_size=16", "task.eval_size=4",
            "algorithm.prompts_per_batch=2", "algorithm.group_size=2", "algorithm.k=2", "sampler.steps=8",
            "sampler.remasking=entropy", "sampler.top_p=0.95", "sampler.temperature=1.0", "run.progress=false",
            "run.tensorboard=false", "run.eval_every=0", f"sampler.dream_mask_candidate={mask_candidate}"]
    settings = Run(config.from_dict({}, sets)).sampler(1.0, record_greedy=True)
    assert (settings.schedule, settings.remasking, settings.top_p, settings.dream_mask_candidate) == (
        "dream", "entropy", 0.95, mask_candidate)
    assert cli.main(["train", *sum((["--set", s] for s in sets), [])]) == 0
    rl = [r for r in read_metrics(str(tmp_path)) if r["phase"] == "rl"]
    assert len(rl) == 1 and np.isfinite(rl[0]["loss"]) and rl[0]["skipped"] == 0.0
    if algorithm == "egspo_sa":
        profile = np.asarray(rl[0]["entropy_profile"])
        assert len(profile) == 8 and (profile > 0).all()  # every one of Dream's 8 steps committed tokens
