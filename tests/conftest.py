"""Shared fixtures: tiny random Hugging Face checkpoints written by PyTorch (the test oracle)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
