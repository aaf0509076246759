"""Folders written whole and checked: an atomic folder replace (`atomic`) that ends with a manifest of
content hashes (`manifest`, SHA256SUMS), and `CheckpointError` (`errors`), the error of every folder
reader and writer. Plain files and the standard library only, below every package that writes a
folder: the Hugging Face export of `models`, the Orbax checkpoints of `checkpoints`, `dlrl-jax export`."""
