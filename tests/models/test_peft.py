"""PEFT LoRA adapters in and out, with the `peft` package as the oracle.

- An adapter created and saved by peft on a tiny transformers Llama / Qwen2 (Dream layout) loads here
  with peft's logits (bidirectional forward); so does one in LLaDA's layout (peft's file with the keys
  of LLaDA's module names), and one with use_rslora.
- An adapter saved here loads in peft with our logits; on a torch module tree named as LLaDA's real
  weight index names it, peft loads ours (a regex target list, since LLaDA's ff_out also names the
  head) and merges to our merged weights.
- PEFT's target matching: the official list on LLaDA's real module names adapts q, k, v and up only,
  on Dream's all seven; our resolution counts the same trainable parameters as peft.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict
from safetensors.numpy import load_file, save_file
from torch import nn

from dlrl_jax import checkpoints, models
from dlrl_jax.checkpoints import peft as peft_io
from dlrl_jax.models.lora import LoRASettings, add_lora, merge_lora, trainable_mask
from tests.models import hf_oracle

IDS = np.random.default_rng(5).integers(0, 97, (2, 11))
OFFICIAL = ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj"]
REAL = "/work/shared/real_models"


def _randomise_torch_lora(peft_model, seed=1):
    torch.manual_seed(seed)
    with torch.no_grad():  # peft starts B at zero; random factors make the adapter visible
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.normal_(0.0, 0.05)
    return peft_model.eval()


def _randomise_ours(model, seed=9):
    graphdef, params = models.split(model)
    leaves, treedef = jax.tree.flatten(params)
    mask = jax.tree.leaves(trainable_mask(params))
    rng = np.random.default_rng(seed)  # on the host: one eager JAX op per leaf would compile each shape
    leaves = [jnp.asarray(np.asarray(x) + 0.05 * rng.standard_normal(x.shape), x.dtype) if m else x
              for x, m in zip(leaves, mask)]
    return graphdef, jax.tree.unflatten(treedef, leaves)


def _logits(graphdef_or_model, params=None):
    if params is None:
        return np.asarray(graphdef_or_model(jnp.asarray(IDS, jnp.int32)))
    return np.asarray(models.forward(graphdef_or_model, params, jnp.asarray(IDS, jnp.int32)))


@pytest.mark.parametrize("family, rslora", [("llama", False), ("dream", False), ("llama", True)])
def test_a_peft_adapter_loads_here_with_peft_logits(tmp_path, family, rslora):
    torch_model = hf_oracle.torch_model(family, seed=4)
    base = hf_oracle.write_checkpoint(torch_model, family, str(tmp_path / "base"))
    base_logits = hf_oracle.torch_logits(torch_model, IDS, family)
    peft_model = _randomise_torch_lora(get_peft_model(torch_model, LoraConfig(
        r=4, lora_alpha=8, target_modules=OFFICIAL, lora_dropout=0.05, use_rslora=rslora)))
    peft_model.save_pretrained(str(tmp_path / "adapter"))
    want = hf_oracle.torch_logits(peft_model, IDS, family)
    ours = peft_io.load_adapter(checkpoints.from_pretrained(base), str(tmp_path / "adapter"))
    assert (ours.cfg.lora_rank, ours.cfg.lora_dropout) == (4, 0.05)
    assert set(ours.cfg.lora_targets) == {"q", "k", "v", "o", "gate", "up", "down"}
    assert ours.cfg.lora_scale == pytest.approx(8 / 2 if rslora else 8 / 4)
    assert np.abs(want - base_logits).max() > 1e-2  # the adapter changes the function
    np.testing.assert_allclose(_logits(ours), want, atol=1e-4, rtol=0)


def test_a_peft_adapter_in_llada_layout_loads_here(tmp_path):
    """peft's adapter on a Llama with the official list, rewritten to LLaDA's module names: on LLaDA the
    same list adapts q, k, v and up only, so the adapter holds those (as peft on the real model saves)."""
    torch_model = hf_oracle.torch_model("llada", seed=6)
    base = hf_oracle.write_checkpoint(torch_model, "llada", str(tmp_path / "base"))
    peft_model = _randomise_torch_lora(get_peft_model(torch_model, LoraConfig(
        r=3, lora_alpha=6, target_modules=["q_proj", "k_proj", "v_proj", "up_proj"])))
    peft_model.save_pretrained(str(tmp_path / "llama_adapter"))
    want = hf_oracle.torch_logits(peft_model, IDS, "llada")
    folder = tmp_path / "llada_adapter"
    folder.mkdir()
    tensors = load_file(str(tmp_path / "llama_adapter" / "adapter_model.safetensors"))
    save_file({hf_oracle.llada_key(k): v for k, v in tensors.items()}, str(folder / "adapter_model.safetensors"))
    config = json.load(open(tmp_path / "llama_adapter" / "adapter_config.json"))
    config["target_modules"] = OFFICIAL  # what the official trainers configure
    json.dump(config, open(folder / "adapter_config.json", "w"))
    assert any(k.startswith("base_model.model.model.transformer.blocks.1.up_proj.lora_B") for k in
               load_file(str(folder / "adapter_model.safetensors")))
    ours = peft_io.load_adapter(checkpoints.from_pretrained(base), str(folder))
    assert ours.cfg.lora_targets == ("q", "k", "v", "up")
    np.testing.assert_allclose(_logits(ours), want, atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", ["llama", "dream"])
def test_an_adapter_saved_here_loads_in_peft_with_our_logits(tmp_path, family):
    torch_model = hf_oracle.torch_model(family, seed=2)
    base = hf_oracle.write_checkpoint(torch_model, family, str(tmp_path / "base"))
    graphdef, params = _randomise_ours(add_lora(checkpoints.from_pretrained(base),
                                                LoRASettings(rank=3, alpha=5.0, targets=("q", "v", "o", "down"))))
    ours = _logits(graphdef, params)
    peft_io.save_adapter(nnx.merge(graphdef, params), str(tmp_path / "adapter"), base_model=base)
    config = json.load(open(tmp_path / "adapter" / "adapter_config.json"))
    assert config["target_modules"] == ["q_proj", "v_proj", "o_proj", "down_proj"] and config["r"] == 3
    peft_model = PeftModel.from_pretrained(hf_oracle.torch_model(family, seed=2), str(tmp_path / "adapter")).eval()
    trainable = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    assert trainable == sum(x.size for x, m in zip(jax.tree.leaves(params), jax.tree.leaves(trainable_mask(params)))
                            if m)
    np.testing.assert_allclose(hf_oracle.torch_logits(peft_model, IDS, family), ours, atol=1e-4, rtol=0)


# --- LLaDA's real module names (from its published safetensors index) as a torch module tree ---------

_TINY_LLADA = dict(d=64, heads=4, ff=128, vocab=97, layers=2)  # the setting of issue 13 item 6


class _Norm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))


def _real_tree(model_name: str, shape_of) -> nn.Module:
    """Modules named exactly as the real index names the weights (layers beyond the tiny depth left
    out): Linear for 2-D weights, Embedding for the token table, a norm module for 1-D weights."""
    index = json.load(open(os.path.join(REAL, model_name, "model.safetensors.index.json")))["weight_map"]
    root = nn.Module()
    for key in sorted(index):
        parts = key.split(".")
        if any(p.isdigit() and int(p) >= _TINY_LLADA["layers"] for p in parts) or parts[-1] != "weight":
            continue
        node = root
        for part in parts[:-2]:
            if not hasattr(node, part):
                node.add_module(part, nn.Module())
            node = getattr(node, part)
        shape = shape_of(key)
        if len(shape) == 1:
            leaf = _Norm(shape[0])
        elif parts[-2] in ("wte", "embed_tokens"):
            leaf = nn.Embedding(*shape)
        else:
            leaf = nn.Linear(shape[1], shape[0], bias=False)
        node.add_module(parts[-2], leaf)
    return root


def _llada_shape(key: str):
    c = _TINY_LLADA
    d, ff, v = c["d"], c["ff"], c["vocab"]
    leaf = key.split(".")[-2]
    if "blocks" not in key:
        return {"wte": (v, d), "ff_out": (v, d), "ln_f": (d,)}[leaf]
    return {"q_proj": (d, d), "k_proj": (d, d), "v_proj": (d, d), "attn_out": (d, d), "ff_proj": (ff, d),
            "up_proj": (ff, d), "ff_out": (d, ff), "attn_norm": (d,), "ff_norm": (d,)}[leaf]


def _tiny_llada_cfg():
    c = _TINY_LLADA
    return models.ModelConfig(family="llada", vocab_size=c["vocab"], d_model=c["d"], n_layers=c["layers"],
                              n_heads=c["heads"], n_kv_heads=c["heads"], mlp_hidden=c["ff"], mask_token_id=96)


def _peft_trainable(tree, target_modules, r):
    peft_model = get_peft_model(tree, LoraConfig(r=r, lora_alpha=2 * r, target_modules=target_modules))
    return sum(p.numel() for p in peft_model.parameters() if p.requires_grad), peft_model


@pytest.mark.skipif(not os.path.isdir(REAL), reason="real model metadata not present")
def test_the_official_target_list_on_llada_adapts_q_k_v_up_only_as_peft_does():
    cfg = _tiny_llada_cfg()
    targets = peft_io.config_targets(cfg, ",".join(OFFICIAL))
    assert targets == ("q", "k", "v", "up")
    peft_count, peft_model = _peft_trainable(_real_tree("LLaDA-8B-Instruct", _llada_shape), OFFICIAL, r=128)
    adapted = sorted({n.split(".lora_")[0].split(".")[-1] for n, _ in peft_model.named_parameters() if "lora_A" in n})
    assert adapted == ["k_proj", "q_proj", "up_proj", "v_proj"]
    _, params = models.split(add_lora(models.abstract_model(cfg), LoRASettings(rank=128, alpha=64.0, targets=targets)))
    ours = sum(x.size for x, m in zip(jax.tree.leaves(params), jax.tree.leaves(trainable_mask(params))) if m)
    # 2 layers x rank 128 x (q, k, v: 64 -> 64; up: 64 -> 128): the 147,456 of issue 13 (the paper's seven
    # projections would be 2 x 128 x (4 x 128 + 3 x 192) = 278,528)
    assert ours == peft_count == 2 * 128 * (3 * (64 + 64) + (64 + 128)) == 147_456
    # LLaDA's own names reach the other three; ff_out alone would also hit the output head (refused).
    assert peft_io.config_targets(cfg, "q_proj,k_proj,v_proj,attn_out,ff_proj,up_proj") == (
        "q", "k", "v", "o", "gate", "up")
    with pytest.raises(peft_io.AdapterError, match=r"also match \['model.transformer.ff_out'\]"):
        peft_io.config_targets(cfg, "ff_out")
    with pytest.raises(peft_io.AdapterError, match="match no module of this llada model"):
        peft_io.config_targets(cfg, "o_proj,gate_proj")


@pytest.mark.skipif(not os.path.isdir(REAL), reason="real model metadata not present")
def test_the_official_target_list_on_dream_adapts_all_seven_as_peft_does():
    cfg = models.ModelConfig(family="dream", vocab_size=97, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2,
                             mlp_hidden=96, qkv_bias=True)
    assert peft_io.config_targets(cfg, ",".join(OFFICIAL)) == ("q", "k", "v", "o", "gate", "up", "down")

    def shape(key):
        leaf = key.split(".")[-2]
        if "layers" not in key:
            return {"embed_tokens": (97, 64), "lm_head": (97, 64), "norm": (64,)}[leaf]
        return {"q_proj": (64, 64), "k_proj": (32, 64), "v_proj": (32, 64), "o_proj": (64, 64), "gate_proj": (96, 64),
                "up_proj": (96, 64), "down_proj": (64, 96), "input_layernorm": (64,),
                "post_attention_layernorm": (64,)}[leaf]

    peft_count, _ = _peft_trainable(_real_tree("Dream-v0-Instruct-7B", shape), OFFICIAL, r=4)
    _, params = models.split(add_lora(models.abstract_model(cfg), LoRASettings(
        rank=4, alpha=8.0, targets=peft_io.config_targets(cfg, ",".join(OFFICIAL)))))
    assert peft_count == sum(x.size for x, m in zip(jax.tree.leaves(params), jax.tree.leaves(trainable_mask(params)))
                             if m) == 2 * 4 * (64 + 64 + 2 * (64 + 32) + 64 + 64 + 3 * (64 + 96))


@pytest.mark.skipif(not os.path.isdir(REAL), reason="real model metadata not present")
def test_an_adapter_saved_here_for_llada_merges_in_peft_to_our_merged_weights(tmp_path):
    """All seven projections on LLaDA: the saved target list is a regex (ff_out also names the head);
    peft loads the file onto the LLaDA-named tree and merges to the weights our merged export holds."""
    cfg = _tiny_llada_cfg()
    model = models.init_model(cfg, seed=1)
    checkpoints.save_pretrained(model, str(tmp_path / "base"))
    graphdef, params = _randomise_ours(add_lora(model, LoRASettings(rank=2, alpha=3.0)))
    adapted = nnx.merge(graphdef, params)
    peft_io.save_adapter(adapted, str(tmp_path / "adapter"))
    config = LoraConfig.from_pretrained(str(tmp_path / "adapter"))
    assert isinstance(config.target_modules, str)
    checkpoints.save_pretrained(merge_lora(adapted), str(tmp_path / "merged"))

    tree = _real_tree("LLaDA-8B-Instruct", _llada_shape)
    base = {k: torch.from_numpy(v.astype(np.float32))
            for k, v in load_file(str(tmp_path / "base" / "model.safetensors")).items()}
    assert set(base) == set(tree.state_dict())  # our export's names = the real index's (first two blocks)
    tree.load_state_dict(base)
    config.task_type, config.inference_mode = None, False
    peft_model = get_peft_model(tree, config)
    result = set_peft_model_state_dict(peft_model, {k: torch.from_numpy(v) for k, v in load_file(
        str(tmp_path / "adapter" / "adapter_model.safetensors")).items()})
    assert not result.unexpected_keys and not [k for k in result.missing_keys if "lora_" in k]
    assert sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n) == 2 * 2 * (
        4 * 128 + 2 * (64 + 128) + (128 + 64))
    merged = {k: v.numpy() for k, v in peft_model.merge_and_unload().state_dict().items()}
    want = load_file(str(tmp_path / "merged" / "model.safetensors"))
    assert set(merged) == set(want)
    for key in want:
        np.testing.assert_allclose(merged[key], want[key], atol=1e-6, rtol=0, err_msg=key)


def test_bad_adapter_folders_are_named(tmp_path):
    torch_model = hf_oracle.torch_model("llama", seed=4)
    base = checkpoints.from_pretrained(hf_oracle.write_checkpoint(torch_model, "llama", str(tmp_path / "base")))
    with pytest.raises(peft_io.AdapterError, match="does not exist"):
        peft_io.load_adapter(base, str(tmp_path / "none"))
    peft_model = get_peft_model(torch_model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"]))
    peft_model.save_pretrained(str(tmp_path / "ad"))
    config_path = tmp_path / "ad" / "adapter_config.json"
    config = json.load(open(config_path))
    json.dump(dict(config, use_dora=True), open(config_path, "w"))
    with pytest.raises(peft_io.AdapterError, match="use_dora=True is not supported"):
        peft_io.load_adapter(base, str(tmp_path / "ad"))
    json.dump(dict(config, target_modules=["q_proj", "v_proj"]), open(config_path, "w"))
    with pytest.raises(peft_io.AdapterError,
                       match=r"missing key base_model.model.model.layers.0.self_attn.v_proj.lora_A"):
        peft_io.load_adapter(base, str(tmp_path / "ad"))
    json.dump(dict(config, r=3), open(config_path, "w"))
    with pytest.raises(peft_io.AdapterError, match=r"lora_A.weight: shape \(2, 64\), expected \(3, 64\)"):
        peft_io.load_adapter(base, str(tmp_path / "ad"))
