"""Variants side by side over seeds: ``resnet-lightning compare`` (see :mod:`.command`)."""

from .command import main

__all__ = ["main"]
