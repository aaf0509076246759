"""The official-trainer harness's own code paths (bench/official), without the official repositories:
the adapter from a recorded trainer trajectory to this project's Trajectory (hand-worked canvases), the
comparison of recorded and replayed optimizer steps (hand-computed errors), the Trainer's weight-decay
rule on LLaDA's names, and the shared model folder's config."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from bench.official import compare, d1_replay, egspo_replay, espo_replay, model_folder, speed, time_official
from dlrl_jax.models.hf import read_config

M = 1  # mask id
P_TOKENS = [40, 41]  # a two-token prompt


def _canvases(*completions):
    return np.array([[P_TOKENS + c] for c in completions])  # [T+1, B=1, L]


def test_adapter_reads_the_step_each_position_was_committed_at():
    # step 0 commits positions 0 and 3, step 1 positions 1 and 2 (two tokens a step, as recorded)
    traj = _canvases([M, M, M, M], [5, M, M, 6], [5, 7, 8, 6])
    logps = np.array([[[-1.0, -2.0]], [[-0.5, -0.25]]])  # [T, B, N]
    tokens, unmask_step, step_logprob, step_count = egspo_replay.trajectory_from_recording(traj, logps, 2, M)
    np.testing.assert_array_equal(tokens, [P_TOKENS + [5, 7, 8, 6]])
    np.testing.assert_array_equal(unmask_step, [[0, 1, 1, 0]])
    np.testing.assert_allclose(step_logprob, [[-3.0, -0.75]])
    np.testing.assert_array_equal(step_count, [[2, 2]])


def test_adapter_refuses_a_step_that_drew_the_mask_token():
    # step 1 committed two tokens, one of them the mask itself: only one position leaves the mask
    traj = _canvases([M, M, M, M], [5, M, M, 6], [5, 7, M, 6], [5, 7, 9, 6])
    logps = np.zeros((3, 1, 2))
    with pytest.raises(egspo_replay.RecordingError, match="row 0, step 1: 1 positions left the mask"):
        egspo_replay.trajectory_from_recording(traj, logps, 2, M)


def test_adapter_refuses_a_committed_token_that_changes():
    traj = _canvases([M, M, M, M], [5, M, M, 6], [9, 7, 8, 6])
    with pytest.raises(egspo_replay.RecordingError, match="position 0: a committed token changes at step 1"):
        egspo_replay.trajectory_from_recording(traj, np.zeros((2, 1, 2)), 2, M)


def test_compare_measures_each_step_against_the_trainers_record():
    w = "model.w"
    rec = {"losses": np.array([0.0, 0.0, 0.3, 0.5]), "grad_norms": np.array([2.0, 4.0]),
           "advantages_per_step": np.array([[0.5, -0.5], [-0.5, 0.5]]),
           f"initial/{w}": np.array([1.0, 1.0]), f"step0/{w}": np.array([4.0, 5.0]),
           f"step1/{w}": np.array([4.0, 6.0])}
    steps = [dict(loss=1e-6, grad_norm=2.0002, params={w: np.array([4.0, 5.05])}),
             dict(loss=0.4, grad_norm=4.0, params={w: np.array([4.0, 6.0])})]
    settings = dict(columns=2, gen_length=32, steps=16)
    rows = egspo_replay.compare(dict(recording=rec, settings=settings, steps=steps))
    # step 0: the loss is 0 (the mean of 0, 0): judged against mean|A| / tokens per step = 0.5 / 2
    assert rows[0]["loss_err"] == pytest.approx(1e-6 / 0.25)
    assert rows[0]["grad_norm_err"] == pytest.approx(1e-4)
    assert rows[0]["param_err"] == pytest.approx(0.05 / 5.0)  # the step moved (3, 4): norm 5
    # step 1: official loss (0.3 + 0.5) / 2 = 0.4, parameters equal
    assert rows[1]["loss_official"] == pytest.approx(0.4) and rows[1]["loss_err"] == pytest.approx(0.0)
    assert rows[1]["param_err"] == 0.0
    lines = compare.table(rows).splitlines()
    assert lines[1].endswith("NO") and lines[2].endswith("yes")  # 1e-2 of a step is over the 1e-3 tolerance


def test_trainer_decay_rules_on_llada_names():
    params = {"final_norm": jnp.ones(2), "embed": jnp.ones(2),
              "layers": {"attn_norm": jnp.ones(2), "mlp_norm": jnp.ones(2), "wq": jnp.ones(2)}}
    # transformers 4.57: attn_norm / ff_norm match "_norm", ln_f matches no pattern and is decayed
    assert compare.trainer_decay_mask("names")(params) == {
        "final_norm": True, "embed": True, "layers": {"attn_norm": False, "mlp_norm": False, "wq": True}}
    # 4.49 / 4.52: LLaDA's RMS norms are not nn.LayerNorm modules, so every norm is decayed
    assert compare.trainer_decay_mask("modules")(params) == {
        "final_norm": True, "embed": True, "layers": {"attn_norm": True, "mlp_norm": True, "wq": True}}


def test_peft_parameters_merge_into_the_weights_our_export_writes():
    stem = "model.transformer.blocks.0.q_proj"
    params = {f"{stem}.base_layer.weight": np.array([[1.0, 0.0], [0.0, 1.0]]),
              f"{stem}.lora_A.default.weight": np.array([[1.0, 2.0]]),    # [r = 1, in = 2]
              f"{stem}.lora_B.default.weight": np.array([[3.0], [0.5]]),  # [out = 2, r = 1]
              "model.transformer.ln_f.weight": np.array([1.0, 1.0])}
    merged = compare.merged_official(params, lora_scale=2.0)
    # W + 2 B A = I + 2 [[3, 6], [0.5, 1]]
    np.testing.assert_allclose(merged[f"{stem}.weight"], [[7.0, 12.0], [1.0, 3.0]])
    assert sorted(merged) == ["model.transformer.blocks.0.q_proj.weight", "model.transformer.ln_f.weight"]


def test_recorded_draws_answer_only_the_keys_of_their_steps():
    import jax

    base = jax.random.key(7)
    masks = np.zeros((2, 2, 3, 4), bool)  # ESPO: [optimizer step, sample, rows, completion]
    masks[1, 0, :, :2] = True
    draw = espo_replay.recorded_draw(masks, base)
    key = jax.random.fold_in(jax.random.fold_in(base, 1), 0)
    masked, count = draw(key, 0, 3, 4, 3)
    np.testing.assert_array_equal(masked, masks[1, 0])
    np.testing.assert_array_equal(count, [2, 2, 2])
    _, count = draw(jax.random.fold_in(base, 5), 0, 3, 4, 3)  # an unknown key: flagged, not silently masked
    np.testing.assert_array_equal(count, [-1, -1, -1])

    prompt = np.array([[True, True, False]])  # d1: [optimizer step, rows, prompt]
    d1_masks = np.array([[[True, False, True]], [[False, True, True]]])
    draw = d1_replay.recorded_draw(d1_masks, base)
    got = draw(jax.random.fold_in(jax.random.fold_in(base, 1), 0), prompt, 0.3)
    np.testing.assert_array_equal(got, [[False, True, False]])  # the step's mask, on real prompt tokens only


def test_model_folder_is_llada_for_both_sides(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    with pytest.raises(model_folder.ModelFolderError, match="modeling_llada.py is missing"):
        model_folder.copy_llada_code(str(code), str(tmp_path))
    out = str(tmp_path / "model")
    model_folder.build(out, None, n_layers=1, max_sequence_length=96)
    with open(os.path.join(out, "config.json")) as f:
        config = json.load(f)
    # LLaDA's configuration class defaults to OLMo's 0.1 dropouts: the folder must switch them off
    assert config["attention_dropout"] == config["residual_dropout"] == config["embedding_dropout"] == 0.0
    assert config["auto_map"]["AutoModel"] == "modeling_llada.LLaDAModelLM"
    assert config["max_sequence_length"] == 96 and config["layer_norm_type"] == "rms"
    cfg = read_config(out)  # and this project reads it as the tiny LLaDA it wrote
    assert (cfg.family, cfg.n_layers, cfg.mask_token_id) == ("llada", 1, 1)
    with open(os.path.join(out, "tokenizer_config.json")) as f:
        tokenizer = json.load(f)
    assert tokenizer["tokenizer_class"] == "PreTrainedTokenizerFast" and "<|assistant|>" in tokenizer["chat_template"]


# --- the speed harness (issue 27 item 5): bench/official/time_official.py and speed.py ---

def test_official_iterations_split_by_the_score_calls():
    # two iterations: score 0..3 holds a rollout 0.5..2.5 and two reward calls of 0.25; the optimizer
    # steps run until the next score at 10; the last iteration ends at the last step's end, 14
    events = [("rollout", 0.5, 2.5), ("reward", 2.5, 2.75), ("reward", 2.75, 3.0), ("score", 0.0, 3.0),
              ("score", 10.0, 11.0), ("rollout", 10.0, 10.5), ("reward", 10.5, 10.625)]
    first, second = time_official.iterations_from_events(events, end=14.0)
    assert first == {"rollout": 2.0, "reward": 0.5, "reference": 0.5, "update": 7.0, "iteration": 10.0}
    assert second == {"rollout": 0.5, "reward": 0.125, "reference": 0.375, "update": 3.0, "iteration": 4.0}
    with pytest.raises(ValueError, match="no call of _generate_and_score_completions"):
        time_official.iterations_from_events([("rollout", 0.0, 1.0)], end=2.0)


class _CharTokenizer:
    """One token a character, the chat template's two markers one token each (as the folder's tokenizer)."""

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return "\x01" + messages[0]["content"] + ("\x02" if add_generation_prompt else "")

    def __call__(self, text, add_special_tokens):
        return {"input_ids": [ord(c) for c in text]}


def test_official_prompt_is_padded_to_the_asked_length():
    content = time_official.padded_prompt(_CharTokenizer(), 16)
    assert content == "Fill the 4x4 s"  # 16 tokens less the two markers
    assert len(time_official.padded_prompt(_CharTokenizer(), 200)) == 198
    with pytest.raises(SystemExit, match="the chat template alone is 2 tokens"):
        time_official.padded_prompt(_CharTokenizer(), 1)


def test_speed_pools_the_timed_iterations_of_every_run():
    def it(total):
        return {"rollout": total / 2, "reward": 0.0, "reference": 0.0, "update": total / 2, "iteration": total}
    runs = [[it(9.0), it(1.0), it(3.0)], [it(7.0), it(2.0), it(5.0)]]  # first of each: warm-up
    got = speed.summarize(runs, warmup=1)
    assert got["iteration"] == 2.5 and got["rollout"] == 1.25  # median of 1, 2, 3, 5
    assert got["first"] == 8.0 and got["timed"] == 4  # median of 9 and 7
    with pytest.raises(ValueError, match="nothing to time"):
        speed.summarize([[it(1.0)]], warmup=1)


def test_speed_table_compares_at_the_same_thread_count():
    def row(system, threads, total):
        return {"algorithm": "espo", "shape": "s", "dtype": "float32", "threads": threads, "system": system,
                "rollout": 0.1, "reward": 0.0, "reference": 0.0, "update": total - 0.1, "iteration": total,
                "first": 5.0, "timed": 3, "load": "4.0-5.0"}
    lines = speed.table([row("official", 2, 3.0), row("dlrl_jax", 2, 0.5), row("official", 1, 1.0),
                         row("dlrl_jax", 1, 0.8)]).splitlines()
    assert lines[0].startswith("| algorithm | shape | dtype | threads | system | rollout |")
    assert "| 0.500 | 6.00x |" in lines[3] and "| 0.800 | 1.25x |" in lines[5]  # 3.0 / 0.5, 1.0 / 0.8
    assert "| 3.000 |  | 5.00 |" in lines[2]  # no ratio on the official line


def test_speed_runner_command_lines():
    argv = speed.runner_argv("egspo_sa", "E", "M", "bfloat16", 8, 256, 32, 128)
    assert argv[:2] == ["--egspo-repo", "E"] and ["--lambda1", "0.5"] == argv[argv.index("--lambda1"):][:2]
    assert argv[-2:] == ["--block-length", "32"] and "--dtype" in argv
    with pytest.raises(SystemExit, match="hard-codes blocks of 32"):
        speed.runner_argv("espo", "E", "M", "float32", 8, 64, 64, 16)
    assert speed.pinned(["x"], os.cpu_count()) == ["x"]  # every core: not pinned
    if os.cpu_count() > 1:
        assert speed.pinned(["x"], 1) == ["taskset", "-c", "0-0", "x"]


def test_parameter_count_of_the_30m_folder_and_of_a_written_one(tmp_path):
    # the ~30M folder: 8 layers of q, k, v, o (4 x 512^2), SwiGLU (3 x 512 x 1536), two norms; embedding and
    # untied head 128 x 512 each; the final norm: 8 x 3,408,896 + 131,072 + 512
    config = {"d_model": 512, "n_heads": 8, "n_kv_heads": 8, "n_layers": 8, "mlp_hidden_size": 1536,
              "embedding_size": 128, "weight_tying": False}
    assert model_folder.parameter_count(config) == 27_402_752
    out = str(tmp_path / "model")
    model_folder.build(out, None, n_layers=2, d_model=64, n_heads=2, mlp_hidden=96, max_sequence_length=64)
    from safetensors.numpy import load_file
    written = sum(v.size for v in load_file(os.path.join(out, "model.safetensors")).values())
    with open(os.path.join(out, "config.json")) as f:
        assert model_folder.parameter_count(json.load(f)) == written


# --- the shared warm start and the curves (issue 27 items 2 and 4): warm_start.py, curves.py ---

def test_warm_start_puzzles_are_d1_csv_files_with_disjoint_test_puzzles(tmp_path):
    import csv

    from bench.official import warm_start
    from dlrl_jax.data.sudoku import count_solutions

    train, test = warm_start.write_puzzles(str(tmp_path), seed=3, train_size=40, test_size=12, min_blanks=4,
                                           max_blanks=10)
    with open(train) as f:
        assert f.readline().strip() == "Puzzle,Solution"  # d1's schema: the official data builder reads it
    rows = {name: list(csv.DictReader(open(path))) for name, path in (("train", train), ("test", test))}
    assert len(rows["train"]) == 40 and len(rows["test"]) == 12
    puzzles = {name: [r["Puzzle"] for r in rs] for name, rs in rows.items()}
    assert not set(puzzles["train"]) & set(puzzles["test"])
    assert all(p.count("0") == warm_start.TEST_BLANKS for p in puzzles["test"])  # d1's test difficulty
    assert all(4 <= p.count("0") <= 10 for p in puzzles["train"])
    for r in rows["train"] + rows["test"]:  # a solution that fills the puzzle, and the only one
        p, s = r["Puzzle"], r["Solution"]
        assert all(a in ("0", b) for a, b in zip(p, s)) and count_solutions([int(c) for c in p]) == 1


def _warm(tmp_path):
    from bench.official import warm_start

    (tmp_path / "model").mkdir()  # the random folder and the warm start's export (the config checks both exist)
    args = warm_start.parse(["--model", str(tmp_path / "model"), "--llada-code", "C", "--out", str(tmp_path)])
    with open(tmp_path / "sft.yaml", "w") as f:
        import yaml
        yaml.safe_dump(warm_start.sft_config(args, *warm_start.write_puzzles(
            str(tmp_path), seed=0, train_size=8, test_size=4, min_blanks=4, max_blanks=6), "run"), f)
    return args


def test_warm_start_config_is_the_official_prompt_cut_as_the_trainers_cut_it(tmp_path):
    from dlrl_jax.config import from_dict

    args = _warm(tmp_path)
    import yaml
    cfg = from_dict(yaml.safe_load(open(tmp_path / "sft.yaml")))  # a valid config of this project
    t = cfg.task
    assert (t.prompt_style, t.prompt_recipe, t.reward_set, t.truncate_prompts) == ("chat", "d1", "d1", "left")
    assert t.max_prompt_length == args.max_prompt_length == 200 and t.sft_teacher == "mixed"
    # the official answer format is 62 characters; the completion must hold it and an EOS
    assert cfg.sampler.gen_length >= 63 and cfg.sampler.gen_length == 2 * cfg.sampler.steps
    # ESPO's prompt (the d1 warm start does not answer it): its recipe and its reward
    from bench.official import warm_start
    args.prompt_recipe = "espo"
    espo = from_dict(warm_start.sft_config(args, str(tmp_path / "train.csv"), str(tmp_path / "test.csv"), "run"))
    assert (espo.task.prompt_recipe, espo.task.reward_set) == ("espo", "espo")


def test_curve_settings_are_the_same_numbers_on_both_sides(tmp_path):
    from types import SimpleNamespace

    from bench.official import curves
    from dlrl_jax.config import from_dict

    _warm(tmp_path)
    ours = from_dict(curves.our_config("diffu_grpo", str(tmp_path), 5, 100, "out"))
    args = SimpleNamespace(algorithm="diffu_grpo", warm=str(tmp_path), repo="R", official_python="py",
                           iterations=100)
    argv = curves.official_command(args, 5, "o")
    flag = lambda name: argv[argv.index(name) + 1]  # noqa: E731
    a, o, s = ours.algorithm, ours.optim, ours.sampler
    assert (a.name, a.prompts_per_batch, a.beta, a.token_mean) == ("diffu_grpo", 1, 0.0, "batch")
    assert int(flag("--group")) == a.group_size and int(flag("--mu")) == a.mu
    assert float(flag("--p-mask-prompt")) == a.p_mask_prompt and float(flag("--eps")) == a.eps_low
    assert float(flag("--lr")) == o.learning_rate and float(flag("--weight-decay")) == o.weight_decay
    assert float(flag("--grad-clip")) == o.grad_clip and o.schedule == "constant"
    assert float(flag("--temperature")) == s.temperature
    assert (int(flag("--gen-length")), int(flag("--block-length")), int(flag("--steps"))) == (
        s.gen_length, s.block_length, s.steps)
    assert int(flag("--max-prompt-length")) == ours.task.max_prompt_length
    assert int(flag("--seed")) == ours.seed == 5 and int(flag("--iterations")) == ours.run.iterations == 100
    assert ours.task.train_file.endswith("train.csv") and ours.model.path.endswith("model")

    args.algorithm = "egspo_sa"  # EGSPO-SA: the selection and the column schedule as well
    ours, argv = from_dict(curves.our_config("egspo_sa", str(tmp_path), 5, 100, "out")), curves.official_command(
        args, 5, "o")
    a = ours.algorithm
    assert flag("--trainer") == "egspo" and (a.name, a.selection, a.aggregation) == ("egspo_sa", "top_k_entropy", "sum")
    assert (int(flag("--k")), int(flag("--columns")), int(flag("--mu"))) == (a.k, a.columns_per_update, a.mu)
    assert (float(flag("--lambda1")), float(flag("--eps")), float(flag("--eps-high"))) == (a.lam, a.eps_low,
                                                                                            a.eps_high)
    assert "--p-mask-prompt" not in argv and float(flag("--lr")) == ours.optim.learning_rate
    assert (ours.task.prompt_recipe, ours.task.reward_set) == ("d1", "d1")  # EGSPO's Sudoku text is d1's

    args.algorithm = "espo"  # ESPO: its own prompt and reward, the ELBO samples and the KL weight
    ours, argv = from_dict(curves.our_config("espo", str(tmp_path), 5, 100, "out")), curves.official_command(
        args, 5, "o")
    a, o = ours.algorithm, ours.optim
    assert flag("--trainer") == "espo" and (ours.task.prompt_recipe, ours.task.reward_set) == ("espo", "espo")
    assert (int(flag("--num-mc")), float(flag("--beta")), int(flag("--mu"))) == (a.elbo_samples, a.beta, a.mu)
    assert float(flag("--eps")) == a.eps_low == a.eps_high and a.elbo_strata == a.group_size == int(flag("--group"))
    assert (float(flag("--weight-decay")), float(flag("--temperature"))) == (o.weight_decay, ours.sampler.temperature)
    assert "--k" not in argv and "--p-mask-prompt" not in argv


def test_equivalence_test_against_scipys_welch_interval():
    from scipy import stats

    from bench.official import curves

    a = [41.0, 44.5, 39.0, 47.5, 43.0, 40.5, 45.0, 42.0]
    b = [40.0, 46.0, 38.5, 44.0, 41.5, 43.5, 39.5, 45.5]
    t = curves.tost(a, b, margin=3.0)
    interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.90)  # the independent oracle
    assert t["diff"] == pytest.approx(np.mean(a) - np.mean(b))
    assert (t["low"], t["high"]) == (pytest.approx(interval.low), pytest.approx(interval.high))
    assert t["equivalent"] == (-3.0 < interval.low and interval.high < 3.0)
    # each one-sided test as scipy computes it, shifted by the margin; TOST's p is the larger one
    upper = stats.ttest_ind(np.array(a) - 3.0, b, equal_var=False, alternative="less").pvalue
    lower = stats.ttest_ind(np.array(a) + 3.0, b, equal_var=False, alternative="greater").pvalue
    assert t["p"] == pytest.approx(max(upper, lower))
    far = curves.tost([x + 10 for x in a], b, margin=3.0)
    assert not far["equivalent"] and far["p"] > 0.5


def test_curve_report_reads_our_metrics_and_tables_both_systems(tmp_path):
    from bench.official import curves

    with open(tmp_path / "metrics.jsonl", "w") as f:
        f.write(json.dumps({"phase": "eval", "step": 0, "reward": 0.9}) + "\n")  # not a rollout
        for i, r in enumerate([0.25, 0.5]):  # the RL loop's keys (dlrl_jax/training/loop.py)
            f.write(json.dumps({"phase": "rl", "step": i, "reward_mean": r, "time_iteration": 2.0}) + "\n")
    assert curves.our_rewards(str(tmp_path)) == ([0.25, 0.5], 4.0)
    rows = [{"system": s, "seed": i, "rewards": [0.1 * i] * 10 + [0.5] * 10, "accuracy": 40.0 + i + d,
             "solved": 10.0} for s, d in (("official", 0.0), ("ours", 0.5)) for i in range(3)]
    text = curves.report(rows)
    assert "| official | 3 | 0.100 +- 0.058 | 0.500 +- 0.000 |" in text
    assert "accuracy: ours - official = +0.500" in text


def test_official_curve_keeps_the_final_completions_rewards():
    from bench.official import curve_official

    # EGSPOTrainer's one reward call: per row the K greedy completions, then the final one (K = 2)
    scored = [0.1, 0.2, 0.5, 0.3, 0.4, 1.0]
    assert curve_official.rollout_rewards("egspo", scored, 2) == [0.5, 1.0]
    assert curve_official.rollout_rewards("d1", scored, 2) == scored  # d1 scores the final ones only
    with pytest.raises(ValueError, match="not a multiple of K"):
        curve_official.rollout_rewards("egspo", scored[:5], 2)
