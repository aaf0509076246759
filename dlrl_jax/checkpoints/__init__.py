"""Checkpoint IO: Hugging Face safetensors folders (hf) and Orbax train-state checkpoints."""

from dlrl_jax.checkpoints.hf import CheckpointError, from_pretrained, read_config, save_pretrained

__all__ = ["CheckpointError", "from_pretrained", "read_config", "save_pretrained"]
