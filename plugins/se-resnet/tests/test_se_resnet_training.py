"""SE blocks and SE-ResNets train by name through the real `resnet-lightning fit` on digits."""

from __future__ import annotations

import json

import pytest

from resnet_lightning.cli import cli_main
from se_resnet import SEBasicBlock, SEBottleneck

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--trainer.logger", "false"]


@pytest.mark.parametrize(
    ("arch", "block", "arch_kwargs", "block_cls"),
    [
        ("se_resnet18", None, {"widths": [8, 16, 16, 16]}, SEBasicBlock),
        ("cifar_resnet", "se_bottleneck", {"depth": 11}, SEBottleneck),  # a plugin block in a core architecture
    ],
)
def test_trains_on_digits_by_name(tmp_path, monkeypatch, arch, block, arch_kwargs, block_cls) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--data", "DigitsDataModule", "--model.arch", arch, "--model.arch_kwargs", json.dumps(arch_kwargs)]
    args += ["--model.block", block] if block else []
    cli = cli_main([*args, "--trainer.max_steps", "3", "--trainer.accelerator", "cpu", *QUIET])
    assert cli.trainer.global_step == 3
    assert any(isinstance(m, block_cls) for m in cli.model.modules())
