"""Knowledge distillation (--model.distill): real fits on digits, the teacher a real run; its bad inputs."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from resnet_lightning import ResNetClassifier
from resnet_lightning.checkpoint_io import read_checkpoint
from resnet_lightning.cli import cli_main
from resnet_lightning.module import ModelConfigError
from tests.fixtures_cli import DIGITS

TINY = [
    "--config", DIGITS, "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}",
    "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.max_epochs", "1",
    "--trainer.enable_progress_bar", "false",
]


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("teacher")
    cli_main(["fit", *TINY, "--trainer.default_root_dir", str(root)])
    return next(root.glob("*/version_0"))


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(next(run_dir.rglob("metrics.csv"))) as f:
        return list(csv.DictReader(f))


def test_distillation_from_a_run_with_features_mixup_and_ema_logs_its_losses_and_the_teacher_cost(
    teacher_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    distill = f"{{teacher: {teacher_run}, temperature: 4, alpha: 0.7, features: 1.0}}"
    cli = cli_main(["fit", *TINY, "--model.distill", distill, "--model.mixup_alpha", "0.2", "--model.ema_decay", "0.9",
                    "--trainer.default_root_dir", str(tmp_path)])
    said = capsys.readouterr().err
    assert f"distill: teacher {teacher_run}: 0.7M MACs and 0.08M parameters" in said, said
    trained = [row for row in _metrics(cli.run_dir) if row.get("train/kd_loss_epoch")]
    assert trained and float(trained[-1]["train/kd_loss_epoch"]) > 0 and float(trained[-1]["train/feature_loss_epoch"]) > 0
    # The teacher stays out of the student's checkpoint; the projection is in it, and the student loads without the teacher.
    last = cli.run_dir / "checkpoints" / "last.ckpt"
    keys = set(read_checkpoint(last)["state_dict"])
    assert "distiller.projection.weight" in keys and not any("teacher" in key for key in keys)
    student = ResNetClassifier.load_from_checkpoint(last)
    assert student.distiller.teacher is None and student.distiller.projection.weight.shape == (64, 64, 1, 1)


def test_teacher_is_frozen_in_eval_mode_and_follows_the_student(teacher_run: Path) -> None:
    model = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, in_channels=1, distill={"teacher": str(teacher_run)})
    model.distiller.load_teacher(model.model)
    teacher = model.distiller.teacher
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert not any(p is q for p in teacher.parameters() for q in model.parameters())
    images = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    model.double()
    logits = model(images)
    losses = model.distiller(model.model, images, logits, logits.sum() * 0)
    assert teacher.fc.weight.dtype == torch.float64 and losses["kd_loss"] > 0


def _checkpoint(tmp_path: Path, num_classes: int) -> Path:
    """A real checkpoint of a tiny network trained one step on random 8x8 images with ``num_classes`` classes."""
    data = TensorDataset(torch.randn(8, 1, 8, 8), torch.arange(8) % num_classes)
    model = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, num_classes=num_classes, in_channels=1)
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path)
    trainer.fit(model, DataLoader(data, batch_size=8))
    trainer.save_checkpoint(tmp_path / "teacher.ckpt")
    return tmp_path / "teacher.ckpt"


@pytest.mark.parametrize(
    ("distill", "expected"),
    [
        ({"teacher": "TEACHER", "temprature": 2}, "has no option 'temprature'; did you mean temperature?"),
        ({"teacher": "TEACHER", "temperature": 0}, "need temperature > 0"),
        ({"teacher": "TEACHER", "alpha": 1.5}, "0 <= alpha <= 1"),
        ({"temperature": 4}, "needs a teacher"),
    ],
)
def test_bad_distill_options_are_one_line_before_anything_is_built(distill: dict, expected: str) -> None:
    with pytest.raises(ModelConfigError, match=expected):
        ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, distill=distill)


def test_a_teacher_with_other_classes_is_refused_by_the_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    teacher = _checkpoint(tmp_path, num_classes=5)
    with pytest.raises(SystemExit):
        cli_main(["fit", *TINY, "--model.distill", f"{{teacher: {teacher}}}", "--trainer.default_root_dir", str(tmp_path)])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == (
        f"resnet-lightning: error: --model.distill teacher '{teacher}' has 5 classes, the student 10; "
        "distil from a teacher trained on the same classes (the same data)"
    )


@pytest.mark.parametrize(
    ("teacher", "expected"),
    [
        ("notes.ckpt", "is not a checkpoint written by torch.save"),
        ("cifar_resnet20", "is an architecture without weights"),
        ("emptydir", "is a directory without checkpoints/last.ckpt"),
    ],
)
def test_a_teacher_that_cannot_teach_is_named_with_the_fix(tmp_path: Path, teacher: str, expected: str) -> None:
    (tmp_path / "notes.ckpt").write_text("not a checkpoint\n")
    (tmp_path / "emptydir").mkdir()
    where = teacher if teacher == "cifar_resnet20" else str(tmp_path / teacher)
    model = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, in_channels=1, distill={"teacher": where})
    with pytest.raises(ModelConfigError, match=expected):
        model.distiller.load_teacher(model.model)
