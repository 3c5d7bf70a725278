"""What a user sees: a fit into a log file writes one line per epoch and a summary, Lightning's
notices only when asked for, each of our warnings once without a Python file path, W&B in one line.

The fits run in a fresh process with stderr captured, as under a cluster's scheduler or ``nohup``:
stderr is not a terminal.
"""

from __future__ import annotations

import logging
import os
import shlex
import warnings
from pathlib import Path

import pytest

from resnet_lightning.cli.held_notices import LIGHTNING_LOGGERS, QuietConsole
from tests.fixtures_cli import ROOT, RUN_NAME, run_cli

TINY = ["--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}"]
FEW = ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.log_every_n_steps", "1"]
OFFLINE = {"WANDB_MODE": "offline"}
NOTICES = ("GPU available", "TPU available", "💡", "LeafSpec", "Seed set to", "_pytree.py", "No seed found")


def _lines(text: str, start: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(start)]


@pytest.fixture(autouse=True)
def no_inherited_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A seed an earlier test left in PL_GLOBAL_SEED would reach the fits here and hide Lightning's "No seed found"."""
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)


def test_a_fit_into_a_file_writes_a_line_per_epoch_and_a_summary_whose_test_command_works(tmp_path: Path) -> None:
    result = run_cli("fit", *TINY, *FEW, "--trainer.max_epochs", "2", cwd=tmp_path, env=OFFLINE)
    assert result.returncode == 0, result.stderr
    for stream in (result.stderr, result.stdout):  # Lightning's bar writes to stdout
        assert "\r" not in stream and "it/s" not in stream  # no progress-bar refreshes
    (model,) = _lines(result.stderr, "resnet-lightning: model: ")  # one model line, on every fit
    assert "cifar_resnet" in model and " parameters, " in model and " MACs per 1x8x8 input" in model
    epochs = _lines(result.stderr, "resnet-lightning: epoch ")
    assert [line.split()[2] for line in epochs] == ["1/2", "2/2"]
    assert all("train/loss" in line and "val/acc" in line and " lr 0.1 " in line and line.endswith(" s") for line in epochs)
    for notice in NOTICES:
        assert notice not in result.stderr
    run_dir = tmp_path / RUN_NAME / "version_0"
    summary = _lines(result.stderr, "resnet-lightning: fit: ")
    done = next(line for line in summary if "fit: done in" in line)
    assert ", 2 epochs; best val/acc " in done and " at epoch " in done
    assert f"resnet-lightning: fit: last checkpoint {run_dir / 'checkpoints' / 'last.ckpt'}" in summary
    (best,) = [line.rsplit("/", 1)[1] for line in summary if line.startswith("resnet-lightning: fit: best checkpoint ")]
    assert (run_dir / "checkpoints" / best).is_file()
    assert done.endswith(f" at epoch {int(best.split('-')[1]) + 1}")  # best-<epoch from 0>-<step>.ckpt
    test_line = next(line for line in summary if "fit: test it with: " in line)
    command = shlex.split(test_line.split("test it with: ", 1)[1])
    assert command[:2] == ["resnet-lightning", "test"] and command[-4:] == ["--run", "version_0", "--ckpt_path", "best"]
    tested = run_cli(*command[1:], cwd=tmp_path, env=OFFLINE)  # the command the summary gives does what it says
    assert tested.returncode == 0, tested.stderr
    assert "test/acc" in tested.stdout
    assert f"test: run {run_dir} (" in tested.stderr
    assert "continue it with: resnet-lightning fit " in result.stderr


