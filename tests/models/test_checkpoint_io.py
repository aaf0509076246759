"""save -> load is bit-exact (float32 and bfloat16, single and sharded files); broken folders fail loudly."""

import json
import os

import jax
import ml_dtypes
import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from dlrl_jax import checkpoints, models
from dlrl_jax.checkpoints import CheckpointError

CFGS = {
    "llada": models.preset("tiny", vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_hidden=48),
    "dream": models.ModelConfig(family="dream", vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                                mlp_hidden=48, qkv_bias=True, mask_token_id=39),
    "tied": models.preset("tiny", vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=4, mlp_hidden=48,
                          tie_embeddings=True),
}


def _leaves(model):
    return [np.asarray(x) for x in jax.tree.leaves(models.split(model)[1])]


@pytest.mark.parametrize("name", sorted(CFGS))
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_round_trip_is_bit_exact(tmp_path, name, dtype):
    model = models.init_model(CFGS[name].replace(param_dtype=dtype, dtype=dtype), seed=1)
    checkpoints.save_pretrained(model, str(tmp_path))
    loaded = checkpoints.from_pretrained(str(tmp_path), dtype=dtype)
    assert loaded.cfg == model.cfg
    for a, b in zip(_leaves(model), _leaves(loaded), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a.view(np.uint8), b.view(np.uint8))


def test_sharded_files_with_index_round_trip(tmp_path):
    model = models.init_model(CFGS["llada"], seed=2)
    checkpoints.save_pretrained(model, str(tmp_path), max_shard_bytes=20_000)
    index = json.load(open(tmp_path / "model.safetensors.index.json"))
    assert len(set(index["weight_map"].values())) > 2
    loaded = checkpoints.from_pretrained(str(tmp_path))
    for a, b in zip(_leaves(model), _leaves(loaded), strict=True):
        assert np.array_equal(a, b)


def test_saved_layout_uses_llada_key_names(tmp_path):
    checkpoints.save_pretrained(models.init_model(CFGS["llada"]), str(tmp_path))
    with safe_open(str(tmp_path / "model.safetensors"), "np") as f:
        keys = set(f.keys())
        assert f.get_slice("model.transformer.blocks.1.ff_proj.weight").get_shape() == [48, 32]
        assert f.get_slice("model.transformer.blocks.0.k_proj.weight").get_shape() == [16, 32]
    assert "model.transformer.wte.weight" in keys and "model.transformer.ff_out.weight" in keys
    assert "model.transformer.blocks.1.attn_out.weight" in keys and "model.transformer.ln_f.weight" in keys


def _rewrite(path, edit):
    fn = os.path.join(path, "model.safetensors")
    with safe_open(fn, "np") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    edit(tensors)
    save_file(tensors, fn)


@pytest.fixture
def saved(tmp_path):
    checkpoints.save_pretrained(models.init_model(CFGS["llada"]), str(tmp_path))
    return str(tmp_path)


def test_missing_key_is_named(saved):
    _rewrite(saved, lambda t: t.pop("model.transformer.blocks.1.up_proj.weight"))
    with pytest.raises(CheckpointError, match=r"missing keys \['model.transformer.blocks.1.up_proj.weight'\]"):
        checkpoints.from_pretrained(saved)


def test_unexpected_key_is_named(saved):
    _rewrite(saved, lambda t: t.update({"model.transformer.extra.weight": np.zeros(3, np.float32)}))
    with pytest.raises(CheckpointError, match=r"unexpected keys \['model.transformer.extra.weight'\]"):
        checkpoints.from_pretrained(saved)


def test_wrong_shape_is_named(saved):
    _rewrite(saved, lambda t: t.update({"model.transformer.ln_f.weight": np.ones(31, np.float32)}))
    with pytest.raises(CheckpointError, match=r"model.transformer.ln_f.weight: found \(31,\), expected \(32,\)"):
        checkpoints.from_pretrained(saved)


def test_nan_weights_are_refused(saved):
    def poison(t):
        t["model.transformer.blocks.0.q_proj.weight"][0, 0] = np.nan
    _rewrite(saved, poison)
    with pytest.raises(CheckpointError, match="q_proj.weight holds NaN"):
        checkpoints.from_pretrained(saved)


def test_corrupt_config_is_named(saved):
    with open(os.path.join(saved, "config.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        checkpoints.from_pretrained(saved)


def test_unknown_model_type_and_missing_field(saved):
    cfg_path = os.path.join(saved, "config.json")
    raw = json.load(open(cfg_path))
    json.dump(dict(raw, model_type="gpt2"), open(cfg_path, "w"))
    with pytest.raises(CheckpointError, match="model_type 'gpt2' is not supported"):
        checkpoints.from_pretrained(saved)
    json.dump({k: v for k, v in raw.items() if k != "d_model"}, open(cfg_path, "w"))
    with pytest.raises(CheckpointError, match="field 'd_model' is missing"):
        checkpoints.from_pretrained(saved)


def test_missing_files_are_named(tmp_path, saved):
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoints.from_pretrained(str(tmp_path / "nowhere"))
    os.remove(os.path.join(saved, "model.safetensors"))
    with pytest.raises(CheckpointError, match="has neither model.safetensors nor"):
        checkpoints.from_pretrained(saved)


def test_missing_shard_is_named(tmp_path):
    checkpoints.save_pretrained(models.init_model(CFGS["llada"]), str(tmp_path), max_shard_bytes=20_000)
    os.remove(sorted(tmp_path.glob("model-*.safetensors"))[1])
    with pytest.raises(CheckpointError, match="lists shard files that are missing"):
        checkpoints.from_pretrained(str(tmp_path))


def test_bfloat16_checkpoint_loads_as_float32(tmp_path):
    model = models.init_model(CFGS["llada"].replace(param_dtype="bfloat16", dtype="bfloat16"))
    checkpoints.save_pretrained(model, str(tmp_path))
    loaded = checkpoints.from_pretrained(str(tmp_path), dtype="float32")
    want = np.asarray(model.embed[...]).astype(np.float32)
    assert np.array_equal(np.asarray(loaded.embed[...]), want)
    assert np.asarray(model.embed[...]).dtype == ml_dtypes.bfloat16


def test_dtype_may_be_a_jax_or_numpy_dtype(saved):
    import jax.numpy as jnp

    cases = [(jnp.float32, np.float32, "float32"), (jnp.bfloat16, ml_dtypes.bfloat16, "bfloat16"),
             (np.dtype("float16"), np.float16, "float16"), (np.dtype(ml_dtypes.bfloat16), ml_dtypes.bfloat16, "bfloat16"),
             ("bfloat16", ml_dtypes.bfloat16, "bfloat16")]
    for dtype, want, name in cases:
        model = checkpoints.from_pretrained(saved, dtype=dtype, compute_dtype=jnp.float32)
        assert np.asarray(model.embed[...]).dtype == want and model.cfg.param_dtype == name
        assert model.cfg.dtype == "float32"
    with pytest.raises(CheckpointError, match=r"dtype <class 'numpy.int32'> is not supported; use one of"):
        checkpoints.from_pretrained(saved, dtype=np.int32)
