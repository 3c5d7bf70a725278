"""Synthetic data and a step timer, shared by the training benchmarks.

``SyntheticDataModule`` is a real ``LightningDataModule`` that the real CLI loads
by class path (``--data benchmarks.synthetic.SyntheticDataModule``), so the
framework runs exactly as for a user; only the images are random.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from typing_extensions import override

from benchmarks.common import now


class RepeatedBatch:
    """One batch, already on its device, yielded ``length`` times.

    NVIDIA's reference trainers call this "synthetic data": the loader costs
    nothing and never copies, so the throughput is that of the model and the
    training loop alone.
    """

    def __init__(self, batch: tuple[Tensor, Tensor], length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return (self.batch for _ in range(self.length))


class SyntheticDataModule(L.LightningDataModule):
    """Random images and labels held in memory, for timing training without a dataset.

    Args:
        train_batches: Training batches per epoch.
        val_batches: Validation batches (0: no validation loader).
        batch_size: Images per batch.
        image_size: Side of the square images.
        num_classes: Label range (linked into the model by the CLI).
        in_channels: Image channels (linked into the model by the CLI).
        device: ``None``: uint8 images made float and normalised once, in host memory,
            served shuffled by a ``DataLoader`` in the main process, as a user with an
            in-memory dataset would. A device name (``"cuda"``): one batch generated
            on that device and repeated (:class:`RepeatedBatch`).
        seed: Seed of the random images.
    """

    def __init__(
        self,
        train_batches: int = 12,
        val_batches: int = 2,
        batch_size: int = 128,
        image_size: int = 32,
        num_classes: int = 10,
        in_channels: int = 3,
        device: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.train_batches, self.val_batches, self.batch_size = train_batches, val_batches, batch_size
        self.image_size, self.num_classes, self.in_channels = image_size, num_classes, in_channels
        self.device, self.seed = device, seed

    def _tensors(self, n: int, device: str | None) -> tuple[Tensor, Tensor]:
        generator = torch.Generator(device or "cpu").manual_seed(self.seed + n)
        shape = (n, self.in_channels, self.image_size, self.image_size)
        images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator, device=device)
        images = (images.float() / 255 - 0.5) / 0.25  # (N, C, H, W), roughly standardised
        labels = torch.randint(0, self.num_classes, (n,), generator=generator, device=device)
        return images, labels

    def _loader(self, batches: int, shuffle: bool) -> DataLoader | RepeatedBatch:
        if self.device is not None:
            return RepeatedBatch(self._tensors(self.batch_size, self.device), batches)
        return DataLoader(TensorDataset(*self._tensors(batches * self.batch_size, None)), self.batch_size, shuffle=shuffle)

    @override
    def train_dataloader(self) -> DataLoader | RepeatedBatch:
        return self._loader(self.train_batches, shuffle=True)

    @override
    def val_dataloader(self) -> DataLoader | RepeatedBatch | list:
        return self._loader(self.val_batches, shuffle=False) if self.val_batches else []


class StepTimer(L.Callback):
    """Time ``steps`` training steps after ``warmup`` untimed ones.

    The clock starts at the end of batch ``warmup - 1`` and stops at the end of batch
    ``warmup + steps - 1``, so the window holds exactly ``steps`` whole iterations of
    the loop: fetching the batch, every hook, the step, logging and the progress bar.
    The hand-written loops here cut their windows at the same points. The host clock
    is also read at the end of every step in the window (``step_seconds``), without
    synchronising: on a CPU these are the single steps' durations.

    Args:
        warmup: Untimed steps first (at least 1: the window starts at the end of a step).
        steps: Timed steps.
    """

    def __init__(self, warmup: int = 2, steps: int = 10) -> None:
        if warmup < 1 or steps < 1:
            raise ValueError(f"StepTimer needs warmup >= 1 and steps >= 1, got warmup={warmup}, steps={steps}")
        self.warmup, self.steps = warmup, steps
        self.start: float | None = None
        self.stop: float | None = None
        self.ends: list[float] = []

    @override
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if batch_idx == self.warmup - 1:
            self.start = now(pl_module.device)
            self.ends = [self.start]
        elif self.warmup <= batch_idx < self.warmup + self.steps:
            self.ends.append(time.perf_counter())
            if batch_idx == self.warmup + self.steps - 1:
                self.stop = self.ends[-1] = now(pl_module.device)

    @property
    def step_seconds(self) -> list[float]:
        """Duration of each timed step (host clock)."""
        return [b - a for a, b in zip(self.ends, self.ends[1:])]

    @property
    def seconds(self) -> float:
        """Wall time of the timed steps."""
        if self.start is None or self.stop is None:
            raise RuntimeError(f"the fit ended before {self.warmup} + {self.steps} training steps; nothing was timed")
        return self.stop - self.start


@contextlib.contextmanager
def quiet(log: Path) -> Iterator[None]:
    """Send everything written to file descriptors 1 and 2 (progress bar, Lightning's
    log lines, warnings) to ``log`` instead of the terminal; show its tail on error.

    The progress bar still renders every step, into a file, so its cost is kept.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    failed = False
    with open(log, "ab") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
            if failed:
                print(log.read_text(errors="replace")[-4000:], file=sys.stderr)


