"""The diagnostic callbacks on real networks and real Lightning trainers (CPU, CSVLogger)."""

from __future__ import annotations

import csv
import json
import logging
import math
import re

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.model_summary.model_summary import get_human_readable_count
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassConfusionMatrix

from resnet_lightning import ResNetClassifier, count_parameters, create_model
from resnet_lightning.analysis import model_summary, residual_blocks, residual_ratios
from resnet_lightning.callbacks import (
    ArchitectureSummary,
    ErrorRateMonitor,
    GradientFlowMonitor,
    ResidualBranchMonitor,
    RunCheckpoint,
    TestReport,
)
from resnet_lightning.data import DigitsDataModule
from resnet_lightning.errors import UserError


def _loader(n: int = 48, batch_size: int = 16, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 1, 8, 8, generator=generator)
    labels = torch.randint(0, 10, (n,), generator=generator)
    return DataLoader(TensorDataset(images, labels), batch_size=batch_size)


def _trainer(tmp_path, callbacks, **kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu", max_steps=4, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, logger=CSVLogger(tmp_path, name="csv"), default_root_dir=tmp_path,
        log_every_n_steps=1, limit_val_batches=1,
    )
    return L.Trainer(callbacks=callbacks, **dict(defaults, **kwargs))


def _metrics_csv(trainer: L.Trainer) -> list[dict[str, str]]:
    with open(f"{trainer.log_dir}/metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("block", ["basic", "preact", "bottleneck"])
def test_residual_ratio_matches_the_branch_computed_by_hand(block) -> None:
    torch.manual_seed(0)
    net = create_model("cifar_resnet", depth=8 if block != "bottleneck" else 11, block=block, num_classes=10,
                       in_channels=1).eval()
    x = torch.randn(4, 1, 8, 8)
    ratios = residual_ratios(net, x)
    first = residual_blocks(net)[0]
    # By hand for the first block: its input is the stem output; the branch is everything but the shortcut.
    with torch.no_grad():
        h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        shortcut = h if first.downsample is None else first.downsample(h if block != "preact" else first.relu(first.bn1(h)))
        captured = {}
        handle = first.drop_path.register_forward_hook(lambda m, i, o: captured.setdefault("branch", i[0].clone()))
        first(h)
        handle.remove()
    expected = (captured["branch"].norm() / shortcut.norm()).item()
    assert ratios[0] == pytest.approx(expected, rel=1e-5)
    assert sorted(ratios) == list(range(len(residual_blocks(net))))


def test_zero_initialised_branches_have_ratio_zero_and_plain_blocks_none() -> None:
    net = create_model("cifar_resnet", depth=8, num_classes=10, in_channels=1, zero_init_residual=True)
    ratios = residual_ratios(net, torch.randn(4, 1, 8, 8))
    assert len(ratios) == 3 and all(r == 0.0 for r in ratios.values())
    plain = create_model("cifar_plain20", num_classes=10, in_channels=1)
    assert residual_ratios(plain, torch.randn(4, 1, 8, 8)) == {}


def test_residual_branch_monitor_logs_every_n_steps_without_changing_training(tmp_path) -> None:
    monitor = ResidualBranchMonitor(every_n_steps=2, probe_size=8)
    torch.manual_seed(0)
    model = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, num_classes=10, in_channels=1)
    trainer = _trainer(tmp_path, [monitor])
    trainer.fit(model, _loader(), _loader())
    assert [step for step, _ in monitor.history] == [0, 2]
    assert monitor.block_indices == [0, 1, 2]
    rows = [r for r in _metrics_csv(trainer) if r.get("residual_ratio/block_00")]
    assert [int(r["step"]) for r in rows] == [0, 2]
    assert (tmp_path / "csv" / "version_0" / "residual_ratio.png").is_file()

    # Same seed without the monitor: identical weights (it runs in eval mode, no_grad: no side effects).
    torch.manual_seed(0)
    reference = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, num_classes=10, in_channels=1)
    _trainer(tmp_path / "ref", []).fit(reference, _loader(), _loader())
    for a, b in zip(model.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)


