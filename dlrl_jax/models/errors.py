"""`ConfigError`, the error of a bad model config field, apart from the config itself
(`dlrl_jax.models.config`, which re-exports it) so the family modules it reads can raise it."""


class ConfigError(ValueError):
    """A model config field is missing or invalid; the message names the field and the fix."""
