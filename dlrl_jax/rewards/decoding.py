"""Completion ids -> the text that rewards read (`task.decode`).

  "official"  what the papers' trainers do (d1 diffu_grpo_trainer.py, EGSPO egspo_trainer.py, ESPO
              espo_trainer.py): `tokenizer.batch_decode(completion_ids, skip_special_tokens=True)` on
              the whole completion. Special tokens (EOS, pad, mask, chat markers) vanish wherever they
              are, and text the model wrote after an EOS stays, so it can still change the reward
              (a trailing "</answer>" after an EOS, or extra characters that cost d1's xml count).
  "cut_eos"   this project's default: the completion up to its first EOS, mask and pad ids dropped,
              special tokens skipped (`Tokenizer.decode`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

DECODE_MODES = ("cut_eos", "official")


def completion_texts(tokenizer, completion_ids, mode: str = "cut_eos") -> list[str]:
    """Texts of `completion_ids` [N, L] (any integer array or nested sequence) under `mode`."""
    rows: Sequence = np.asarray(completion_ids).tolist()
    if mode == "official":
        return tokenizer.hf.batch_decode(rows, skip_special_tokens=True)
    if mode == "cut_eos":
        return [tokenizer.decode(row) for row in rows]
    raise ValueError(f"unknown decode mode {mode!r}; use one of {', '.join(DECODE_MODES)}")
