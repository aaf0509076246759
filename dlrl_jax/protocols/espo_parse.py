"""ESPO's evaluation parsers (ML-GSAI/ESPO eval/parse_and_get_acc.py, with eval/parse_utils.py): only
Countdown and Sudoku. ESPO's GSM8K, MATH and code numbers come from OpenCompass (LLaDA) and Dream's
lm-eval fork, not from this file (FIDELITY.md).

Sudoku: the same five patterns and cell count as d1 (`d1_parse.sudoku_cells`).
Countdown: d1's steps with one difference, in parse_utils.remove_boxed: where d1's returns its
input unchanged when it is not a "\\boxed{...}" / "\\boxed ..." form, ESPO's raises. So a text with
no box at all, or whose last box is an "\\fbox{...}", falls back to the first <answer>...</answer>
(stripped), and only without one to the whole text; d1 reads the whole text (or the "\\fbox{...}")
there.
"""

from __future__ import annotations

from dlrl_jax.protocols import d1_parse

_BOXED = "\\boxed"


def espo_remove_boxed(box: str) -> str:
    if box.startswith(_BOXED + " "):
        return box[len(_BOXED) + 1:]
    if box.startswith(_BOXED + "{") and box.endswith("}"):
        return box[len(_BOXED) + 1:-1]
    raise ValueError(f"String does not start with \\boxed: {box}")  # the official message


def countdown_expression(text: str) -> str:
    return d1_parse.countdown_expression(text, remove_boxed=espo_remove_boxed)


sudoku_cells = d1_parse.sudoku_cells