@pytest.mark.parametrize("switch", [["--verbose"], []], ids=["--verbose", "RESNET_LIGHTNING_DEBUG"])
def test_verbose_or_the_debug_switch_shows_lightnings_notices(tmp_path: Path, switch: list[str]) -> None:
    env = dict(OFFLINE, **({} if switch else {"RESNET_LIGHTNING_DEBUG": "1"}))
    result = run_cli("fit", *switch, *TINY, "--trainer.fast_dev_run", "1", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "GPU available" in result.stderr and "Seed set to" in result.stderr
    assert "No seed found, seed set to 0" in result.stderr  # TINY gives no seed_everything
    assert "--verbose" not in result.stderr  # taken off before LightningCLI parses the line


def test_a_block_without_residual_structure_is_warned_about_once_without_a_file_path(
    tmp_path: Path, plugin_sites: dict[str, Path]
) -> None:
    # rl_test_block does not state its branch/shortcut/merge: the residual-ratio and gradient-flow
    # monitors skip it, each saying so (at every one of their steps before this change, with a path into torch).
    monitors = []
    for name in ("ResidualBranchMonitor", "GradientFlowMonitor"):
        monitors += [f"--trainer.callbacks+=resnet_lightning.callbacks.{name}", "--trainer.callbacks.every_n_steps=1"]
    env = dict(OFFLINE, PYTHONPATH=os.pathsep.join([str(plugin_sites["rl-test-plugin"]), os.environ.get("PYTHONPATH", "")]))
    result = run_cli("fit", *TINY, "--model.block", "rl_test_block", *FEW, "--trainer.max_epochs", "2", *monitors,
                     cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "do not define branch(x)" in line]
    assert any("residual ratio: skipping 3 of 3 blocks" in line for line in warned)
    assert any("gradient flow: skipping 3 of 3 blocks" in line for line in warned)
    assert all(line.startswith("resnet-lightning: warning: ") for line in warned)
    assert len(warned) == len(set(warned))
    assert ".py:" not in result.stderr and "return func(" not in result.stderr


def test_quiet_console_drops_library_deprecations_keeps_ours_once_and_restores_everything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    levels = [logging.getLogger(name).level for name in LIGHTNING_LOGGERS]
    show = warnings.showwarning
    with QuietConsole(verbose=False):
        assert all(logging.getLogger(name).level >= logging.WARNING for name in LIGHTNING_LOGGERS)
        for module in ("some_library._pytree", "resnet_lightning.models", "resnet_lightning.models"):
            warnings.warn_explicit("old API", DeprecationWarning, f"/x/{module.replace('.', '/')}.py", 21, module=module, registry={})
        warnings.warn_explicit("few workers", UserWarning, "/venv/site-packages/lightning/loader.py", 3, module="lightning.loader")
    err = capsys.readouterr().err
    assert err.splitlines() == ["resnet-lightning: warning: old API", "resnet-lightning: warning: few workers (from lightning)"]
    assert [logging.getLogger(name).level for name in LIGHTNING_LOGGERS] == levels
    assert warnings.showwarning is show


def test_the_progress_bar_is_there_when_asked_for_where_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    # The default (no bar) is only a default: asked for, Lightning's bar draws as before.
    result = run_cli("fit", *TINY, *FEW, "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "true", cwd=tmp_path, env=OFFLINE)
    assert result.returncode == 0, result.stderr
    assert "it/s" in result.stdout + result.stderr
    assert "v_num" not in result.stdout + result.stderr  # the logger's version (v_num=on_0) said nothing to a user
    # A bar configured as a callback (refresh_rate, ...) is a bar asked for too: not an error that the default turned it off.
    bar = ["--trainer.callbacks+=lightning.pytorch.callbacks.TQDMProgressBar", "--trainer.callbacks.refresh_rate=1"]
    result = run_cli("fit", *TINY, "--trainer.fast_dev_run", "1", *bar, cwd=tmp_path, env=OFFLINE)
    assert result.returncode == 0, result.stderr
    assert "it/s" in result.stdout + result.stderr
    assert len(_lines(result.stderr, "resnet-lightning: epoch 1/1 ")) == 1  # written through the bar, once


def test_a_wandb_run_is_one_line_naming_its_offline_directory(tmp_path: Path) -> None:
    config = str(ROOT / "configs" / "wandb" / "logger.yaml")
    result = run_cli("fit", "--config", config, *TINY, *FEW, "--trainer.max_epochs", "1", cwd=tmp_path, env=OFFLINE)
    assert result.returncode == 0, result.stderr
    (line,) = _lines(result.stderr, "resnet-lightning: W&B: ")
    (offline_run,) = (tmp_path / RUN_NAME / "version_0" / "wandb").glob("offline-run-*")
    assert line == f"resnet-lightning: W&B: offline run {offline_run} (upload it with `wandb sync {offline_run}`)"
    assert "wandb:" not in result.stderr  # neither its banner nor its end-of-run lines
    assert _lines(result.stderr, "resnet-lightning: model: cifar_resnet")  # ArchitectureSummary's line, ours
