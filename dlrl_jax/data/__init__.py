"""Task data: procedural generators (no download)."""

from dlrl_jax.data.countdown import generate_countdown
from dlrl_jax.data.sudoku import count_solutions, generate_sudoku

__all__ = ["count_solutions", "generate_countdown", "generate_sudoku"]
