"""A command reads a checkpoint once, and what it reads is never changed by what uses it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from resnet_lightning.checkpoint_io import read_checkpoint
from resnet_lightning.cli import cli_main
from resnet_lightning.safe_load import safe_load
from tests.fixtures_cli import DIGITS

TINY = [
    "--config", DIGITS, "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}",
    "--model.optimizer", "SGD", "--model.optimizer.lr", "0.05", "--model.optimizer.momentum", "0.9",
    "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
]


@pytest.fixture
def last_checkpoint(tmp_path: Path) -> Path:
    cli_main(["fit", *TINY, "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path)])
    return next(tmp_path.glob("*/version_0/checkpoints/last.ckpt"))


def test_a_resumed_fit_reads_its_checkpoint_once_and_leaves_what_was_read_unchanged(
    last_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: Counter[str] = Counter()
    real_load = torch.load

    def counted(path, *args, **kwargs):  # torch.load itself, counted
        loads[str(path)] += 1
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counted)
    # A copy outside the run: the resumed fit starts a new run and leaves this file as it is.
    frozen = tmp_path / "frozen.ckpt"
    frozen.write_bytes(last_checkpoint.read_bytes())
    momentum_on_disk = [
        state["momentum_buffer"].clone()
        for state in safe_load(frozen, mmap=False)["optimizer_states"][0]["state"].values()
    ]
    loads.clear()
    # Hyperparameters, callback state, the tensors' fit and Lightning's restore: one read.
    cli_main(["fit", *TINY, "--trainer.max_epochs", "2", "--ckpt_path", str(frozen),
              "--trainer.default_root_dir", str(tmp_path)])
    assert loads[str(frozen)] == 1, loads
    # The resumed fit trained on (momentum buffers change in place); the checkpoint the
    # command kept is still the file's, for anything else that reads it in this process.
    assert len(list(tmp_path.glob("*/version_1/checkpoints/last.ckpt"))) == 1  # it did train
    kept = read_checkpoint(frozen)["optimizer_states"][0]["state"]
    assert len(kept) == len(momentum_on_disk)
    for state, on_disk in zip(kept.values(), momentum_on_disk):
        assert torch.equal(state["momentum_buffer"], on_disk)


def test_changing_what_read_checkpoint_returns_does_not_change_the_next_read(last_checkpoint: Path) -> None:
    first = read_checkpoint(last_checkpoint)
    keys = list(first["state_dict"])
    first["state_dict"].clear()
    first["hyper_parameters"]["arch"] = "something else"
    again = read_checkpoint(last_checkpoint)
    assert list(again["state_dict"]) == keys
    assert again["hyper_parameters"]["arch"] == "cifar_resnet"
