"""The real LLaDA-8B-Instruct and Dream-v0-Instruct-7B layouts (../shared/real_models): the weight names
the loader requires for each real config.json are exactly those of its published safetensors index, and
an abstract (shapes-only) model of each real config has the published parameter count, derived here from
the index's total_size (bfloat16: 2 bytes per parameter) and, separately, from the config arithmetic."""

import json
import os

import pytest

from dlrl_jax import models
from dlrl_jax.models import hf

REAL = "/work/shared/real_models"
pytestmark = pytest.mark.skipif(not os.path.isdir(REAL), reason="real model metadata not present")


def _real(name):
    folder = os.path.join(REAL, name)
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(folder, "model.safetensors.index.json")) as f:
        index = json.load(f)
    return folder, config, index


def _count_from_config(c: dict) -> int:
    """Parameters of a Llama-style block stack written out from the raw config fields."""
    if c["model_type"] == "llada":
        d, layers, ff, heads, kv = c["d_model"], c["n_layers"], c["mlp_hidden_size"], c["n_heads"], c["n_kv_heads"]
        vocab, bias = c["embedding_size"], c["include_qkv_bias"]
    else:
        d, layers, ff = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"]
        heads, kv, vocab, bias = c["num_attention_heads"], c["num_key_value_heads"], c["vocab_size"], True
    hd = d // heads
    attention = d * heads * hd + 2 * d * kv * hd + heads * hd * d + (heads * hd + 2 * kv * hd if bias else 0)
    return layers * (attention + 3 * d * ff + 2 * d) + 2 * vocab * d + d


@pytest.mark.parametrize("name, n_keys, published", [("LLaDA-8B-Instruct", 291, 8.02e9),
                                                      ("Dream-v0-Instruct-7B", 339, 7.62e9)])
def test_loader_names_and_abstract_parameter_count_match_the_real_index(name, n_keys, published):
    folder, config, index = _real(name)
    cfg = hf.read_config(folder)
    want_names = sorted(index["weight_map"])
    assert len(want_names) == n_keys
    assert hf.expected_weight_names(cfg) == want_names
    assert config.get("torch_dtype", config.get("precision")) in ("bfloat16", "amp_bf16")
    from_index = index["metadata"]["total_size"] // 2
    assert from_index == _count_from_config(config)
    assert round(from_index / 1e9, 2) == published / 1e9
    graphdef, params = models.split(models.abstract_model(cfg.replace(param_dtype="bfloat16", dtype="bfloat16")))
    assert models.param_count(params) == from_index
