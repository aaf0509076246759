"""Llama (a Llama config.json run bidirectionally: tiny test models, AR-to-diffusion ports) and the
transformers layout that Qwen2 and Dream share with it: `model.layers.{i}.self_attn.*` / `mlp.*`
weights and config.json's hidden_size / num_attention_heads / ... names."""

from __future__ import annotations

from dlrl_jax.models.errors import ConfigError
from dlrl_jax.models.families.base import Family, WeightLayout, require, special_ids_from_hf, special_ids_to_hf

WEIGHTS = WeightLayout(
    embed="model.embed_tokens.weight", final_norm="model.norm.weight", lm_head="lm_head.weight",
    layer_prefix="model.layers.{i}.",
    layer={"attn_norm": "input_layernorm.weight", "wq": "self_attn.q_proj.weight",
           "wk": "self_attn.k_proj.weight", "wv": "self_attn.v_proj.weight", "bq": "self_attn.q_proj.bias",
           "bk": "self_attn.k_proj.bias", "bv": "self_attn.v_proj.bias", "wo": "self_attn.o_proj.weight",
           "mlp_norm": "post_attention_layernorm.weight", "w_gate": "mlp.gate_proj.weight",
           "w_up": "mlp.up_proj.weight", "w_down": "mlp.down_proj.weight"})


def transformers_config_from_hf(raw: dict, source: str, qkv_bias: bool) -> dict:
    """The fields of a transformers-style config.json; `qkv_bias`: the family's default when the file
    has no attention_bias (Qwen2 and Dream always have q/k/v biases, Llama has none)."""
    n_heads = int(require(raw, "num_attention_heads", source))
    hidden = int(require(raw, "hidden_size", source))
    head_dim = int(raw.get("head_dim") or 0)
    return dict(
        vocab_size=int(require(raw, "vocab_size", source)),
        d_model=hidden,
        n_layers=int(require(raw, "num_hidden_layers", source)),
        n_heads=n_heads,
        n_kv_heads=int(raw.get("num_key_value_heads") or n_heads),
        mlp_hidden=int(require(raw, "intermediate_size", source)),
        head_dim=0 if head_dim == hidden // n_heads else head_dim,
        rope_theta=float(_rope_theta(raw)),
        qkv_bias=bool(raw.get("attention_bias", qkv_bias)),
        tie_embeddings=bool(raw.get("tie_word_embeddings", False)),
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        **special_ids_from_hf(raw),
    )


def _rope_theta(raw: dict) -> float:
    scaling = raw.get("rope_scaling") or {}
    if scaling.get("rope_type", scaling.get("type", "default")) not in ("default", None):
        raise ConfigError("config.json: rope_scaling other than the default is not supported")
    params = raw.get("rope_parameters") or {}  # transformers >= 5 keeps rope_theta there
    return raw.get("rope_theta", params.get("rope_theta", 10000.0))


def transformers_config_to_hf(cfg, model_type: str, architecture: str) -> dict:
    return dict(
        model_type=model_type, architectures=[architecture], hidden_size=cfg.d_model,
        num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_kv_heads,
        num_hidden_layers=cfg.n_layers, intermediate_size=cfg.mlp_hidden, vocab_size=cfg.vocab_size,
        head_dim=cfg.resolved_head_dim, rope_theta=cfg.rope_theta, rms_norm_eps=cfg.rms_norm_eps,
        attention_bias=cfg.qkv_bias, tie_word_embeddings=cfg.tie_embeddings, hidden_act="silu",
        **special_ids_to_hf(cfg))


FAMILY = Family(
    name="llama", model_types=("llama",),
    config_from_hf=lambda raw, source: transformers_config_from_hf(raw, source, qkv_bias=False),
    config_to_hf=lambda cfg: transformers_config_to_hf(cfg, "llama", "LlamaForCausalLM"),
    weights=WEIGHTS)