def _grad_spread(tmp_path, arch: str) -> float:
    torch.manual_seed(0)
    monitor = GradientFlowMonitor(every_n_steps=1)
    model = ResNetClassifier(arch=arch, num_classes=10, in_channels=1)
    _trainer(tmp_path / arch, [monitor], max_steps=1).fit(model, _loader(), _loader())
    (step, norms), = monitor.history
    assert step == 0 and len(norms) == 27
    return max(norms) / min(norms)


def test_gradient_flow_spreads_over_depth_in_plain_nets_not_in_resnets(tmp_path) -> None:
    # At initialisation the per-block gradient norms of plain-56 span orders of magnitude
    # (largest next to the input), those of ResNet-56 stay within a small band.
    plain, residual = _grad_spread(tmp_path, "cifar_plain56"), _grad_spread(tmp_path, "cifar_resnet56")
    assert plain > 20 * residual, (plain, residual)


def test_gradient_flow_monitor_writes_metrics_csv_and_png(tmp_path) -> None:
    monitor = GradientFlowMonitor(every_n_steps=2)
    model = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, num_classes=10, in_channels=1)
    trainer = _trainer(tmp_path, [monitor])
    trainer.fit(model, _loader(), _loader())
    rows = [r for r in _metrics_csv(trainer) if r.get("grad_norm/block_02")]
    assert [int(r["step"]) for r in rows] == [0, 2]
    assert all(float(r["grad_norm/block_00"]) > 0 for r in rows)
    with open(f"{trainer.log_dir}/gradient_flow.csv", newline="") as f:
        assert next(csv.reader(f)) == ["step", "block_00", "block_01", "block_02"]
    assert (tmp_path / "csv" / "version_0" / "gradient_flow.png").is_file()


class _NoBlocks(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def training_step(self, batch, batch_idx):
        images, labels = batch
        return nn.functional.cross_entropy(self.model(images), labels)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_gradient_flow_degrades_gracefully_without_blocks(tmp_path) -> None:
    monitor = GradientFlowMonitor(every_n_steps=1)
    with pytest.warns(UserWarning, match="no blocks\\(\\) method"):
        _trainer(tmp_path, [monitor], max_steps=2, limit_val_batches=0).fit(_NoBlocks(), _loader())
    assert [name for name, _ in monitor._modules] == ["1", "3"]
    assert len(monitor.history) == 2 and all(not math.isnan(v) for v in monitor.history[0][1])


def test_model_summary_of_resnet20_and_plain56() -> None:
    model = ResNetClassifier(arch="cifar_resnet20", num_classes=10, in_channels=3)
    summary = model_summary(model, (3, 32, 32))
    assert summary["parameters"] == count_parameters(model.model) == 269_722  # He et al. 2015, option A: 0.27M
    assert summary["depth"] == 20 and summary["num_blocks"] == 9 and summary["block"] == "basic"
    assert 40e6 < summary["macs"] < 42e6  # ~41M multiply-adds at 32x32
    assert summary["arch_plugin"].startswith("resnet-lightning ") and summary["block_plugin"] == summary["arch_plugin"]
    plain = model_summary(ResNetClassifier(arch="cifar_plain56", num_classes=10, in_channels=3), (3, 32, 32))
    assert plain["depth"] == 56 and plain["block"] == "plain"


def test_architecture_summary_logs_config_and_metrics(tmp_path) -> None:
    callback = ArchitectureSummary()
    model = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, num_classes=10, in_channels=1)
    trainer = _trainer(tmp_path, [callback], max_steps=1)
    trainer.fit(model, _loader(), _loader())
    assert callback.summary["input_size"] == [1, 8, 8] and callback.summary["depth"] == 8
    saved = json.loads((tmp_path / "csv" / "version_0" / "model_summary.json").read_text())
    assert saved == callback.summary
    hparams = (tmp_path / "csv" / "version_0" / "hparams.yaml").read_text()
    assert "model_summary.depth: 8" in hparams
    assert float(_metrics_csv(trainer)[0]["model/parameters"]) == count_parameters(model.model)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += record.getMessage().splitlines()


