"""Hugging Face model folders (config.json + safetensors, single or sharded) <-> the NNX model, in
the layout of the model's family (dlrl_jax/models/families/: config.json names, weight names).

Loading reads one tensor at a time into the stacked parameter it belongs to, so host memory peaks
near one copy of the checkpoint, and can place every parameter straight onto a given sharding.
Any missing, unexpected or mis-shaped tensor is reported, all of them in one error; nothing is ever
filled in silently.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from typing import Callable

import jax
import ml_dtypes
import numpy as np
from flax import nnx
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from dlrl_jax.folders.atomic import replace_folder
from dlrl_jax.folders.errors import CheckpointError
from dlrl_jax.folders.json_file import read_json_object
from dlrl_jax.models import families
from dlrl_jax.models.config import ConfigError, ModelConfig, from_hf_dict, to_hf_dict
from dlrl_jax.models.transformer import Transformer, layer_param_names

_NP_DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


@contextlib.contextmanager
def _open_safetensors(fn: str):
    """safe_open, with a truncated or corrupt file named in one line instead of a Rust error."""
    try:
        f = safe_open(fn, "np")
    except SafetensorError as e:
        raise CheckpointError(f"{fn} is truncated or corrupt ({e}); download or export it again") from None
    with f:
        try:
            yield f
        except SafetensorError as e:
            raise CheckpointError(f"{fn}: a tensor cannot be read ({e}); the file is corrupt, download or export "
                                  "it again") from None


def _layout(cfg: ModelConfig):
    """(embed, final norm, head, per-layer prefix format, {our layer param: HF suffix}) of cfg's family."""
    w = families.get(cfg.family).weights
    return w.embed, w.final_norm, w.lm_head, w.layer_prefix, w.layer


