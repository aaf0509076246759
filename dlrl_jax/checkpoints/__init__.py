"""Checkpoint IO: PEFT LoRA adapter folders (peft) and Orbax train-state checkpoints (train_state).
The Hugging Face model folder IO is the model's own (dlrl_jax.models.hf), re-exported here with the
error every checkpoint reader raises (dlrl_jax.folders.errors)."""

from dlrl_jax.checkpoints.peft import load_adapter, save_adapter
from dlrl_jax.folders.errors import CheckpointError
from dlrl_jax.models.hf import from_pretrained, read_config, save_pretrained

__all__ = ["CheckpointError", "from_pretrained", "load_adapter", "read_config", "save_adapter", "save_pretrained"]
