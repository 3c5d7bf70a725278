"""``--model.weights``: the pretrained weights a new fit starts from, fetched and loaded as the fit starts.

Checked when the module is built (:func:`~resnet_lightning.module.options.check_model_options`),
fetched once per node (``prepare_data``), loaded on every process (``setup``). Lightning
restores a resumed checkpoint after ``setup``, whose weights then replace these.
"""

from __future__ import annotations

from torch import nn

from .options import ModelConfigError
from ..models.pretrained import (
    WeightsError,
    is_weights_file,
    load_pretrained,
    resolve_weights,
)
from ..registry import get_architecture


def fetch_initial_weights(weights: str, arch: str) -> None:
    """Download named weights (``IMAGENET1K_V2``) into torch hub's cache; a file or a failure is left to :func:`load_initial_weights`."""
    if is_weights_file(weights):
        return
    try:
        resolve_weights(weights, get_architecture(arch), arch)
    except WeightsError:
        pass  # loading fails the same way, and says so unless a resumed checkpoint makes them unneeded


def load_initial_weights(model: nn.Module, weights: str, arch: str) -> str:
    """Load ``weights`` into ``model``; the line that says so (and what was adapted or left fresh).

    Raises:
        ModelConfigError: The weights are missing, corrupt, or another architecture's.
    """
    try:
        outcome = load_pretrained(model, weights, builder=get_architecture(arch), arch=arch)
    except WeightsError as err:
        raise ModelConfigError(f"--model.weights: {err}") from None
    notes = [f"{', '.join(keys)} {what}" for what, keys in outcome.items() if keys]
    return f"fit: initialised from weights {weights}" + (f" ({'; '.join(notes)})" if notes else "")
