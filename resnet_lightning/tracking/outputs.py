"""Where diagnostics go: W&B media when the logger is W&B, PNG/CSV files always.

Callbacks call :func:`save_figure` and :func:`save_table` and stay logger-agnostic:
with a WandbLogger the files land in the W&B run's own directory (uploaded with
it) and are also logged as ``wandb.Image`` / ``wandb.Table``; with any other
logger they land in ``trainer.log_dir``; with no logger nothing is written.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger


def wandb_logger(trainer: L.Trainer) -> WandbLogger | None:
    """The trainer's WandbLogger, if it has one."""
    return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)


def report_dir(trainer: L.Trainer) -> Path | None:
    """The directory diagnostics write to (rank zero only), or None without a logger."""
    if not trainer.is_global_zero or not trainer.loggers:
        return None
    wb = wandb_logger(trainer)
    # A WandbLogger's log_dir is its save_dir, which every W&B run shares: use the run's files.
    directory = Path(wb.experiment.dir) if wb is not None else _log_dir(trainer)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _log_dir(trainer: L.Trainer) -> Path:
    """``trainer.log_dir`` without its broadcast: that is a collective, and this runs on rank zero alone (under DDP the
    other ranks are in their backward pass, so a broadcast here would pair with their gradient all-reduce)."""
    logger = trainer.loggers[0]
    directory = logger.log_dir if isinstance(logger, (CSVLogger, TensorBoardLogger)) else logger.save_dir
    return Path(directory or trainer.default_root_dir)


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """Write a header and rows as CSV."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def save_figure(trainer: L.Trainer, key: str, figure: Any, filename: str) -> Path | None:
    """Save a matplotlib figure as PNG and, with W&B, log it as an image under ``key``.

    Args:
        trainer: The trainer (rank zero writes; other ranks return None).
        key: W&B key, e.g. ``"diagnostics/gradient_flow"``.
        figure: A matplotlib Figure (closed here).
        filename: File name in the report directory.
    """
    import matplotlib.pyplot as plt

    directory = report_dir(trainer)
    if directory is None:
        plt.close(figure)
        return None
    path = directory / filename
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    wb = wandb_logger(trainer)
    if wb is not None:
        import wandb

        wb.experiment.log({key: wandb.Image(str(path)), "trainer/global_step": trainer.global_step})
    return path


def save_table(
    trainer: L.Trainer, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], filename: str,
    wandb_rows: Sequence[Sequence[Any]] | None = None,
) -> Path | None:
    """Save rows as CSV and, with W&B, log them as a ``wandb.Table`` under ``key``.

    Args:
        trainer: The trainer (rank zero writes; other ranks return None).
        key: W&B key, e.g. ``"test/confusion_matrix_table"``.
        columns: Column names.
        rows: Plain values for the CSV.
        filename: File name in the report directory.
        wandb_rows: Rows for W&B if they differ from ``rows`` (e.g. with ``wandb.Image`` cells).
    """
    directory = report_dir(trainer)
    if directory is None:
        return None
    path = write_csv(directory / filename, columns, rows)
    wb = wandb_logger(trainer)
    if wb is not None:
        import wandb

        table = wandb.Table(columns=list(columns), data=[list(r) for r in (wandb_rows or rows)])
        wb.experiment.log({key: table, "trainer/global_step": trainer.global_step})
    return path
