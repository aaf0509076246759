"""LLaDA (GSAI-ML/LLaDA-8B-*; ML-GSAI/LLaDA): an OLMo-style config.json and `model.transformer.*`
weights, whose output, gate and down projections are named attn_out, ff_proj and ff_out. The tiny
preset of the tests and the demo is this family too."""

from __future__ import annotations

from dlrl_jax.models.errors import ConfigError
from dlrl_jax.models.families.base import Family, WeightLayout, require, special_ids_from_hf, special_ids_to_hf

WEIGHTS = WeightLayout(
    embed="model.transformer.wte.weight", final_norm="model.transformer.ln_f.weight",
    lm_head="model.transformer.ff_out.weight", layer_prefix="model.transformer.blocks.{i}.",
    layer={"attn_norm": "attn_norm.weight", "wq": "q_proj.weight", "wk": "k_proj.weight", "wv": "v_proj.weight",
           "bq": "q_proj.bias", "bk": "k_proj.bias", "bv": "v_proj.bias", "wo": "attn_out.weight",
           "mlp_norm": "ff_norm.weight", "w_gate": "ff_proj.weight", "w_up": "up_proj.weight",
           "w_down": "ff_out.weight"})


def config_from_hf(raw: dict, source: str) -> dict:
    if raw.get("include_bias"):
        raise ConfigError(f"{source}: include_bias=true (biases on every linear layer) is not supported")
    n_heads = int(require(raw, "n_heads", source))
    return dict(
        vocab_size=int(raw.get("embedding_size") or require(raw, "vocab_size", source)),  # the padded table
        d_model=int(require(raw, "d_model", source)),
        n_layers=int(require(raw, "n_layers", source)),
        n_heads=n_heads,
        n_kv_heads=int(raw.get("n_kv_heads") or n_heads),
        mlp_hidden=int(require(raw, "mlp_hidden_size", source)),
        rope_theta=float(raw.get("rope_theta", 10000.0)),
        qkv_bias=bool(raw.get("include_qkv_bias", False)),
        tie_embeddings=bool(raw.get("weight_tying", False)),
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-5)),
        **special_ids_from_hf(raw),
    )


def config_to_hf(cfg) -> dict:
    return dict(
        model_type="llada", architectures=["LLaDAModelLM"], d_model=cfg.d_model, n_heads=cfg.n_heads,
        n_kv_heads=cfg.n_kv_heads, n_layers=cfg.n_layers, mlp_hidden_size=cfg.mlp_hidden,
        vocab_size=cfg.vocab_size, embedding_size=cfg.vocab_size, rope_theta=cfg.rope_theta,
        rms_norm_eps=cfg.rms_norm_eps, weight_tying=cfg.tie_embeddings, include_bias=False,
        include_qkv_bias=cfg.qkv_bias, layer_norm_type="rms", activation_type="silu",
        block_type="llama", rope=True, **special_ids_to_hf(cfg))


FAMILY = Family(name="llada", model_types=("llada",), config_from_hf=config_from_hf, config_to_hf=config_to_hf,
                weights=WEIGHTS, mask_tokens=("<|mdm_mask|>",), sampler="blocks")
