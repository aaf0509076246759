"""The official-trainer harness's own code paths (bench/official), without the official repositories:
the adapter from a recorded trainer trajectory to this project's Trajectory (hand-worked canvases), the
comparison of recorded and replayed optimizer steps (hand-computed errors), the Trainer's weight-decay
rule on LLaDA's names, and the shared model folder's config."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from bench.official import compare, d1_replay, egspo_replay, espo_replay, model_folder
from dlrl_jax.checkpoints.hf import read_config

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