def _to_ours(name: str, hf_tensor: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """HF (out, in) tensor -> our (in, ...heads) layout for one layer (or a top-level tensor)."""
    D, Hd = cfg.d_model, cfg.resolved_head_dim
    if name in ("wq", "wk", "wv"):
        return hf_tensor.T.reshape(D, -1, Hd)
    if name in ("bq", "bk", "bv"):
        return hf_tensor.reshape(-1, Hd)
    if name == "wo":
        return hf_tensor.T.reshape(-1, Hd, D)
    if name in ("w_gate", "w_up", "w_down", "lm_head"):
        return hf_tensor.T
    return hf_tensor


def _bounds(index, shape):
    """(start, stop) per axis of a make_array_from_callback index (slices with steps of 1)."""
    return [sl.indices(n)[:2] for sl, n in zip(index, shape)]


def _read_ours_slice(f, key: str, name: str, bounds, cfg: ModelConfig) -> np.ndarray:
    """One layer's (or a top-level tensor's) block of our layout, read as the matching block of the HF
    tensor: only those bytes come off the disk. Head axes map to row ranges of whole heads (the
    head_dim axis is never split)."""
    sl = f.get_slice(key)
    Hd = cfg.resolved_head_dim
    if name in ("wq", "wk", "wv"):  # ours (D, N, Hd) = hf (N*Hd, D).T
        (d0, d1), (n0, n1), _ = bounds
        return np.asarray(sl[n0 * Hd:n1 * Hd, d0:d1]).T.reshape(d1 - d0, n1 - n0, Hd)
    if name in ("bq", "bk", "bv"):  # ours (N, Hd) = hf (N*Hd,)
        (n0, n1), _ = bounds
        return np.asarray(sl[n0 * Hd:n1 * Hd]).reshape(n1 - n0, Hd)
    if name == "wo":  # ours (N, Hd, D) = hf (D, N*Hd).T
        (n0, n1), _, (d0, d1) = bounds
        return np.asarray(sl[d0:d1, n0 * Hd:n1 * Hd]).T.reshape(n1 - n0, Hd, d1 - d0)
    if name in ("w_gate", "w_up", "w_down", "lm_head"):  # ours = hf.T
        (a0, a1), (b0, b1) = bounds
        return np.asarray(sl[b0:b1, a0:a1]).T
    return np.asarray(sl[tuple(slice(a, b) for a, b in bounds)])


def _to_hf(name: str, ours: np.ndarray) -> np.ndarray:
    if name in ("wq", "wk", "wv"):
        return np.ascontiguousarray(ours.reshape(ours.shape[0], -1).T)
    if name in ("bq", "bk", "bv"):
        return ours.reshape(-1)
    if name == "wo":
        return np.ascontiguousarray(ours.reshape(-1, ours.shape[-1]).T)
    if name in ("w_gate", "w_up", "w_down", "lm_head"):
        return np.ascontiguousarray(ours.T)
    return ours


def _hf_shape(name: str, our_shape: tuple[int, ...]) -> tuple[int, ...]:
    return _to_hf(name, np.empty(our_shape, np.int8)).shape


def weight_keys(cfg: ModelConfig) -> dict[str, tuple[str, int | None]]:
    """HF key -> (our parameter name, layer index or None), for the base weights of `cfg` (no LoRA)."""
    return _expected_keys(cfg.replace(lora_rank=0, lora_alpha=0.0, lora_targets=(), lora_dropout=0.0,
                                      quantize_base="none"))


def _expected_keys(cfg: ModelConfig) -> dict[str, tuple[str, int | None]]:
    """HF key -> (our parameter name, layer index or None)."""
    embed, norm, head, layer_fmt, layer_map = _layout(cfg)
    keys = {embed: ("embed", None), norm: ("final_norm", None)}
    if not cfg.tie_embeddings:
        keys[head] = ("lm_head", None)
    for i in range(cfg.n_layers):
        for name in layer_param_names(cfg):
            keys[layer_fmt.format(i=i) + layer_map[name]] = (name, i)
    return keys


def expected_weight_names(cfg: ModelConfig) -> list[str]:
    """Every safetensors key a checkpoint of `cfg` holds (and `from_pretrained` requires), sorted."""
    return sorted(weight_keys(cfg))


def read_config(path: str) -> ModelConfig:
    config_path = os.path.join(path, "config.json")
    if not os.path.isdir(path):
        raise CheckpointError(f"model folder {path!r} does not exist")
    raw = read_json_object(config_path, CheckpointError, "a model folder needs config.json and safetensors",
                           "re-export the checkpoint")
    try:
        return from_hf_dict(raw, source=config_path)
    except ConfigError as e:
        raise CheckpointError(str(e)) from e


def _tensor_files(path: str) -> dict[str, str]:
    """HF key -> safetensors file path, from the index (sharded) or the single file."""
    index_path = os.path.join(path, INDEX_FILE)
    if os.path.isfile(index_path):
        try:
            with open(index_path) as f:
                weight_map = json.load(f)["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{index_path} is not a valid safetensors index ({e!r})") from e
        missing = sorted({fn for fn in weight_map.values() if not os.path.isfile(os.path.join(path, fn))})
        if missing:
            raise CheckpointError(f"{index_path} lists shard files that are missing: {missing}")
        return {key: os.path.join(path, fn) for key, fn in weight_map.items()}
    single = os.path.join(path, SINGLE_FILE)
    if not os.path.isfile(single):
        raise CheckpointError(f"{path} has neither {SINGLE_FILE} nor {INDEX_FILE}")
    with _open_safetensors(single) as f:
        return {key: single for key in f.keys()}


def _check_keys(expected: dict, present: dict, path: str, shapes: dict) -> None:
    problems = []
    missing = sorted(set(expected) - set(present))
    unexpected = sorted(set(present) - set(expected))
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    bad = []
    for key, (shape, want) in shapes.items():
        if tuple(shape) != tuple(want):
            bad.append(f"{key}: found {tuple(shape)}, expected {tuple(want)}")
    if bad:
        problems.append("wrong shapes " + "; ".join(bad))
    if problems:
        raise CheckpointError(f"checkpoint {path} does not match its config.json: " + " | ".join(problems))


def dtype_name(dtype) -> str | None:
    """"float32" / "bfloat16" / "float16" for a dtype name, a JAX or numpy dtype (jnp.float32,
    np.dtype("bfloat16"), ml_dtypes.bfloat16), or None for None."""
    if dtype is None or isinstance(dtype, str):
        name = dtype
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = repr(dtype)
    if name is not None and name not in _NP_DTYPES:
        raise CheckpointError(f"dtype {dtype!r} is not supported; use one of {sorted(_NP_DTYPES)} "
                              "(as a name or a JAX/numpy dtype)")
    return name


def from_pretrained(path: str, dtype=None, compute_dtype=None,
                    sharding_fn: Callable[[tuple[str, ...], jax.ShapeDtypeStruct], jax.sharding.Sharding]
                    | None = None, mesh=None, **config_overrides) -> Transformer:
    """Loads a Hugging Face folder (of any registered family: LLaDA, Dream, Llama, Qwen2) as a bidirectional
    model.

    dtype: parameter dtype, a name ("float32", "bfloat16", "float16") or a JAX/numpy dtype (jnp.bfloat16,
    np.dtype("float32")); default float32. compute_dtype (the same kinds) defaults to dtype.
    mesh: lay every parameter out on this (data, fsdp, tensor) mesh by its logical axes, each process
    reading from the safetensors only the blocks its own devices hold (no whole copy on any host).
    sharding_fn(param_path, abstract_array) -> Sharding: the same with any placement.
    """
    dtype, compute_dtype = dtype_name(dtype) or "float32", dtype_name(compute_dtype)
    cfg = read_config(path)
    cfg = cfg.replace(param_dtype=dtype, dtype=compute_dtype or dtype, **config_overrides)
    abstract = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(params=0)))
    graphdef, abstract_params = nnx.split(abstract)
    our_shapes = {}
    for name in ("embed", "final_norm", "lm_head"):
        if name != "lm_head" or not cfg.tie_embeddings:
            our_shapes[name] = abstract_params[name].shape
    for name in layer_param_names(cfg):
        our_shapes[name] = abstract_params["layers"][name].shape

    expected = _expected_keys(cfg)
    files = _tensor_files(path)
    shapes = {}
    for key, fn in files.items():
        if key in expected:
            name, layer = expected[key]
            want = our_shapes[name][1:] if layer is not None else our_shapes[name]
            with _open_safetensors(fn) as f:
                shapes[key] = (f.get_slice(key).get_shape(), _hf_shape(name, want))
    _check_keys(expected, files, path, shapes)
    np_dtype = _NP_DTYPES[dtype]
    if mesh is not None:
        from dlrl_jax.parallel import param_shardings
        by_path = {jax.tree_util.keystr(p): sh for p, sh in jax.tree_util.tree_leaves_with_path(
            param_shardings(abstract_params, mesh))}
        return nnx.merge(graphdef, jax.tree_util.tree_map_with_path(
            lambda kp, leaf: _sliced_array(kp, leaf, by_path[jax.tree_util.keystr(kp).removesuffix(".value")],
                                           expected, files, cfg, np_dtype), abstract_params))

    buffers = {name: np.empty(shape, np_dtype) for name, shape in our_shapes.items()}
    by_file: dict[str, list[str]] = {}
    for key, fn in files.items():
        by_file.setdefault(fn, []).append(key)
    for fn, keys in by_file.items():
        with _open_safetensors(fn) as f:
            for key in keys:
                name, layer = expected[key]
                tensor = _to_ours(name, f.get_tensor(key), cfg)
                if not np.all(np.isfinite(tensor.astype(np.float32))):
                    raise CheckpointError(f"{fn}: tensor {key} holds NaN or infinite values")
                if layer is None:
                    buffers[name][...] = tensor
                else:
                    buffers[name][layer] = tensor

    def place(param_path, abstract_leaf):
        name = param_path[-1] if param_path[-1] != "value" else param_path[-2]
        host = buffers.pop(str(name))
        if sharding_fn is None:
            return jax.device_put(host)
        sharding = sharding_fn(tuple(str(p) for p in param_path), abstract_leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    params = jax.tree_util.tree_map_with_path(
        lambda kp, leaf: place(tuple(getattr(k, "key", getattr(k, "name", k)) for k in kp), leaf),
        abstract_params)
    return nnx.merge(graphdef, params)


def _sliced_array(keypath, abstract_leaf, sharding, expected, files, cfg, np_dtype):
    """A global array whose every shard is read straight from its block of the HF tensors."""
    names = [str(getattr(k, "key", getattr(k, "name", k))) for k in keypath]
    name = names[-1] if names[-1] != "value" else names[-2]
    stacked = "layers" in names
    sources = {}  # layer (or None) -> (file, key)
    for key, (n, layer) in expected.items():
        if n == name:
            sources[layer] = (files[key], key)

    def read(index):
        bounds = _bounds(index, abstract_leaf.shape)
        layer_range, inner = (range(*bounds[0]), bounds[1:]) if stacked else ([None], bounds)
        blocks = []
        for layer in layer_range:
            fn, key = sources[layer]
            with _open_safetensors(fn) as f:
                block = _read_ours_slice(f, key, name, inner, cfg).astype(np_dtype)
            if not np.all(np.isfinite(block.astype(np.float32))):
                raise CheckpointError(f"{fn}: tensor {key} holds NaN or infinite values")
            blocks.append(block)
        return np.stack(blocks) if stacked else blocks[0]

    return jax.make_array_from_callback(abstract_leaf.shape, sharding, read)


def save_pretrained(model: Transformer, path: str, max_shard_bytes: int = 5 * 2**30) -> None:
    """Writes config.json and safetensors (sharded with an index above `max_shard_bytes`). A model with
    LoRA adapters is written merged (plain Hugging Face weights, loadable anywhere)."""
    if model.cfg.lora_rank:
        from dlrl_jax.models.lora import merge_lora
        model = merge_lora(model)
    cfg = model.cfg
    embed, norm, head, layer_fmt, layer_map = _layout(cfg)
    tensors: dict[str, np.ndarray] = {embed: np.asarray(model.embed[...]),
                                      norm: np.asarray(model.final_norm[...])}
    if not cfg.tie_embeddings:
        tensors[head] = _to_hf("lm_head", np.asarray(model.lm_head[...]))
    for name in layer_param_names(cfg):
        stacked = np.asarray(getattr(model.layers, name)[...])
        for i in range(cfg.n_layers):
            tensors[layer_fmt.format(i=i) + layer_map[name]] = _to_hf(name, stacked[i])
    config = to_hf_dict(cfg)
    config["torch_dtype"] = cfg.param_dtype
    shards, current, size = [], {}, 0
    for key, tensor in tensors.items():
        if current and size + tensor.nbytes > max_shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[key] = tensor
        size += tensor.nbytes
    shards.append(current)
    with replace_folder(path) as tmp:  # a kill or a full disk mid-write leaves the previous folder whole
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        if len(shards) == 1:
            _save_file(shards[0], os.path.join(tmp, SINGLE_FILE), os.path.join(path, SINGLE_FILE))
            return
        weight_map = {}
        for i, shard in enumerate(shards):
            fn = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            _save_file(shard, os.path.join(tmp, fn), os.path.join(path, fn))
            weight_map.update({key: fn for key in shard})
        with open(os.path.join(tmp, INDEX_FILE), "w") as f:
            json.dump({"metadata": {"total_size": sum(t.nbytes for t in tensors.values())},
                       "weight_map": weight_map}, f, indent=2)


def _save_file(tensors: dict, fn: str, final: str) -> None:
    """safetensors' save_file; its IO errors (a full disk) become OSError naming the target file."""
    try:
        save_file(tensors, fn, metadata={"format": "pt"})
    except SafetensorError as e:
        code = errno.ENOSPC if "StorageFull" in str(e) or "No space left" in str(e) else errno.EIO
        raise OSError(code, f"{os.strerror(code)} ({e})", final) from None
