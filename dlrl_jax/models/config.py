"""Model configuration: one frozen record for every supported family, HF config.json in and out.

What differs between the families (llada, dream, llama, qwen2: their config.json field names, weight
names, layer variant, tokenizer and sampler conventions) is each family's record in
dlrl_jax/models/families/; this module reads it and knows no family by name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

from dlrl_jax.models import families
from dlrl_jax.models.errors import ConfigError

REMAT_POLICIES = ("none", "full", "dots")
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


# How the frozen base of a LoRA run is stored (dlrl_jax/models/quantize.py).
QUANTIZE_MODES = ("none", "nf4", "int4", "int8")

# LoRA target names (the papers': q,k,v,o,gate,up,down) -> the stacked weight they adapt.
LORA_TARGETS = {"q": "wq", "k": "wk", "v": "wv", "o": "wo", "gate": "w_gate", "up": "w_up", "down": "w_down"}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shapes and numerics of a bidirectional masked-diffusion transformer.

    `vocab_size` is the size of the embedding table and of the logits (LLaDA's `embedding_size`).
    `param_dtype` is the storage dtype of the weights, `dtype` the matmul dtype; logits, softmax and
    norms' statistics are always float32.
    """

    family: str
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    mlp_hidden: int
    head_dim: int = 0  # 0 means d_model // n_heads
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    qkv_bias: bool = False
    tie_embeddings: bool = False
    mask_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    param_dtype: str = "float32"
    dtype: str = "float32"
    remat: str = "none"
    # the final layer on the positions whose states are asked for only (`hidden(..., last=n)`): true |
    # false | auto (when the stacked layer weights take at most PRUNE_AUTO_BYTES: the split of the layer
    # stack copies them once per forward, which costs more than it saves for large models)
    prune_last_layer: bool | str = "auto"
    # LoRA adapters (0: none): W x + (alpha / rank) B A x on the target projections
    lora_rank: int = 0
    lora_alpha: float = 0.0
    lora_targets: tuple[str, ...] = ()
    lora_dropout: float = 0.0  # on each adapted projection's input, in forwards given a dropout key
    # QLoRA: the frozen projection weights stored quantized (see dlrl_jax/models/quantize.py)
    quantize_base: str = "none"

    def __post_init__(self):
        families.get(self.family)  # an unknown family is an error naming the registered ones
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "mlp_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"model config field {name!r} must be a positive integer, got {value!r}")
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(
                f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads}) for GQA")
        if not self.head_dim and self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model ({self.d_model}) is not divisible by n_heads ({self.n_heads}); set head_dim")
        if self.resolved_head_dim % 2:
            raise ConfigError(f"head_dim must be even for RoPE, got {self.resolved_head_dim}")
        for name in ("param_dtype", "dtype"):
            if getattr(self, name) not in _DTYPES:
                raise ConfigError(f"model config field {name!r} must be one of {sorted(_DTYPES)}")
        if self.remat not in REMAT_POLICIES:
            raise ConfigError(f"model config field 'remat' must be one of {REMAT_POLICIES}, got {self.remat!r}")
        if self.prune_last_layer not in (True, False, "auto"):
            raise ConfigError(f"model config field 'prune_last_layer' must be true, false or auto, got "
                              f"{self.prune_last_layer!r}")
        if self.lora_rank < 0 or (self.lora_rank and not self.lora_targets):
            raise ConfigError(f"lora_rank must be >= 0 with at least one target, got {self.lora_rank}, "
                              f"{self.lora_targets}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.quantize_base not in QUANTIZE_MODES:
            raise ConfigError(f"quantize_base must be one of {QUANTIZE_MODES}, got {self.quantize_base!r}")
        unknown = [t for t in self.lora_targets if t not in LORA_TARGETS]
        if unknown:
            raise ConfigError(f"unknown LoRA target(s) {unknown}; use some of {sorted(LORA_TARGETS)}")

    @property
    def lora_scale(self) -> float:
        return self.lora_alpha / self.lora_rank if self.lora_rank else 0.0
    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim or self.d_model // self.n_heads

    @property
    def shift_logits(self) -> bool:
        """Dream predicts token j at position j-1 (an AR heritage); we shift so position j predicts j."""
        return families.get(self.family).shift_logits

    @property
    def jnp_param_dtype(self):
        return _DTYPES[self.param_dtype]

    @property
    def jnp_dtype(self):
        return _DTYPES[self.dtype]

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def num_params(self) -> int:
        """Parameter count from the shapes alone (no arrays)."""
        d, hd = self.d_model, self.resolved_head_dim
        q, kv = self.n_heads * hd, self.n_kv_heads * hd
        attn = d * q + 2 * d * kv + q * d + (q + 2 * kv if self.qkv_bias else 0)
        mlp = 3 * d * self.mlp_hidden
        per_layer = attn + mlp + 2 * d
        embed = self.vocab_size * d * (1 if self.tie_embeddings else 2)
        return self.n_layers * per_layer + embed + d


def from_hf_dict(raw: dict[str, Any], source: str = "config.json") -> ModelConfig:
    """Builds a ModelConfig from a Hugging Face config.json dict of any registered family."""
    family = families.family_of(raw, source)
    return ModelConfig(family=family.name, **family.config_from_hf(raw, source))


def to_hf_dict(cfg: ModelConfig) -> dict[str, Any]:
    """The config.json for `cfg` in its family's own layout (what `from_hf_dict` reads back)."""
    return families.get(cfg.family).config_to_hf(cfg)


# Published shapes. LLaDA-8B: GSAI-ML/LLaDA-8B-Instruct config.json; Dream-7B: Dream-org/Dream-v0-Instruct-7B
# (the Qwen2.5-7B shape). `tiny` is the CPU model of the embedded demo and the tests.
PRESETS: dict[str, ModelConfig] = {
    "llada-8b": ModelConfig(
        family="llada", vocab_size=126464, d_model=4096, n_layers=32, n_heads=32, n_kv_heads=32,
        mlp_hidden=12288, rope_theta=500000.0, rms_norm_eps=1e-5, mask_token_id=126336,
        eos_token_id=126081, pad_token_id=126081, param_dtype="bfloat16", dtype="bfloat16"),
    "dream-7b": ModelConfig(
        family="dream", vocab_size=152064, d_model=3584, n_layers=28, n_heads=28, n_kv_heads=4,
        mlp_hidden=18944, rope_theta=1000000.0, rms_norm_eps=1e-6, qkv_bias=True, mask_token_id=151666,
        eos_token_id=151643, pad_token_id=151643, param_dtype="bfloat16", dtype="bfloat16"),
    "tiny": ModelConfig(
        family="llada", vocab_size=128, d_model=128, n_layers=4, n_heads=4, n_kv_heads=4,
        mlp_hidden=384, rope_theta=10000.0, mask_token_id=1, eos_token_id=2, pad_token_id=0),
}


def preset(name: str, **overrides) -> ModelConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; available: {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides)
