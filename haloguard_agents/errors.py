"""Errors users can act on. Each message says what went wrong and how to fix it."""


class HaloGuardError(Exception):
    """Base class for every error this library raises on purpose."""


class ConfigError(HaloGuardError, ValueError):
    """A configuration, policy file or argument is invalid."""


class ModelLoadError(HaloGuardError):
    """A guard model could not be found or loaded."""


class GuardError(HaloGuardError):
    """Scoring failed; the firewall turns this into the surface's ``on_error`` action."""
