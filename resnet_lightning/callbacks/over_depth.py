"""What the per-block diagnostics (gradient flow, residual ratios) share: logging a step's values, saving the history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lightning as L

from ..analysis.over_depth import plot_over_depth
from ..tracking.outputs import save_figure, save_table


def log_step(trainer: L.Trainer, metrics: Mapping[str, float]) -> None:
    """Log ``metrics`` to every logger of ``trainer`` at the current optimizer step."""
    for logger in trainer.loggers:
        logger.log_metrics(dict(metrics), step=trainer.global_step)


def save_over_depth(
    trainer: L.Trainer, name: str, blocks: Sequence[str], history: Sequence[tuple[int, Sequence[float]]],
    ylabel: str, title: str,
) -> None:
    """``<name>.csv`` (step, one column per block) and ``<name>.png`` (values against depth, a line per step).

    With W&B they are also logged as ``diagnostics/<name>_table`` and ``diagnostics/<name>``.
    """
    rows = [[step, *values] for step, values in history]
    save_table(trainer, f"diagnostics/{name}_table", ["step", *blocks], rows, f"{name}.csv")
    save_figure(trainer, f"diagnostics/{name}", plot_over_depth(history, ylabel, title), f"{name}.png")
