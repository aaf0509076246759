"""The error of every checkpoint and model-folder reader and writer, apart from them so each can raise
it: the Hugging Face IO (`dlrl_jax.models.hf`), the manifests (`manifest`), the atomic folder writes
(`atomic`) and the Orbax and PEFT IO of `dlrl_jax.checkpoints`."""


class CheckpointError(ValueError):
    """A checkpoint folder is unusable; the message names every offending file or key."""
