"""Lightning callbacks: resumability, diagnostics and logging helpers."""

from .rng_state import RNGStateCheckpoint

__all__ = ["RNGStateCheckpoint"]
