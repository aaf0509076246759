"""The error of every checkpoint reader and writer, apart from them so each can raise it: the Hugging Face
IO (`hf`), the manifests (`manifest`) and the atomic folder writes (`atomic`) that use one another."""


class CheckpointError(ValueError):
    """A checkpoint folder is unusable; the message names every offending file or key."""
