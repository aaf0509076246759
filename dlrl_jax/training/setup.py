"""Builds what a run needs from its config's sections: model, tokenizer, mesh, encoded batches."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from dlrl_jax import checkpoints, models, rollout
from dlrl_jax.checkpoints import peft
from dlrl_jax.config_error import ConfigError
from dlrl_jax.models.lora import LoRASettings, add_lora
from dlrl_jax.models.quantize import quantize_base
from dlrl_jax.models.tokenizer import CHAR_VOCAB_SIZE, Tokenizer, write_char_tokenizer


def build_model_and_tokenizer(m, seed: int = 0, mesh=None):
    """(model, tokenizer) of the config's `model:` section `m`; `seed` draws a preset's weights and new
    LoRA factors. A preset model uses the embedded character tokenizer unless one is given. With a
    mesh, a checkpoint is read straight into its shards (no whole copy on any host). A PEFT adapter
    (model.adapter) goes onto the base as the trainable LoRA factors."""
    if m.path:
        model = checkpoints.from_pretrained(m.path, dtype=m.dtype, compute_dtype=m.compute_dtype, remat=m.remat, mesh=mesh,
                                            prune_last_layer=m.prune_last_layer)
        tok_dir = m.tokenizer or m.path
    else:
        mcfg = models.preset(m.preset, param_dtype=m.dtype, dtype=m.compute_dtype or m.dtype, remat=m.remat,
                              prune_last_layer=m.prune_last_layer)
        model = models.init_model(mcfg, seed=seed)
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
    if m.adapter:
        model = peft.load_adapter(model, m.adapter)
    if m.lora_rank:
        try:
            targets = peft.config_targets(model.cfg, m.lora_targets)
        except peft.AdapterError as e:
            raise ConfigError(str(e)) from None
        model = add_lora(model, LoRASettings(rank=m.lora_rank, alpha=m.lora_alpha, targets=targets,
                                             dropout=m.lora_dropout), seed=seed)
    return model, tokenizer


def sampler_settings(s, mask_id: int, family: str, temperature: float, record_greedy: bool = False,
                     cache: str = "none") -> rollout.SamplerSettings:
    """The rollout's settings from the config's `sampler:` section `s` (the one constructor: training
    rollouts, held-out evaluation and the seeded program all sample through it). `family` resolves
    schedule "auto" (Dream's sampler for a Dream model); training rollouts pass `cache`, held-out
    evaluation keeps the exact sampler."""
    settings = rollout.SamplerSettings(gen_length=s.gen_length, block_length=s.block_length or s.gen_length,
                                       steps=s.steps, temperature=temperature, remasking=s.remasking,
                                       mask_id=mask_id, record_greedy=record_greedy, cache=cache,
                                       schedule=rollout.resolve_schedule(s.schedule, family, s.block_length),
                                       top_p=s.top_p, top_k=s.top_k, alg_temp=s.alg_temp,
                                       noise_dtype=s.noise_dtype, dream_mask_candidate=s.dream_mask_candidate)
    try:
        return settings.validate()
    except rollout.SamplerSettingsError as e:
        raise ConfigError(f"sampler ({settings.schedule} schedule): {e}") from None


def build_mesh(m, rl_rows: int, sft_rows: int):
    """The (data, fsdp, tensor) mesh of the config's `mesh:` section `m` over every device; a misfit, or
    batches (the RL rollout's rows, the SFT batch) that do not split over its rows, is a config error."""
    from dlrl_jax import parallel

    try:
        mesh = parallel.make_mesh(m.data, m.fsdp, m.tensor)
    except parallel.MeshError as e:
        raise ConfigError(f"mesh: {e}") from None
    parts = mesh.shape["data"] * mesh.shape["fsdp"]
    for name, rows in (("algorithm.prompts_per_batch x group_size", rl_rows), ("sft.batch_size", sft_rows)):
        if rows % parts:
            raise ConfigError(f"{name} = {rows} rows do not split over mesh.data x mesh.fsdp = {parts} devices; "
                              f"use a multiple of {parts}")
    return mesh


def encode_prompts(tokenizer: Tokenizer, texts: list[str], style: str, length: int, truncate: str = "refuse",
                   system: str | None = None):
    """Left-padded prompt ids [N, length] and mask; chat style applies the chat template (with the
    recipe's `system` message, if any).

    truncate "left" keeps the last `length` tokens of a longer prompt, as TRL's GRPOTrainer (which the
    official EGSPO, ESPO and d1 trainers inherit) does: pad the batch to its longest prompt, then
    `prompt_ids[:, -max_prompt_length:]`. "refuse": a longer prompt is an error."""
    chat = style == "chat"
    if truncate == "refuse":
        return tokenizer.encode_batch(texts, chat=chat, length=length, system=system)
    ids, mask = tokenizer.encode_batch(texts, chat=chat, system=system)
    width = ids.shape[1]
    if width >= length:
        return ids[:, width - length:], mask[:, width - length:]
    pad = ((0, 0), (length - width, 0))  # shorter batch: left-pad to the fixed compiled width
    return np.pad(ids, pad, constant_values=tokenizer.pad_id), np.pad(mask, pad, constant_values=False)


def encode_targets(tokenizer: Tokenizer, texts: list[str], gen_length: int):
    """Completion ids [N, gen_length]: the target then EOS to the end (the model learns to stop)."""
    ids = np.full((len(texts), gen_length), tokenizer.eos_id, np.int32)
    for i, text in enumerate(texts):
        row = tokenizer.encode(text)
        if len(row) > gen_length:
            raise ConfigError(f"SFT target {i} has {len(row)} tokens, more than sampler.gen_length {gen_length}")
        ids[i, :len(row)] = row
    return ids


# Models whose config.json states no position limit (RoPE has none) get this one: attention memory grows
# with the square of the sequence, and a prompt this long is a data error far more often than a wish.
DEFAULT_MAX_POSITIONS = 32768
_PRESET_MAX_POSITIONS = {"llada-8b": 4096, "dream-7b": 131072}
# A token of any tokenizer here spans at most this many characters in practice; a prompt is first
# measured on this many characters per allowed token, so a 10 MB prompt is refused without encoding it.
PROBE_CHARS_PER_TOKEN = 8


def max_positions(model_path: str | None, preset: str | None = None) -> int:
    """The sequence length (prompt + completion) the model can hold: config.json's
    max_sequence_length (LLaDA) or max_position_embeddings (Dream, Llama, Qwen2), else a sane bound."""
    if model_path:
        try:
            with open(os.path.join(model_path, "config.json")) as f:
                raw = json.load(f)
        except (OSError, ValueError):
            raw = {}  # read and reported by the model loader
        for key in ("max_sequence_length", "max_position_embeddings"):
            if isinstance(raw.get(key), int) and raw[key] > 0:
                return raw[key]
        return DEFAULT_MAX_POSITIONS
    return _PRESET_MAX_POSITIONS.get(preset, DEFAULT_MAX_POSITIONS)


def prompt_length(tokenizer: Tokenizer, texts: list[str], style: str, configured: int, *, limit: int = 0,
                  where=lambda i: f"prompt {i}", fix: str = "shorten or drop that record", truncate: str = "refuse",
                  system: str | None = None) -> int:
    """The prompt length P in tokens: `configured`, or the longest prompt. With truncate "refuse" a
    prompt longer than `configured` is an error; with "left" it will be cut to its last `configured`
    tokens (see `encode_prompts`). A prompt longer than `limit` tokens (what the model can hold beside
    the completion) is refused by `where(i)` (its file and row) before anything is allocated; a very
    long text is measured on a prefix first, never encoded whole."""
    if truncate == "left" and configured:
        return configured

    def encode(text):
        return tokenizer.encode(tokenizer.chat_prompt(text, system) if style == "chat" else text)

    longest = 0
    for i, text in enumerate(texts):
        if limit and len(text) > PROBE_CHARS_PER_TOKEN * (limit + 1):
            head = PROBE_CHARS_PER_TOKEN * (limit + 1)
            if len(encode(text[:head])) > limit + 1:  # (+1: the cut may split one token in two)
                raise ConfigError(f"{where(i)}: the prompt ({len(text)} characters) has more than the {limit} "
                                  f"tokens the model can hold in its first {head} characters alone; {fix}")
        n = len(encode(text))
        if limit and n > limit:
            raise ConfigError(f"{where(i)}: the prompt has {n} tokens, more than the {limit} tokens the model "
                              f"can hold; {fix}")
        longest = max(longest, n)
    if configured and longest > configured:
        raise ConfigError(f"a prompt has {longest} tokens, more than task.max_prompt_length {configured}; "
                          "raise it, or set task.truncate_prompts=left to keep each prompt's last tokens "
                          "as the papers' trainers do")
    return configured or longest
