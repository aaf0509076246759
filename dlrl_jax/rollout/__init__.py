"""The denoising rollout: LLaDA's block sampler and Dream's diffusion_generate on `lax.scan`, and the
trajectory record RL consumes."""

from dlrl_jax.rollout.sampler import generate
from dlrl_jax.rollout.steps import transfer_schedule
from dlrl_jax.rollout.settings import SamplerSettings, SamplerSettingsError, resolve_schedule
from dlrl_jax.rollout.trajectory import Trajectory, state_before_step

__all__ = ["SamplerSettings", "SamplerSettingsError", "Trajectory", "generate", "resolve_schedule",
           "state_before_step", "transfer_schedule"]
