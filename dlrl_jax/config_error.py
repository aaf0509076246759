"""`ConfigError`, the error of a bad setting, apart from the configuration itself (`dlrl_jax.config`,
which re-exports it): the tasks and the training engine raise it about the values they are given
without importing the application's `Config`."""


class ConfigError(ValueError):
    """A configuration field is invalid; the message names it and says how to fix it."""
