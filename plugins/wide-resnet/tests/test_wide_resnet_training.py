"""Wide ResNets train by name through the real `resnet-lightning fit` on digits."""

from __future__ import annotations

import json

import pytest

from resnet_lightning.cli import cli_main
from wide_resnet import WideBasicBlock

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--trainer.logger", "false"]


@pytest.mark.parametrize(
    ("arch", "block", "arch_kwargs"),
    [
        ("wide_resnet", None, {"depth": 10, "widen_factor": 2, "dropout": 0.3}),
        ("cifar_resnet", "wide_basic", {"depth": 8}),  # a plugin block in a core architecture
    ],
)
def test_trains_on_digits_by_name(tmp_path, monkeypatch, arch, block, arch_kwargs) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--data", "DigitsDataModule", "--model.arch", arch, "--model.arch_kwargs", json.dumps(arch_kwargs)]
    args += ["--model.block", block] if block else []
    cli = cli_main([*args, "--trainer.max_steps", "3", "--trainer.accelerator", "cpu", *QUIET])
    assert cli.trainer.global_step == 3
    assert any(isinstance(m, WideBasicBlock) for m in cli.model.modules())