def cli_fit(args: list[str], workdir: str | None = None) -> tuple[StepTimer, object]:
    """``resnet-lightning fit ARGS`` through the real CLI, in a scratch directory.

    ``args`` must add a :class:`StepTimer` (``--trainer.callbacks+=benchmarks.synthetic.StepTimer``).
    Logs and checkpoints go to the scratch directory: the same logger and the same
    checkpoint callback as the CLI's defaults, in another place.

    Returns:
        The timer and the CLI object (its ``trainer`` and ``model``).
    """
    from resnet_lightning.cli import cli_main

    with tempfile.TemporaryDirectory(prefix="bench-", dir=workdir) as scratch:
        root = Path(scratch)
        argv = ["fit", *args, "--trainer.default_root_dir", str(root), "--checkpoint.dirpath", str(root / "checkpoints")]
        with quiet(root / "fit.log"):
            cli = cli_main(argv)
        timer = next(cb for cb in cli.trainer.callbacks if isinstance(cb, StepTimer))
    return timer, cli


def hand_loop(
    model: nn.Module,
    loader,
    warmup: int,
    steps: int,
    device: str = "cpu",
    autocast: torch.dtype | None = None,
    channels_last: bool = False,
    step_seconds: list[float] | None = None,
) -> float:
    """The loop a researcher writes by hand; seconds for ``steps`` steps after ``warmup``.

    The same SGD as the framework's default (lr 0.1, momentum 0.9, weight decay 1e-4),
    ``zero_grad(set_to_none=True)``, no metrics, no logging; the clock is cut where
    :class:`StepTimer` cuts it.

    Args:
        model: Already on ``device`` (and in channels_last memory format if asked).
        loader: Yields ``(images, labels)``.
        warmup: Untimed steps first (at least 1).
        steps: Timed steps.
        device: Where the model is.
        autocast: Mixed-precision dtype for the forward pass and loss (as Lightning's
            ``bf16-mixed``), or None for full precision.
        channels_last: Make each batch channels_last (as ``ResNetClassifier.forward`` does).
        step_seconds: If given, each timed step's duration (host clock) is appended to it.
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    device_type = torch.device(device).type
    model.train()
    start = None
    for i, (images, labels) in enumerate(loader):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type, dtype=autocast or torch.float32, enabled=autocast is not None):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i == warmup - 1:
            start = last = now(device)
        elif i >= warmup:
            end = now(device) if i == warmup + steps - 1 else time.perf_counter()
            if step_seconds is not None:
                step_seconds.append(end - last)
            last = end
            if i == warmup + steps - 1:
                return end - start
    raise RuntimeError(f"the loader ended before {warmup} + {steps} steps")
