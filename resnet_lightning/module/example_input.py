"""What the module knows of its input: the ``example_input_array`` Lightning's model summary runs through the
network, and the ``data_spec`` a checkpoint keeps for exports, from the data."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.callbacks import ModelSummary

from ..errors import UserError


def example_input(trainer: Any) -> torch.Tensor | None:
    """A batch of one zero image of the training images' shape, ``(1, C, H, W)``; None when unknown.

    Lightning's :class:`~lightning.pytorch.callbacks.ModelSummary` counts FLOPs by running
    the module's ``example_input_array`` under ``torch.utils.flop_counter.FlopCounterMode``;
    without one it prints "Total Flops 0". Its total is then that of one image's forward
    pass, ``2 x`` the MACs of :func:`~resnet_lightning.models.flops.count_macs` (the same
    counter, a multiply-add counted as two FLOPs).

    The shape is that of the DataModule's first training sample (after its transform, so
    a crop size counts), drawn only when a model summary will be printed, with the global
    RNG put back afterwards so a seeded fit trains the same with or without it.
    """
    if trainer is None or not any(isinstance(callback, ModelSummary) for callback in trainer.callbacks):
        return None
    dataset = getattr(trainer.datamodule, "train_set", None)
    try:
        if dataset is None or len(dataset) == 0:
            return None
        with torch.random.fork_rng(devices=[]):
            sample = dataset[0]
    except (UserError, TypeError):  # an unreadable first file is reported by the first batch, as before
        return None
    image = sample[0] if isinstance(sample, (tuple, list)) else sample
    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        return None
    return torch.zeros(1, *image.shape)  # (1, C, H, W)


def data_spec(datamodule: Any, input_shape: list[int] | None) -> dict[str, Any]:
    """What an exported model needs to be used: the classes' names, the input's normalisation and shape."""
    spec = {key: getattr(datamodule, key, None) for key in ("class_names", "mean", "std", "image_size")}
    spec["input_shape"] = input_shape
    return {key: _plain(value) for key, value in spec.items()}


def _plain(value: Any) -> Any:
    """Tensors and tuples as lists, so a checkpoint's ``data_spec`` loads with ``weights_only=True``."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
