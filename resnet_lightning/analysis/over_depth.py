"""One value per block against depth, one line per training step: the picture of gradient flow and residual ratios."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def draw_over_depth(axes: Any, history: Sequence[tuple[int, Sequence[float]]]) -> None:
    """Draw ``history`` (``(step, value per block)``, in step order) on ``axes``: one line per step, dark = early."""
    import matplotlib.pyplot as plt

    for i, (step, values) in enumerate(history):
        color = plt.cm.viridis(i / max(1, len(history) - 1))
        axes.plot(range(len(values)), values, marker=".", color=color, label=f"step {step}")
    axes.set_xlabel("block (input → output)")
    axes.grid(alpha=0.3)


def plot_over_depth(history: Sequence[tuple[int, Sequence[float]]], ylabel: str, title: str, log_y: bool = True) -> Any:
    """A figure of one value per block against block index, one line per step (dark = early).

    Args:
        history: ``(step, value per block)`` pairs, in step order.
        ylabel: What the values are.
        title: The figure's title.
        log_y: A logarithmic y-axis.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    draw_over_depth(axes, history)
    axes.set_ylabel(ylabel)
    if log_y:
        axes.set_yscale("log")
    axes.set_title(title)
    if len(history) <= 8:
        axes.legend(fontsize="small")
    else:
        mappable = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(history[0][0], history[-1][0]))
        figure.colorbar(mappable, ax=axes, label="step")
    return figure
