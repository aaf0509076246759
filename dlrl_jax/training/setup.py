"""Builds what a run needs from its config: model, tokenizer, encoded batches."""

from __future__ import annotations

import os
import tempfile

import numpy as np

from dlrl_jax import models
from dlrl_jax.config import Config, ConfigError
from dlrl_jax.models.lora import LoRASettings, add_lora
from dlrl_jax.models.quantize import quantize_base
from dlrl_jax.models.tokenizer import CHAR_VOCAB_SIZE, Tokenizer, write_char_tokenizer


def build_model_and_tokenizer(cfg: Config, mesh=None):
    """(model, tokenizer). A preset model uses the embedded character tokenizer unless one is given.
    With a mesh, a checkpoint is read straight into its shards (no whole copy on any host)."""
    m = cfg.model
    if m.path:
        model = models.from_pretrained(m.path, dtype=m.dtype, compute_dtype=m.compute_dtype, remat=m.remat, mesh=mesh)
        tok_dir = m.tokenizer or m.path
    else:
        mcfg = models.preset(m.preset, param_dtype=m.dtype, dtype=m.compute_dtype or m.dtype, remat=m.remat)
        model = models.init_model(mcfg, seed=cfg.seed)
        tok_dir = m.tokenizer
    if tok_dir is None:
        if model.cfg.vocab_size < CHAR_VOCAB_SIZE:
            raise ConfigError(f"model vocab_size {model.cfg.vocab_size} is smaller than the embedded "
                              f"tokenizer's {CHAR_VOCAB_SIZE}; set model.tokenizer")
        tok_dir = write_char_tokenizer(os.path.join(tempfile.mkdtemp(prefix="dlrl_tok_"), "tokenizer"))
    tokenizer = Tokenizer.from_pretrained(tok_dir, model.cfg)
    if model.cfg.mask_token_id is None:
        model.cfg = model.cfg.replace(mask_token_id=tokenizer.mask_id)
    if m.quantize_base != "none":  # QLoRA: the frozen base is stored quantized before the adapters join it
        model = quantize_base(model, m.quantize_base)
    if m.lora_rank:
        targets = tuple(x.strip() for x in m.lora_targets.split(",") if x.strip())
        model = add_lora(model, LoRASettings(rank=m.lora_rank, alpha=m.lora_alpha, targets=targets,
                                             dropout=m.lora_dropout), seed=cfg.seed)
    return model, tokenizer


def build_mesh(cfg: Config):
    """The configured (data, fsdp, tensor) mesh over every device; a misfit is a config error."""
    from dlrl_jax import parallel

    try:
        mesh = parallel.make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor)
    except parallel.MeshError as e:
        raise ConfigError(f"mesh: {e}") from None
    a = cfg.algorithm
    parts = mesh.shape["data"] * mesh.shape["fsdp"]
    for name, rows in (("algorithm.prompts_per_batch x group_size", a.prompts_per_batch * a.group_size),
                       ("sft.batch_size", cfg.sft.batch_size)):
        if rows % parts:
            raise ConfigError(f"{name} = {rows} rows do not split over mesh.data x mesh.fsdp = {parts} devices; "
                              f"use a multiple of {parts}")
    return mesh


def encode_prompts(tokenizer: Tokenizer, texts: list[str], style: str, length: int):
    """Left-padded prompt ids [N, length] and mask; chat style applies the chat template."""
    return tokenizer.encode_batch(texts, chat=(style == "chat"), length=length)


def encode_targets(tokenizer: Tokenizer, texts: list[str], gen_length: int):
    """Completion ids [N, gen_length]: the target then EOS to the end (the model learns to stop)."""
    ids = np.full((len(texts), gen_length), tokenizer.eos_id, np.int32)
    for i, text in enumerate(texts):
        row = tokenizer.encode(text)
        if len(row) > gen_length:
            raise ConfigError(f"SFT target {i} has {len(row)} tokens, more than sampler.gen_length {gen_length}")
        ids[i, :len(row)] = row
    return ids


def prompt_length(tokenizer: Tokenizer, texts: list[str], style: str, configured: int) -> int:
    longest = max(len(tokenizer.encode(tokenizer.chat_prompt(t) if style == "chat" else t)) for t in texts)
    if configured and longest > configured:
        raise ConfigError(f"a prompt has {longest} tokens, more than task.max_prompt_length {configured}; "
                          "raise it (prompts are never cut)")
    return configured or longest
