"""dlrl_jax: RL post-training of masked diffusion language models (EGSPO, ESPO, diffu-GRPO) in JAX."""

__version__ = "0.1.0"
