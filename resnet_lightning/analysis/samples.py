"""Images as a person looks at them: a normalised tensor made displayable, and a titled grid of samples."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def displayable(image: torch.Tensor) -> Any:
    """A normalised ``(C, H, W)`` tensor as an ``(H, W[, C])`` array in [0, 1] for display."""
    image = image.float()
    image = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-12)
    array = image.permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def plot_samples(samples: Sequence[tuple[torch.Tensor, int, int, float]], names: Sequence[str]) -> Any:
    """A grid of images titled ``label → prediction (confidence)``.

    Args:
        samples: ``(image (C, H, W), label, predicted class, confidence)`` per sample.
        names: The class names, by index.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(8, len(samples))
    rows = (len(samples) + cols - 1) // cols
    figure, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, actual, predicted, confidence) in zip(axes.flat, samples):
        array = displayable(image)
        ax.imshow(array, cmap="gray" if array.ndim == 2 else None)
        ax.set_title(f"{names[actual]}→{names[predicted]} ({confidence:.2f})", fontsize=8)
    figure.suptitle("misclassified test samples (label → prediction)")
    return figure
