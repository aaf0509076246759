"""The 4x4 Sudoku cell reward computed in JAX from completion token ids, for a jitted RL run.

It equals what the host path computes for `task.prompt_style: plain`, `task.decode: cut_eos` and
`task.reward_set: dlrl` (`Task.score` -> `rewards.sudoku.sudoku_reward`): the completion is decoded up
to its first EOS with mask, pad and special ids dropped, wrapped as `<answer>{text.strip()}</answer>`,
and the first 16 ASCII digits of the last <answer>...</answer> match are the grid (padded with 0);
the reward is the fraction of the puzzle's blanks filled correctly (1 for a puzzle without blanks).

With the wrapper, the last match ends at the first "</answer>" the completion itself writes (one
written "<answer>" only widens the match), so the grid is the digits before that point. That is the
whole story while the completion holds at most one tag string, which a 16-token completion always
does (two tags need 17 characters); a longer completion with a written "</answer>" and then another
"<answer>...</answer>" pair is read differently here (`TokenTable` refuses gen_length > 16).

Needs a tokenizer whose every id decodes to at most one character (the embedded character
tokenizer); `TokenTable.from_tokenizer` checks it.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

CLOSE_TAG = "</answer>"
CELLS = 16
MAX_GEN_LENGTH = 16  # two tag strings need 17 characters: up to here the token reward is exact


@dataclasses.dataclass(frozen=True)
class TokenTable:
    """Per-id facts of a character tokenizer, as small host arrays (baked into the jitted program).

    digit [V] int32: the digit an id decodes to, -1 for any other id.
    kept [V] bool: the id decodes to a character (specials, mask, pad and unknown ids decode to nothing).
    close_tag [9] int32: the ids of "</answer>"; eos_id: where the completion's text stops."""

    digit: np.ndarray
    kept: np.ndarray
    close_tag: np.ndarray
    eos_id: int

    @classmethod
    def from_tokenizer(cls, tokenizer, vocab_size: int, gen_length: int) -> TokenTable:
        if gen_length > MAX_GEN_LENGTH:
            raise ValueError(f"sampler.gen_length {gen_length}: the JAX Sudoku reward is exact for completions of "
                             f"at most {MAX_GEN_LENGTH} tokens; lower it or use the host reward (dlrl-jax train)")
        digit = np.full(vocab_size, -1, np.int32)
        kept = np.zeros(vocab_size, bool)
        for i in range(vocab_size):
            if i in (tokenizer.mask_id, tokenizer.pad_id, tokenizer.eos_id):
                continue
            try:
                text = tokenizer.hf.decode([i], skip_special_tokens=True)
            except Exception:  # noqa: BLE001 (ids past the tokenizer's vocabulary decode to nothing)
                text = ""
            if len(text) > 1:
                raise ValueError(f"token id {i} decodes to {text!r}; the JAX Sudoku reward needs a character "
                                 "tokenizer (every id one character), such as the embedded one")
            kept[i] = len(text) == 1
            if len(text) == 1 and text in "0123456789":
                digit[i] = int(text)
        close = np.asarray(tokenizer.encode(CLOSE_TAG), np.int32)
        if len(close) != len(CLOSE_TAG):
            raise ValueError(f"{CLOSE_TAG!r} does not encode to one id per character")
        return cls(digit=digit, kept=kept, close_tag=close, eos_id=int(tokenizer.eos_id))


def answer_grid(completion_BxG, table: TokenTable):
    """The 16 digits [B, 16] int32 the host reward reads from each completion (0 where missing)."""
    G = completion_BxG.shape[1]
    ids = completion_BxG.astype(jnp.int32)
    is_eos = ids == table.eos_id
    before_eos = jnp.cumsum(is_eos, axis=1) - is_eos == 0
    before_eos &= ~is_eos
    kept = jnp.asarray(table.kept)[ids] & before_eos
    # the decoded text: kept ids moved to the front in order (a stable sort puts dropped ids last)
    order = jnp.argsort(~kept, axis=1, stable=True)
    text = jnp.take_along_axis(ids, order, axis=1)
    n_chars = kept.sum(axis=1)
    tag = jnp.asarray(table.close_tag)
    n_tag = tag.shape[0]
    starts = jnp.arange(G)
    window = jnp.clip(starts[:, None] + jnp.arange(n_tag)[None, :], 0, G - 1)  # [G, 9]
    is_tag = (text[:, window] == tag[None, None, :]).all(axis=2) & (starts[None, :] + n_tag <= n_chars[:, None])
    text_end = jnp.where(is_tag.any(axis=1), jnp.argmax(is_tag, axis=1), n_chars)  # the answer's end
    digit = jnp.asarray(table.digit)[text]
    is_digit = (digit >= 0) & (starts[None, :] < text_end[:, None])
    rank = jnp.cumsum(is_digit, axis=1) - 1
    cell_BxGx16 = is_digit[:, :, None] & (rank[:, :, None] == jnp.arange(CELLS)[None, None, :])
    return jnp.where(cell_BxGx16, digit[:, :, None], 0).sum(axis=1).astype(jnp.int32)


def sudoku_cell_reward(completion_BxG, puzzle_Bx16, solution_Bx16, table: TokenTable):
    """(reward [B] float32: the fraction of blanks filled correctly, solved [B] bool: reward >= 1).

    puzzle_Bx16 / solution_Bx16: the cells as integers, 0 for a blank."""
    grid = answer_grid(completion_BxG, table)
    blank = puzzle_Bx16 == 0
    right = (grid == solution_Bx16) & blank
    n_blank = blank.sum(axis=1)
    reward = jnp.where(n_blank > 0, right.sum(axis=1) / jnp.maximum(n_blank, 1), 1.0).astype(jnp.float32)
    return reward, reward >= 1.0 - 1e-6


def cells(strings: list[str]) -> np.ndarray:
    """Records' 16-digit strings -> [N, 16] int32."""
    return np.asarray([[int(ch) for ch in s] for s in strings], np.int32).reshape(len(strings), CELLS)

