"""Guard model backends behind one protocol."""

from .base import Guard, LocalGuard
from .loading import load_guard

__all__ = ["Guard", "LocalGuard", "load_guard"]
