"""The built-in default guard (work in progress: see issue 3)."""

from __future__ import annotations

from ..errors import ModelLoadError


def load_builtin(device: str | None = "auto"):
    raise ModelLoadError("the built-in model is not part of this version yet; pass --model with a checkpoint "
                         "directory, or --model tiny for the smoke-test model")
