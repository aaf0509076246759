"""LoRA adapters in PEFT's format (adapter_config.json + adapter_model.safetensors), in and out, and
PEFT's matching of target-module names on each architecture's real module names.

PEFT names an adapter weight after the module it sits on, `base_model.model.<module path>.lora_A.weight`
[r, in] and `...lora_B.weight` [out, r], and adds (lora_alpha / r) B A x to the module's output
(lora_alpha / sqrt(r) with use_rslora). The module paths are the Hugging Face model's, its weight names
without `.weight` (its family's `weights`, dlrl_jax/models/families/): LLaDA
`model.transformer.blocks.3.q_proj`, Dream / Qwen2 / Llama `model.layers.3.self_attn.q_proj`. Here the same adapter is the stacked `lora_a_<w>` [layers, *in, r] /
`lora_b_<w>` [layers, r, *out] factors of dlrl_jax.models.lora.

PEFT adapts a module when its path equals a target name or ends with "." + the name (a single string
is a regex that must match the whole path); a name that matches nothing is ignored, and only when no
name matches anything is it an error. So the usual list q_proj,k_proj,v_proj,o_proj,up_proj,down_proj,
gate_proj adapts all seven projections of a Qwen2/Llama-named model (Dream), but only q, k, v and up of
LLaDA, whose output, gate and down projections are named attn_out, ff_proj and ff_out.
"""

from __future__ import annotations

import json
import math
import os
import re

import jax.numpy as jnp
import ml_dtypes
import numpy as np
from flax import nnx
from safetensors import safe_open
from safetensors.numpy import save_file

from dlrl_jax.folders.errors import CheckpointError
from dlrl_jax.folders.json_file import read_json_object
from dlrl_jax.models.config import LORA_TARGETS, ModelConfig
from dlrl_jax.models.hf import weight_keys
from dlrl_jax.models.lora import LoRASettings, add_lora
from dlrl_jax.models.transformer import Transformer, lora_specs

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_PREFIX = "base_model.model."
_WEIGHT_OF = {w: t for t, w in LORA_TARGETS.items()}  # "wq" -> "q"
_NP_DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}
# adapter_config fields whose non-default values change the function in ways not modelled here
_UNSUPPORTED = {"use_dora": False, "fan_in_fan_out": False, "lora_bias": False, "use_qalora": False, "bias": "none"}
_MUST_BE_EMPTY = ("rank_pattern", "alpha_pattern", "modules_to_save", "layers_to_transform", "target_parameters",
                  "exclude_modules", "layer_replication", "alora_invocation_tokens", "trainable_token_indices")


class AdapterError(CheckpointError):
    """An adapter folder or target list is unusable; the message names the file, key or field."""


def projection_modules(cfg: ModelConfig) -> dict[str, tuple[str, int]]:
    """PEFT module path -> (our projection weight, layer) for the seven projections of every layer."""
    return {key.removesuffix(".weight"): (name, layer) for key, (name, layer) in weight_keys(cfg).items()
            if name in _WEIGHT_OF and key.endswith(".weight")}


def peft_module_names(cfg: ModelConfig) -> dict[str, str]:
    """Our target name ("q", "o", "gate", ...) -> the module's own name in `cfg`'s architecture
    (LLaDA: q_proj, k_proj, v_proj, attn_out, ff_proj, up_proj, ff_out; Qwen2/Llama: q_proj, ...)."""
    return {_WEIGHT_OF[name]: path.rsplit(".", 1)[1] for path, (name, layer) in projection_modules(cfg).items()
            if layer == 0}


def _module_paths(cfg: ModelConfig) -> set[str]:
    """Every module path of the Hugging Face model that holds weights, containers included."""
    paths = set()
    for key in weight_keys(cfg):
        parts = key.split(".")[:-1]  # drop "weight" / "bias"
        paths.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return paths


def _matches(target_modules, path: str) -> bool:
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, path) is not None
    return path in target_modules or any(path.endswith("." + t) for t in target_modules)


def resolve_targets(cfg: ModelConfig, target_modules) -> tuple[str, ...]:
    """Our target names ("q", "k", ...) of the projections PEFT adapts with `target_modules` (a list of
    module names or a regex string) on `cfg`'s architecture, in LORA_TARGETS order."""
    projections = projection_modules(cfg)
    matched = {p for p in _module_paths(cfg) if _matches(target_modules, p)}
    others = sorted(matched - set(projections))
    if others:
        raise AdapterError(f"target modules {target_modules!r} also match {others[:4]} of this {cfg.family} model; "
                           "LoRA here adapts only the attention and MLP projections "
                           f"({', '.join(peft_module_names(cfg).values())})")
    weights = {projections[p][0] for p in matched}
    if not weights:
        raise AdapterError(f"target modules {target_modules!r} match no module of this {cfg.family} model, as PEFT "
                           f"would find; its projections are named {', '.join(peft_module_names(cfg).values())}")
    for w in sorted(weights):
        layers = sorted(layer for p, (name, layer) in projections.items() if name == w and p in matched)
        if len(layers) != cfg.n_layers:
            raise AdapterError(f"target modules {target_modules!r} adapt {_WEIGHT_OF[w]} in layers {layers} only; "
                               f"an adapter here covers every layer ({cfg.n_layers}) or none")
    return tuple(t for t, w in LORA_TARGETS.items() if w in weights)


