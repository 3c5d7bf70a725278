"""--model.loss bce with --model.bce_target_threshold (timm's BinaryCrossEntropy), and --model.swa_lrs (Lightning's SWA)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import StochasticWeightAveraging

from resnet_lightning import ResNetClassifier
from resnet_lightning.checkpoint_io import read_checkpoint
from resnet_lightning.cli import cli_main
from resnet_lightning.module import ModelConfigError
from resnet_lightning.module.losses import classification_loss
from tests.fixtures_cli import DIGITS

TINY = [
    "--config", DIGITS, "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}",
    "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
]


def test_bce_targets_are_timms_smoothed_one_hot_and_thresholded_mixtures() -> None:
    logits = torch.randn(2, 10, generator=torch.Generator().manual_seed(0))
    bce = {"loss": "bce", "label_smoothing": 0.1, "bce_target_threshold": None}
    # timm: off_value = smoothing / K = 0.01, on_value = 1 - smoothing + off_value = 0.91
    one_hot = torch.full((2, 10), 0.01)
    one_hot[0, 3] = one_hot[1, 7] = 0.91
    expected = F.binary_cross_entropy_with_logits(logits, one_hot)
    assert torch.allclose(classification_loss(logits, torch.tensor([3, 7]), bce), expected)
    # A 70/30 mixture smooths to 0.64 / 0.28 / 0.01: above the threshold 0.2 both classes count as 1, the rest as 0.
    mixed = torch.zeros(2, 10)
    mixed[:, 3], mixed[:, 7] = 0.7, 0.3
    binary = torch.zeros(2, 10)
    binary[:, [3, 7]] = 1.0
    thresholded = classification_loss(logits, mixed, dict(bce, bce_target_threshold=0.2))
    assert torch.allclose(thresholded, F.binary_cross_entropy_with_logits(logits, binary))
    assert not torch.allclose(thresholded, classification_loss(logits, mixed, bce))


def test_a_fit_with_bce_threshold_and_cutmix_trains(tmp_path: Path) -> None:
    cli = cli_main(["fit", *TINY, "--model.loss", "bce", "--model.bce_target_threshold", "0.2", "--model.cutmix_alpha", "1.0",
                    "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path)])
    loss = cli.trainer.callback_metrics["train/loss_epoch"].item()
    assert math.isfinite(loss) and loss < math.log(2) * 1.5  # per-class sigmoids: about log 2 at the start, not ln 10


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"bce_target_threshold": 0.2}, "the threshold needs --model.loss bce"),
        ({"loss": "bce", "bce_target_threshold": 1.5}, r"a value in \[0, 1\)"),
        ({"swa_lrs": 0.0}, "SWA needs swa_lrs > 0"),
        ({"swa_lrs": 0.01, "swa_epoch_start": 2.5}, "swa_epoch_start an epoch"),
        ({"swa_lrs": 0.01, "ema_decay": 0.999}, "both average the weights: choose one"),
    ],
)
def test_bad_bce_and_swa_options_are_one_line(options: dict, expected: str) -> None:
    with pytest.raises(ModelConfigError, match=expected):
        ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, **options)


def test_swa_averages_from_its_start_epoch_and_leaves_the_average_in_the_model(tmp_path: Path) -> None:
    cli = cli_main(["fit", *TINY, "--model.swa_lrs", "0.05", "--model.swa_epoch_start", "2", "--trainer.max_epochs", "3",
                    "--trainer.default_root_dir", str(tmp_path)])
    swa = next(c for c in cli.trainer.callbacks if isinstance(c, StochasticWeightAveraging))
    assert swa.n_averaged.item() == 2  # the weights after epochs 2 and 3 (1-based)
    # One more epoch recomputed the batch-norm statistics of the average (no optimizer steps), validated it and saved it last.
    assert cli.trainer.current_epoch == 4
    average = swa._average_model.model.fc.weight.detach()
    assert torch.equal(cli.model.model.fc.weight.detach(), average)
    last = read_checkpoint(cli.run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    assert torch.equal(last["model.fc.weight"], average)
