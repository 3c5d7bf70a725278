"""Lightning's CSV logger, continued rather than wiped when a run resumes."""

from __future__ import annotations

import csv

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from typing_extensions import override


class _AppendingWriter(ExperimentWriter):
    """An ``ExperimentWriter`` that appends to an existing ``metrics.csv``.

    Lightning's writer deletes ``metrics.csv`` when its directory is not empty,
    which would erase a resumed run's history (the run directory also holds the
    config and checkpoints). The old header's columns are kept, so rows logged
    before and after the resume stay in one table.
    """

    @override
    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = sorted(next(csv.reader(file), []))


class RunCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``metrics.csv`` survives a resume into the same directory.

    The CLI's default logger: ``metrics.csv`` and ``hparams.yaml`` in the run directory.
    Takes ``CSVLogger``'s arguments.
    """

    @property
    @override
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
