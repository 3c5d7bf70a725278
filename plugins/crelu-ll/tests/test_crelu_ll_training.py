"""The CReLU-LL network and block train by name through the real `resnet-lightning fit` on digits."""

from __future__ import annotations

import json

import pytest

from crelu_ll import CReLULLBlock
from resnet_lightning.cli import cli_main

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--trainer.logger", "false"]


@pytest.mark.parametrize(
    ("arch", "block", "arch_kwargs"),
    [
        ("crelu_ll_net", None, {"depth": 14}),
        ("mnist_resnet", "crelu_ll", {"num_blocks": 2}),  # a plugin block in a core architecture
    ],
)
def test_trains_on_digits_by_name(tmp_path, monkeypatch, arch, block, arch_kwargs) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--data", "DigitsDataModule", "--model.arch", arch, "--model.arch_kwargs", json.dumps(arch_kwargs)]
    args += ["--model.block", block] if block else []
    cli = cli_main([*args, "--trainer.max_steps", "3", "--trainer.accelerator", "cpu", *QUIET])
    assert cli.trainer.global_step == 3
    assert any(isinstance(m, CReLULLBlock) for m in cli.model.modules())