def target_modules_for(cfg: ModelConfig, targets) -> list[str] | str:
    """The adapter_config target_modules that make PEFT adapt exactly `targets` (our names): the module
    names when they match nothing else (LLaDA's ff_out also names its output head: then a regex)."""
    names = peft_module_names(cfg)
    listed = [names[t] for t in targets]
    try:
        if resolve_targets(cfg, listed) == tuple(t for t in LORA_TARGETS if t in targets):
            return listed
    except AdapterError:
        pass
    paths = sorted(p for p, (name, layer) in projection_modules(cfg).items()
                   if layer == 0 and _WEIGHT_OF[name] in targets)
    prefix = next(iter(paths)).split(".0.", 1)[0]
    suffixes = sorted(p.split(".0.", 1)[1] for p in paths)
    return re.escape(prefix) + r"\.\d+\.(?:" + "|".join(re.escape(s) for s in suffixes) + ")"


def _read_json(path: str) -> dict:
    return read_json_object(path, AdapterError, f"a PEFT adapter folder holds {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}")


def read_adapter(path: str, cfg: ModelConfig) -> tuple[LoRASettings, dict[str, np.ndarray]]:
    """(settings, factors) of the PEFT LoRA adapter in folder `path` for a base model of `cfg`: factors
    are `lora_a_<w>` [layers, *in, r] and `lora_b_<w>` [layers, r, *out] float32 arrays. Every key, shape
    and setting is checked; all problems of the weights file are reported at once."""
    if not os.path.isdir(path):
        raise AdapterError(f"adapter folder {path!r} does not exist")
    config_path = os.path.join(path, ADAPTER_CONFIG)
    config = _read_json(config_path)
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterError(f"{config_path}: peft_type {config.get('peft_type')!r} is not supported; only LORA is")
    for key, default in _UNSUPPORTED.items():
        if config.get(key, default) not in (default, None):
            raise AdapterError(f"{config_path}: {key}={config[key]!r} is not supported (only {default!r})")
    for key in _MUST_BE_EMPTY:
        if config.get(key):
            raise AdapterError(f"{config_path}: {key}={config[key]!r} is not supported; it must be empty")
    rank, alpha = config.get("r"), config.get("lora_alpha")
    if not isinstance(rank, int) or rank <= 0 or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise AdapterError(f"{config_path}: r and lora_alpha must be positive numbers, got r={rank!r}, "
                           f"lora_alpha={alpha!r}")
    dropout = float(config.get("lora_dropout") or 0.0)
    if config.get("target_modules") is None:
        raise AdapterError(f"{config_path}: target_modules is missing")
    targets = resolve_targets(cfg, config["target_modules"])
    # use_rslora scales by alpha / sqrt(r); the same function here is alpha' / r with alpha' = alpha sqrt(r)
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    settings = LoRASettings(rank=rank, alpha=scale * rank, targets=targets, dropout=dropout)

    weights_path = os.path.join(path, ADAPTER_WEIGHTS)
    if not os.path.isfile(weights_path):
        raise AdapterError(f"{weights_path} is missing (adapter_model.bin is not read: save the adapter with "
                           "safe_serialization=True)")
    modules = projection_modules(cfg)
    lora_cfg = cfg.replace(lora_rank=rank, lora_alpha=float(alpha), lora_targets=targets)
    specs = lora_specs(lora_cfg)
    factors = {name: np.zeros((cfg.n_layers, *shape), np.float32) for name, (shape, _) in specs.items()}
    pattern = re.compile(re.escape(_PREFIX) + r"(.+)\.lora_([AB])\.weight")
    seen, problems = set(), []
    with safe_open(weights_path, "np") as f:
        for key in f.keys():
            m = pattern.fullmatch(key)
            module = modules.get(m.group(1)) if m else None
            if module is None or _WEIGHT_OF[module[0]] not in targets:
                problems.append(f"unexpected key {key}")
                continue
            (weight, layer), which = module, m.group(2)
            name = f"lora_{which.lower()}_{weight}"
            shape = specs[name][0]
            n_in = len(shape) - 1 if which == "A" else 1
            want = (rank, math.prod(shape[:n_in])) if which == "A" else (math.prod(shape[1:]), rank)
            tensor = f.get_tensor(key)
            if tuple(tensor.shape) != want:
                problems.append(f"{key}: shape {tuple(tensor.shape)}, expected {want}")
                continue
            # PEFT's [r, in] / [out, r] -> ours [*in, r] / [r, *out]
            factors[name][layer] = tensor.astype(np.float32).T.reshape(shape)
            seen.add((name, layer))
    missing = [f"{_PREFIX}{p}.lora_{n.split('_')[1].upper()}.weight" for p, (w, layer) in modules.items()
               for n in (f"lora_a_{w}", f"lora_b_{w}") if n in specs and (n, layer) not in seen]
    problems += [f"missing key {k}" for k in missing]
    if problems:
        more = f" (and {len(problems) - 6} more)" if len(problems) > 6 else ""
        raise AdapterError(f"{weights_path} does not fit this {cfg.family} model and {ADAPTER_CONFIG}: "
                           + "; ".join(problems[:6]) + more)
    bad = [n for n, x in factors.items() if not np.all(np.isfinite(x))]
    if bad:
        raise AdapterError(f"{weights_path}: factors {bad} hold NaN or infinite values")
    return settings, factors


