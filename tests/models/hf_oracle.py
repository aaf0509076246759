"""Tiny random transformers models (the PyTorch oracle) written out in LLaDA / Dream / Llama layout."""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

TINY = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, rope_theta=10000.0, rms_norm_eps=1e-5,
            tie_word_embeddings=False)

_LLADA_RENAMES = [
    ("model.embed_tokens.", "model.transformer.wte."), ("model.norm.", "model.transformer.ln_f."),
    ("lm_head.", "model.transformer.ff_out."), ("model.layers.", "model.transformer.blocks."),
    ("self_attn.o_proj.", "attn_out."), ("self_attn.", ""), ("input_layernorm.", "attn_norm."),
    ("post_attention_layernorm.", "ff_norm."), ("mlp.gate_proj.", "ff_proj."),
    ("mlp.up_proj.", "up_proj."), ("mlp.down_proj.", "ff_out."),
]


def torch_model(family: str, seed: int = 0, **overrides):
    """A random Llama (for llada/llama layouts) or Qwen2 (for dream/qwen2) in float32, eval mode."""
    torch.manual_seed(seed)
    kwargs = dict(TINY, **overrides)
    if family in ("llada", "llama"):
        model = LlamaForCausalLM(LlamaConfig(**kwargs, attention_bias=False))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**kwargs))
    with torch.no_grad():  # norms start at 1; randomise them so the test sees their weights
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
            if name.endswith("bias"):
                p.normal_(0.0, 0.05)
    return model.eval()


def llada_key(key: str) -> str:
    for old, new in _LLADA_RENAMES:
        key = key.replace(old, new)
    return key


def write_checkpoint(model, family: str, path: str, mask_token_id: int = 96) -> str:
    """Writes `model` as a HF folder of `family`'s layout; returns the path."""
    os.makedirs(path, exist_ok=True)
    c = model.config
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if family == "llada":
        state = {llada_key(k): v for k, v in state.items()}
        config = dict(model_type="llada", d_model=c.hidden_size, n_heads=c.num_attention_heads,
                      n_kv_heads=c.num_key_value_heads, n_layers=c.num_hidden_layers,
                      mlp_hidden_size=c.intermediate_size, vocab_size=c.vocab_size,
                      embedding_size=c.vocab_size, rope_theta=c.rope_parameters["rope_theta"]
                      if getattr(c, "rope_parameters", None) else c.rope_theta,
                      rms_norm_eps=c.rms_norm_eps, weight_tying=False, include_qkv_bias=False,
                      mask_token_id=mask_token_id)
    else:
        config = json.loads(c.to_json_string())
        config["model_type"] = {"dream": "Dream"}.get(family, family)
        config["mask_token_id"] = mask_token_id
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    save_file(state, os.path.join(path, "model.safetensors"))
    return path


def torch_logits(model, ids: np.ndarray, family: str, real: np.ndarray | None = None) -> np.ndarray:
    """Bidirectional logits from the torch model: a 4-D additive mask that is zero on real keys."""
    ids_t = torch.from_numpy(np.asarray(ids, np.int64))
    B, L = ids_t.shape
    real = np.ones((B, L), bool) if real is None else real
    bias = torch.zeros(B, 1, L, L)
    bias[torch.from_numpy(~real)[:, None, None, :].expand(B, 1, L, L)] = torch.finfo(torch.float32).min
    position_ids = torch.from_numpy(np.maximum(np.cumsum(real, axis=1) - 1, 0))
    with torch.no_grad():
        logits = model(input_ids=ids_t, attention_mask=bias, position_ids=position_ids).logits.numpy()
    if family == "dream":  # Dream's reference generation shifts logits right by one position
        logits = np.concatenate([logits[:, :1], logits[:, :-1]], axis=1)
    return logits
