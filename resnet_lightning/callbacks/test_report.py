"""At test time: the confusion matrix and a few misclassified images."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torchmetrics.classification import MulticlassConfusionMatrix
from typing_extensions import override

from ..analysis.samples import displayable, plot_samples
from ..tracking.outputs import report_dir, save_figure, save_table, wandb_logger
from .errors import CallbackConfigError


class TestReport(L.Callback):
    """Confusion matrix (torchmetrics, synced across DDP ranks) and misclassified samples.

    The model's logits are read by a forward hook on the LightningModule during
    ``test_step``, so nothing is computed twice. With a WandbLogger the matrix is
    logged as ``test/confusion_matrix`` (image) and ``test/confusion_matrix_table``
    (actual, predicted, count), the samples as ``test/misclassified`` (a table of
    images with label, prediction and confidence); with any logger the same go to
    ``confusion_matrix.png/.csv`` and ``misclassified.png/.csv``.

    Args:
        num_misclassified: How many misclassified samples to keep (the first ones seen).
        class_names: Names of the classes (default: the DataModule's ``classes``, else 0..K-1).
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, num_misclassified: int = 16, class_names: list[str] | None = None) -> None:
        self.num_misclassified = num_misclassified
        self.class_names = class_names
        self.confusion: torch.Tensor | None = None  # (K, K) rows = actual, columns = predicted
        self._metric: MulticlassConfusionMatrix | None = None
        self._logits: torch.Tensor | None = None
        self._handle: Any = None
        self._samples: list[tuple[torch.Tensor, int, int, float]] = []

    @override
    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        num_classes = pl_module.hparams.get("num_classes")
        if not num_classes:
            raise CallbackConfigError(
                f"TestReport needs the number of classes from {type(pl_module).__name__}.hparams.num_classes "
                f"(got {num_classes!r}); call save_hyperparameters() with a num_classes argument"
            )
        self._metric = MulticlassConfusionMatrix(int(num_classes)).to(pl_module.device)
        self._samples = []

        def keep_logits(module: Any, inputs: Any, output: torch.Tensor) -> None:
            self._logits = output.detach()

        self._handle = pl_module.register_forward_hook(keep_logits)

    @override
    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self._logits is None or self._metric is None:
            return
        images, labels = batch  # (N, C, H, W), (N,)
        logits, self._logits = self._logits, None
        self._metric.update(logits, labels)
        if len(self._samples) < self.num_misclassified:
            probabilities = logits.float().softmax(dim=-1)  # (N, K)
            confidence, predicted = probabilities.max(dim=-1)
            for i in torch.nonzero(predicted != labels).flatten().tolist()[: self.num_misclassified - len(self._samples)]:
                self._samples.append((images[i].detach().cpu(), int(labels[i]), int(predicted[i]), float(confidence[i])))

    @override
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self._metric is None:
            return
        self.confusion = self._metric.compute().cpu()  # all-reduced over ranks
        if report_dir(trainer) is None:
            return
        names = self.class_names or [str(c) for c in getattr(trainer.datamodule, "classes", [])] or [
            str(i) for i in range(self.confusion.shape[0])
        ]
        rows = [[names[a], names[p], int(self.confusion[a, p])] for a in range(len(names)) for p in range(len(names))]
        save_table(trainer, "test/confusion_matrix_table", ["actual", "predicted", "count"], rows, "confusion_matrix.csv")
        save_figure(trainer, "test/confusion_matrix", self._plot_confusion(names), "confusion_matrix.png")
        if self._samples:
            self._report_samples(trainer, names)

    def _plot_confusion(self, names: list[str]) -> Any:
        """torchmetrics' own heat map (rows: true class, columns: predicted); counts and names up to 20 classes."""
        import matplotlib

        matplotlib.use("Agg")
        assert self._metric is not None and self.confusion is not None
        small = len(names) <= 20
        figure, axes = self._metric.plot(self.confusion, add_text=small, labels=names if small else None, cmap="Blues")
        axes.set_title("test confusion matrix")
        return figure

    def _report_samples(self, trainer: L.Trainer, names: list[str]) -> None:
        columns = ["index", "label", "predicted", "confidence"]
        rows = [[i, names[a], names[p], round(c, 4)] for i, (_, a, p, c) in enumerate(self._samples)]
        wandb_rows = None
        if wandb_logger(trainer) is not None:
            import wandb

            columns = ["image", *columns]
            wandb_rows = [[wandb.Image(displayable(img)), *row] for (img, *_), row in zip(self._samples, rows)]
            rows = [["", *row] for row in rows]
        save_table(trainer, "test/misclassified", columns, rows, "misclassified.csv", wandb_rows=wandb_rows)
        save_figure(trainer, "test/misclassified_grid", plot_samples(self._samples, names), "misclassified.png")

