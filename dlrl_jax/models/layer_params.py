"""The weights of one transformer block: names, shapes, logical axes and which a quantized base stores as
codes. Both the transformer (which builds and runs them) and `quantize` (which converts a model's base)
read these tables, so they live apart from either."""

from __future__ import annotations

from dlrl_jax.models.config import ModelConfig

# name -> (shape builder, logical axes); the shape builder takes (cfg, D, H, K, Hd, F).
LAYER_PARAMS = {
    "attn_norm": (lambda c, D, H, K, Hd, F: (D,), ("norm",)),
    "wq": (lambda c, D, H, K, Hd, F: (D, H, Hd), ("embed", "q_heads", "head_dim")),
    "wk": (lambda c, D, H, K, Hd, F: (D, K, Hd), ("embed", "kv_heads", "head_dim")),
    "wv": (lambda c, D, H, K, Hd, F: (D, K, Hd), ("embed", "kv_heads", "head_dim")),
    "wo": (lambda c, D, H, K, Hd, F: (H, Hd, D), ("q_heads", "head_dim", "embed")),
    "mlp_norm": (lambda c, D, H, K, Hd, F: (D,), ("norm",)),
    "w_gate": (lambda c, D, H, K, Hd, F: (D, F), ("embed", "mlp")),
    "w_up": (lambda c, D, H, K, Hd, F: (D, F), ("embed", "mlp")),
    "w_down": (lambda c, D, H, K, Hd, F: (F, D), ("mlp", "embed")),
}
BIAS_PARAMS = {
    "bq": (lambda c, D, H, K, Hd, F: (H, Hd), ("q_heads", "head_dim")),
    "bk": (lambda c, D, H, K, Hd, F: (K, Hd), ("kv_heads", "head_dim")),
    "bv": (lambda c, D, H, K, Hd, F: (K, Hd), ("kv_heads", "head_dim")),
}
NORMS = ("attn_norm", "mlp_norm")
# How many leading (input) axes each projection contracts; the rest of its shape is the output.
INPUT_AXES = {"wq": 1, "wk": 1, "wv": 1, "wo": 2, "w_gate": 1, "w_up": 1, "w_down": 1}


def quantized_weights(cfg: ModelConfig) -> dict[str, int]:
    """The projections a quantized base (cfg.quantize_base) stores as codes -> their input axes count."""
    return dict(INPUT_AXES) if cfg.quantize_base != "none" else {}
