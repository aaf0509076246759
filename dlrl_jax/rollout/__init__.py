"""The denoising rollout: the LLaDA sampler on `lax.scan` and the trajectory record RL consumes."""

from dlrl_jax.rollout.sampler import generate, transfer_schedule
from dlrl_jax.rollout.settings import SamplerSettings, SamplerSettingsError
from dlrl_jax.rollout.trajectory import Trajectory, state_before_step

__all__ = ["SamplerSettings", "SamplerSettingsError", "Trajectory", "generate", "state_before_step",
           "transfer_schedule"]