def write_adapter(path: str, cfg: ModelConfig, settings: LoRASettings, factors: dict, dtype: str | None = None,
                  base_model: str | None = None) -> None:
    """Writes `factors` (ours, [layers, *in, r] / [layers, r, *out]) as a PEFT LoRA adapter folder
    for a base model of `cfg`, in `dtype` (default: the factors' own)."""
    tensors = {}
    paths = {(name, layer): p for p, (name, layer) in projection_modules(cfg).items()}
    for target in settings.targets:
        w = LORA_TARGETS[target]
        a, b = np.asarray(factors[f"lora_a_{w}"]), np.asarray(factors[f"lora_b_{w}"])
        out_dtype = _NP_DTYPES[dtype] if dtype else a.dtype
        for layer in range(cfg.n_layers):
            module = _PREFIX + paths[(w, layer)]
            tensors[module + ".lora_A.weight"] = np.ascontiguousarray(
                a[layer].reshape(-1, settings.rank).T.astype(out_dtype))
            tensors[module + ".lora_B.weight"] = np.ascontiguousarray(
                b[layer].reshape(settings.rank, -1).T.astype(out_dtype))
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model,
        "r": settings.rank, "lora_alpha": float(settings.alpha), "lora_dropout": float(settings.dropout),
        "target_modules": target_modules_for(cfg, settings.targets), "bias": "none", "use_rslora": False,
        "use_dora": False, "fan_in_fan_out": False, "init_lora_weights": True, "inference_mode": True,
        "modules_to_save": None, "layers_to_transform": None, "rank_pattern": {}, "alpha_pattern": {},
    }
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, ADAPTER_CONFIG), "w") as f:
        json.dump(config, f, indent=2)
    save_file(tensors, os.path.join(path, ADAPTER_WEIGHTS), metadata={"format": "pt"})


def load_adapter(model: Transformer, path: str) -> Transformer:
    """`model` (a base model without adapters) with the PEFT LoRA adapter of folder `path` on it, its
    factors stored in the dtype fresh adapters get; the base weights are shared, not copied."""
    if model.cfg.lora_rank:
        raise AdapterError(f"the model already has LoRA adapters; load {path} onto the base model")
    settings, factors = read_adapter(path, model.cfg)
    adapted = add_lora(model, settings)
    graphdef, state = nnx.split(adapted)
    values = nnx.to_pure_dict(state)
    values["layers"].update({name: jnp.asarray(x, values["layers"][name].dtype) for name, x in factors.items()})
    nnx.replace_by_pure_dict(state, values)
    return nnx.merge(graphdef, state)


def save_adapter(model: Transformer, path: str, dtype: str | None = None, base_model: str | None = None) -> None:
    """Writes the LoRA adapter of `model` (its factors must be on this host) as a PEFT adapter folder."""
    cfg = model.cfg
    if not cfg.lora_rank:
        raise AdapterError("the model has no LoRA adapter to save; train with model.lora_rank > 0")
    settings = LoRASettings(rank=cfg.lora_rank, alpha=cfg.lora_alpha, targets=cfg.lora_targets,
                            dropout=cfg.lora_dropout)
    factors = {name: np.asarray(getattr(model.layers, name)[...]) for name in lora_specs(cfg)}
    write_adapter(path, cfg, settings, factors, dtype=dtype, base_model=base_model)


def config_targets(cfg: ModelConfig, text: str) -> tuple[str, ...]:
    """`model.lora_targets` resolved on `cfg`'s architecture: our names (q,k,v,o,gate,up,down) as
    given, or PEFT module names (q_proj,k_proj,...) matched as PEFT matches them."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    if all(n in LORA_TARGETS for n in names):
        return tuple(names)
    try:
        return resolve_targets(cfg, names)
    except AdapterError as e:
        raise AdapterError(f"model.lora_targets: {e}") from None
