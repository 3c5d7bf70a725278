"""``predictions.csv``: one row per predicted image file, its top-k classes and their probabilities."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from typing_extensions import override

from ..console import tell
from ..storage import write_atomically

PREDICTIONS_FILE = "predictions.csv"


class PredictionWriter(BasePredictionWriter):
    """Write ``predictions.csv`` into the prediction's log directory (inside the run) and print its path.

    Columns: ``path`` (the image file, or the sample's index for datasets without
    files), ``label`` (the true class when the dataset has one, e.g. predicting a test
    set; empty for new images), then ``class_1, prob_1, ..., class_k, prob_k``, most
    probable first, and ``error``: empty, or why the file could not be read as an
    image (its classes are then empty). A dataset reports such a file by yielding
    ``(image, label, problem)`` (``ImageFiles(report_unreadable=True)``). Each
    rank appends its batches to ``predictions.rank<R>.csv`` as they come (nothing is
    held in memory); at the end rank zero merges the parts in dataset order, so under
    DDP there is still exactly one row per image (Lightning's predict sampler does
    not pad or repeat samples).

    Args:
        top_k: Classes per row (at most the number of classes).
        output_dir: Where to write; None: ``trainer.log_dir`` (``<run>/predict/version_<K>``).
    """

    def __init__(self, top_k: int = 5, output_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(write_interval="batch")
        self.top_k = top_k
        self.output_dir = None if output_dir is None else Path(output_dir)
        self._part: Path | None = None
        self._written = 0

    @property
    def path(self) -> Path | None:
        """The merged file, once ``setup`` has chosen the directory."""
        return None if self.output_dir is None else self.output_dir / PREDICTIONS_FILE

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self.output_dir is None:
            self.output_dir = Path(trainer.log_dir or trainer.default_root_dir)  # log_dir: a collective under DDP
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._part = self.output_dir / f"predictions.rank{trainer.global_rank}.csv"
        self._part.unlink(missing_ok=True)
        self._written = 0

    @override
    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: torch.Tensor,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        probs = prediction.float().cpu()  # (N, K)
        if batch_indices is None or len(batch_indices) != len(probs):
            if trainer.world_size > 1:
                raise RuntimeError("predictions under DDP need the sample indices Lightning's predict sampler records")
            batch_indices = range(self._written, self._written + len(probs))  # an unsampled loader: in order
        dataset = getattr(_loader(trainer, dataloader_idx), "dataset", None)
        paths = getattr(dataset, "paths", None)
        names = getattr(trainer.datamodule, "class_names", None) if trainer.datamodule is not None else None
        name = lambda i: names[i] if names and 0 <= i < len(names) else str(i)  # noqa: E731
        labels = batch[1].tolist() if isinstance(batch, (tuple, list)) and len(batch) > 1 else [-1] * len(probs)
        problems = batch[2] if isinstance(batch, (tuple, list)) and len(batch) > 2 else [""] * len(probs)
        k = min(self.top_k, probs.shape[1])
        top_p, top_i = probs.topk(k, dim=1)  # (N, k) each
        with open(self._part, "a", newline="") as f:
            writer = csv.writer(f)
            for index, label, problem, p_row, i_row in zip(batch_indices, labels, problems, top_p.tolist(), top_i.tolist()):
                where = str(paths[index]) if paths is not None else str(index)
                row: list[Any] = [index, problem, where, name(label) if label >= 0 else ""]
                if not problem:  # an unreadable file: no classes, only why
                    for p, i in zip(p_row, i_row):
                        row += [name(i), f"{p:.6f}"]
                writer.writerow(row)
        self._written += len(probs)

    @override
    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.strategy.barrier("prediction_parts_written")
        if trainer.is_global_zero:
            self._merge(trainer.world_size)
        trainer.strategy.barrier("predictions_merged")

    def _merge(self, world_size: int) -> None:
        rows: dict[int, list[str]] = {}
        k = 0
        for rank in range(world_size):
            part = self.output_dir / f"predictions.rank{rank}.csv"
            if not part.is_file():
                continue
            with open(part, newline="") as f:
                for index, *row in csv.reader(f):
                    rows[int(index)] = row  # a sample seen twice (never, unpadded) is written once
                    k = max(k, (len(row) - 3) // 2)
        header = ["path", "label"] + [f"{what}_{r}" for r in range(1, k + 1) for what in ("class", "prob")] + ["error"]
        failed = [(row[1], row[0]) for _, row in sorted(rows.items()) if row[0]]  # (path, problem)
        table = io.StringIO(newline="")
        writer = csv.writer(table)
        writer.writerow(header)
        for index in sorted(rows):
            problem, *row = rows[index]
            writer.writerow(row + [""] * (2 + 2 * k - len(row)) + [problem])
        write_atomically(self.path, table.getvalue())
        for rank in range(world_size):
            (self.output_dir / f"predictions.rank{rank}.csv").unlink(missing_ok=True)
        if not failed:
            tell(f"predict: {len(rows)} predictions written to {self.path}")
            return
        shown = "; ".join(f"{path}: {problem}" for path, problem in failed[:3]) + (" ..." if len(failed) > 3 else "")
        tell(
            f"predict: {len(rows)} rows written to {self.path}: {len(rows) - len(failed)} predictions and "
            f"{len(failed)} file(s) that could not be read as images ({shown}); their error column says why"
        )


def _loader(trainer: L.Trainer, dataloader_idx: int) -> Any:
    loaders = trainer.predict_dataloaders
    if isinstance(loaders, (list, tuple)):
        return loaders[dataloader_idx]
    return loaders
