"""Checkpoint IO: Hugging Face safetensors folders (hf), PEFT LoRA adapter folders (peft) and Orbax
train-state checkpoints (train_state)."""

from dlrl_jax.checkpoints.hf import CheckpointError, from_pretrained, read_config, save_pretrained
from dlrl_jax.checkpoints.peft import load_adapter, save_adapter

__all__ = ["CheckpointError", "from_pretrained", "load_adapter", "read_config", "save_adapter", "save_pretrained"]