def test_lightning_summary_counts_the_networks_flops_as_twice_our_macs(tmp_path) -> None:
    # Lightning's summary runs the module's example_input_array (one training image's shape, from the
    # DataModule) under the FLOP counter count_macs uses, which counts a multiply-add as two FLOPs.
    summary, printed = ArchitectureSummary(), _Lines()
    logger = logging.getLogger("lightning.pytorch.callbacks.model_summary")
    level, logger.level = logger.level, logging.INFO
    logger.addHandler(printed)
    try:
        model = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, num_classes=10, in_channels=1)
        _trainer(tmp_path, [summary], max_steps=1, enable_model_summary=True).fit(model, DigitsDataModule())
    finally:
        logger.removeHandler(printed)
        logger.setLevel(level)
    total = next(line for line in printed.lines if line.endswith("Total Flops")).removesuffix("Total Flops").strip()
    assert summary.summary["macs"] > 0 and total == get_human_readable_count(2 * summary.summary["macs"])  # "1.5 M"
    network_row = next(line for line in printed.lines if "| ResNet " in line)
    assert "[1, 1, 8, 8]" in network_row and f"| {total} |" in network_row


def test_test_report_confusion_matrix_and_misclassified(tmp_path) -> None:
    report = TestReport(num_misclassified=5)
    torch.manual_seed(0)
    model = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, num_classes=10, in_channels=1)
    trainer = _trainer(tmp_path, [report])
    loader = _loader(n=40, batch_size=16, seed=1)
    trainer.test(model, loader)
    # The same matrix computed directly from the model's predictions.
    model.eval()
    expected = MulticlassConfusionMatrix(10)
    with torch.no_grad():
        for images, labels in loader:
            expected.update(model(images), labels)
    assert torch.equal(report.confusion, expected.compute())
    assert report.confusion.sum() == 40
    directory = tmp_path / "csv" / "version_0"
    with open(directory / "confusion_matrix.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 100 and sum(int(r["count"]) for r in rows) == 40
    with open(directory / "misclassified.csv", newline="") as f:
        samples = list(csv.DictReader(f))
    wrong = int(report.confusion.sum() - report.confusion.trace())
    assert len(samples) == min(5, wrong) and all(s["label"] != s["predicted"] for s in samples)
    assert (directory / "confusion_matrix.png").is_file() and (directory / "misclassified.png").is_file()


def test_error_rate_is_one_minus_accuracy(tmp_path) -> None:
    model = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, num_classes=10, in_channels=1)
    trainer = _trainer(tmp_path, [ErrorRateMonitor()], max_steps=-1, max_epochs=1, limit_val_batches=None)
    trainer.fit(model, _loader(), _loader())
    metrics = trainer.callback_metrics
    assert metrics["val/error"].item() == pytest.approx(1 - metrics["val/acc"].item())
    assert metrics["train/error"].item() == pytest.approx(1 - metrics["train/acc"].item())


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: GradientFlowMonitor(every_n_steps=0), "GradientFlowMonitor: every_n_steps must be >= 1, got 0"),
        (lambda: ResidualBranchMonitor(probe_size=0), "ResidualBranchMonitor: every_n_steps and probe_size must be >= 1"),
        (lambda: RunCheckpoint(save_last_every_n_train_steps=-1), "save_last_every_n_train_steps=-1 must be 0 (off)"),
    ],
)
def test_a_callback_option_out_of_range_is_a_user_error(build, expected: str) -> None:
    # A user error (one line from the CLI, no traceback), and still a ValueError for Python callers.
    with pytest.raises(UserError, match=re.escape(expected)) as caught:
        build()
    assert isinstance(caught.value, ValueError)
