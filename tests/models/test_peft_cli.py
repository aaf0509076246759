"""PEFT adapters on the command line and in configs: `eval --adapter` decodes as the merged model does
(and not as the base), `export --adapter` merges, `export --adapter-only` rewrites a checked adapter,
`sample --adapter`; `model.adapter` starts training from the adapter; `model.lora_targets` takes PEFT
module names, resolved per architecture."""

import json
import os

import jax
import numpy as np
import pytest
from flax import nnx

from dlrl_jax import checkpoints, cli, config, models
from dlrl_jax.checkpoints import peft
from dlrl_jax.models.lora import LoRASettings, add_lora, trainable_mask
from dlrl_jax.models.tokenizer import write_char_tokenizer
from dlrl_jax.training import setup


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A tiny LLaDA base (with the char tokenizer) and a strong random adapter on q, v, o and down."""
    root = tmp_path_factory.mktemp("peft_cli")
    base = str(root / "base")
    model = models.init_model(models.preset("tiny"), seed=3)
    checkpoints.save_pretrained(model, base)
    write_char_tokenizer(base)
    adapted = add_lora(model, LoRASettings(rank=4, alpha=8.0, targets=("q", "v", "o", "down"), dropout=0.05))
    graphdef, params = models.split(adapted)
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda x, m: x + 0.3 * rng.standard_normal(x.shape).astype(x.dtype) if m else x,
                          params, trainable_mask(params))
    adapter = str(root / "adapter")
    peft.save_adapter(nnx.merge(graphdef, params), adapter)
    return base, adapter, root


def _eval_rows(out):
    return [json.loads(line)["completion"] for line in open(os.path.join(out, "eval_sudoku_16.jsonl"))]


def test_eval_with_adapter_decodes_as_the_merged_model(folders):
    base, adapter, root = folders
    merged = str(root / "merged")
    assert cli.main(["export", "--model", base, "--adapter", adapter, "--out", merged]) == 0
    write_char_tokenizer(merged)
    common = ["--task", "sudoku", "--gen-lengths", "16", "--num-examples", "6", "--prompt-style", "plain",
              "--block-length", "8", "--batch-size", "6", "--no-progress"]
    assert cli.main(["eval", "--model", base, "--adapter", adapter, *common]) == 0
    assert cli.main(["eval", "--model", merged, "--out", str(root / "ev_merged"), *common]) == 0
    assert cli.main(["eval", "--model", base, "--out", str(root / "ev_base"), *common]) == 0
    with_adapter = _eval_rows(os.path.join(adapter, "eval"))  # the default --out follows the adapter
    assert with_adapter == _eval_rows(str(root / "ev_merged"))
    assert with_adapter != _eval_rows(str(root / "ev_base"))
    meta = json.load(open(os.path.join(adapter, "eval", "eval_meta.json")))
    assert meta["adapter"] == os.path.abspath(adapter)


def test_export_adapter_only_and_sample_with_adapter(folders, tmp_path, capsys):
    base, adapter, _ = folders
    out = str(tmp_path / "copy")
    assert cli.main(["export", "--model", base, "--adapter", adapter, "--adapter-only", "--out", out,
                     "--dtype", "bfloat16"]) == 0
    cfg = checkpoints.from_pretrained(base).cfg
    (s1, f1), (s2, f2) = peft.read_adapter(adapter, cfg), peft.read_adapter(out, cfg)
    assert s1 == s2 and s2.targets == ("q", "v", "o", "down")
    for name in f1:  # bfloat16 keeps 8 bits of mantissa
        np.testing.assert_allclose(f2[name], f1[name], rtol=2 ** -8, atol=0)
    capsys.readouterr()
    assert cli.main(["export", "--model", base, "--adapter-only", "--out", out]) == 2  # a named bad-input error
    assert "adapter does not exist; a run writes it only when it trains LoRA" in capsys.readouterr().err
    assert cli.main(["sample", "--model", base, "--adapter", adapter, "--prompt-ids", "7 8 9", "--gen-length", "8",
                     "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["completion_ids"][0]) == 8


def test_model_adapter_starts_training_from_the_adapter(folders):
    base, adapter, _ = folders
    cfg = config.from_dict({"model": {"path": base, "adapter": adapter}})
    model, _ = setup.build_model_and_tokenizer(cfg.model, cfg.seed)
    settings, factors = peft.read_adapter(adapter, model.cfg.replace(lora_rank=0, lora_targets=()))
    assert (model.cfg.lora_rank, model.cfg.lora_targets, model.cfg.lora_dropout) == (4, ("q", "v", "o", "down"), 0.05)
    np.testing.assert_array_equal(np.asarray(model.layers.lora_b_wo[...]), factors["lora_b_wo"])
    with pytest.raises(config.ConfigError, match="model.adapter .* leave model.lora_rank at 0"):
        config.from_dict({"model": {"path": base, "adapter": adapter, "lora_rank": 8}})
    with pytest.raises(config.ConfigError, match="model.adapter .* is not a folder"):
        config.from_dict({"model": {"path": base, "adapter": str(adapter) + "_none"}})


def test_lora_targets_take_peft_module_names_resolved_per_architecture(folders):
    base, _, _ = folders
    official = "q_proj,k_proj,v_proj,o_proj,up_proj,down_proj,gate_proj"
    cfg = config.from_dict({"model": {"path": base, "lora_rank": 2, "lora_targets": official}})
    model, _ = setup.build_model_and_tokenizer(cfg.model, cfg.seed)
    assert model.cfg.lora_targets == ("q", "k", "v", "up")  # LLaDA names: attn_out, ff_proj, ff_out unmatched
    with pytest.raises(config.ConfigError, match="not a mix"):
        config.from_dict({"model": {"lora_rank": 2, "lora_targets": "q,k_proj"}})
    cfg = config.from_dict({"model": {"path": base, "lora_rank": 2, "lora_targets": "o_proj,gate_proj"}})
    with pytest.raises(config.ConfigError, match="model.lora_targets: .* match no module of this llada model"):
        setup.build_model_and_tokenizer(cfg.model, cfg.seed)
