"""Training throughput, logged once per epoch by every fit (real CLI, real Lightning on the CPU)."""

from __future__ import annotations

import csv
import time

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from resnet_lightning import ResNetClassifier
from resnet_lightning.callbacks import TrainingThroughput
from resnet_lightning.callbacks.throughput import _training_flops
from resnet_lightning.cli import cli_main
from resnet_lightning.models.flops import count_macs
from tests.fixtures_cli import DIGITS, RUN_NAME

TINY = ["--config", DIGITS, "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}",
        "--trainer.enable_progress_bar", "false", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("train/images_per_sec")]


def test_every_fit_logs_images_per_second_once_per_epoch(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    cli = cli_main(["fit", *TINY, "--trainer.max_epochs", "2"])
    seconds = time.perf_counter() - started
    rows = _rows(tmp_path / RUN_NAME / "version_0" / "metrics.csv")
    assert [row["epoch"] for row in rows] == ["0", "1"]
    rates = [float(row["train/images_per_sec"]) for row in rows]
    # Two batches of 64 images an epoch, in less time than the whole command took.
    assert all(rate > 2 * 64 / seconds for rate in rates), rates
    assert cli.trainer.callback_metrics["train/images_per_sec"].item() == rates[-1]
    assert "train/mfu" not in rows[0]  # no peak FLOPs on a CPU


class _SlowValidation(L.LightningModule):
    """A tiny network whose every validation batch takes 0.2 s: none of it may count as training time."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum()

    def validation_step(self, batch, batch_idx):
        time.sleep(0.2)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_validation_inside_an_epoch_is_not_training_time(tmp_path) -> None:
    data = DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=8)  # 8 batches, validated every 2
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=1, val_check_interval=2, limit_val_batches=1, num_sanity_val_steps=0,
        callbacks=[TrainingThroughput()], logger=CSVLogger(tmp_path), enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False,
    )
    trainer.fit(_SlowValidation(), data, DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=8))
    # 4 validations (0.8 s) ran during the epoch; 64 images of a linear layer train in far less.
    assert trainer.callback_metrics["train/images_per_sec"].item() > 64 / 0.2


def test_the_module_adds_the_callback_to_each_fit_once(tmp_path) -> None:
    model = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, in_channels=1)
    loader = DataLoader(TensorDataset(torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))), batch_size=8)
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path)
    trainer.fit(model, loader)
    assert sum(isinstance(c, TrainingThroughput) for c in trainer.callbacks) == 1
    assert "train/images_per_sec" in trainer.callback_metrics
    trainer.fit_loop.epoch_loop.max_steps = 2
    trainer.fit(model, loader)  # a second fit replaces the first one's callback
    assert sum(isinstance(c, TrainingThroughput) for c in trainer.callbacks) == 1


def test_mfu_counts_a_training_step_as_three_forward_passes() -> None:
    # What train/mfu divides by the GPU's peak (GPU only, so not logged here): one image's forward and
    # backward FLOPs, counted on a meta-device copy; backward costs about twice the forward.
    model = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, in_channels=1)
    flops = _training_flops(model, torch.Size([1, 8, 8]))
    assert 2.9 < flops / (2 * count_macs(model.model, (1, 1, 8, 8))) < 3.0
    assert next(model.parameters()).device.type == "cpu"  # the model itself is left where it was


class _EpochEndReader(L.Callback):
    """Reads the rate as the console's epoch line does: in on_train_epoch_end, as a Trainer callback (run first)."""

    def __init__(self) -> None:
        self.seen: list[float | None] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        value = trainer.callback_metrics.get("train/images_per_sec")
        self.seen.append(None if value is None else value.item())


def test_an_epoch_end_hook_of_any_callback_sees_the_epochs_own_rate(tmp_path) -> None:
    reader = _EpochEndReader()
    model = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, in_channels=1)
    loader = DataLoader(TensorDataset(torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))), batch_size=8)
    trainer = L.Trainer(accelerator="cpu", max_epochs=3, logger=CSVLogger(tmp_path), callbacks=[reader],
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(model, loader)
    logged = [float(row["train/images_per_sec"]) for row in _rows(f"{trainer.log_dir}/metrics.csv")]
    assert len(logged) == 3 and reader.seen == pytest.approx(logged)
