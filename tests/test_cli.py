"""The real `resnet-lightning` command, end to end on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning.pytorch.plugins.precision import MixedPrecision

from resnet_lightning.cli import cli_main
from resnet_lightning.data import DigitsDataModule

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "configs" / "digits.yaml")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--trainer.logger", "false"]
TINY_MODEL = ["--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}"]


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m resnet_lightning ARGS`` in a fresh process (how DDP relaunches it too)."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "resnet_lightning", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.mark.slow
def test_digits_main_job_fit_then_test_reaches_97_percent(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    fit = cli_main(["fit", "--config", DIGITS, *QUIET])
    ckpt_dir = tmp_path / "digits-cifar_resnet20" / "version_0" / "checkpoints"
    assert Path(fit.trainer.checkpoint_callback.best_model_path).parent == ckpt_dir
    # last.ckpt is the final state (epoch 15 of 15), whether or not val/acc improved at the end.
    last = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=False, mmap=True)
    assert (last["epoch"], last["global_step"]) == (14, fit.trainer.global_step)

    # A new CLI (as a new process would be) finds the best checkpoint through last.ckpt.
    test = cli_main(["test", "--config", DIGITS, "--ckpt_path", "best", *QUIET])
    assert test.trainer.ckpt_path == fit.trainer.checkpoint_callback.best_model_path
    accuracy = test.trainer.callback_metrics["test/acc"].item()
    assert accuracy >= 0.97, f"digits test accuracy {accuracy:.4f} < 0.97"

    # `test` with no --ckpt_path after a fit evaluates the fit's best checkpoint, not a fresh model.
    default = cli_main(["test", "--config", DIGITS, *QUIET])
    assert default.trainer.ckpt_path == test.trainer.ckpt_path
    assert default.trainer.callback_metrics["test/acc"].item() == accuracy


def test_print_config_shows_the_composed_config(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--config", DIGITS, "--config", str(ROOT / "configs/model/cifar_resnet56.yaml"), "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "arch: cifar_resnet56" in printed  # the later config wins
    assert "milestones" in printed and "DigitsDataModule" in printed


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--data", "CIFAR10DataModule"], "batch_size: 128\n    num_workers: 4\n"),  # CIFAR's own, not Digits'
        (["--data", "CIFAR10DataModule", "--data.batch_size", "32"], "batch_size: 32\n    num_workers: 4\n"),
        ([], "batch_size: 64\n    num_workers: 0\n"),  # the default DataModule keeps its own
    ],
)
def test_a_named_datamodule_starts_from_its_own_defaults(capsys, args, expected) -> None:
    # jsonargparse#460 carried the default DataModule's values over to the named one.
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *args, "--print_config"])
    assert exit_info.value.code == 0
    assert expected in capsys.readouterr().out


def test_every_config_parses(tmp_path) -> None:
    data = sorted((ROOT / "configs" / "data").glob("*.yaml"))
    models = sorted((ROOT / "configs" / "model").glob("*.yaml"))
    trainers = sorted((ROOT / "configs" / "trainer").glob("*.yaml"))
    assert data and models and trainers
    for model in models:
        for config in ([data[0], model, trainers[0]], [model]):
            args = ["fit", *[a for c in config for a in ("--config", str(c))], "--print_config"]
            with pytest.raises(SystemExit) as exit_info:
                cli_main(args)
            assert exit_info.value.code == 0, config


def test_unknown_architecture_is_one_readable_line(tmp_path) -> None:
    result = run_cli("fit", "--model.arch", "resnet5O", "--trainer.fast_dev_run", "true", cwd=tmp_path)
    assert result.returncode == 1
    assert "unknown architecture 'resnet5O'; did you mean 'resnet50'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_option_value_names_the_option(tmp_path) -> None:
    result = run_cli("fit", "--trainer.max_epochs", "many", cwd=tmp_path)
    assert result.returncode == 2
    assert "max_epochs" in result.stderr and "many" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_dataset_names_the_path(tmp_path) -> None:
    missing = tmp_path / "no-such-dir"
    result = run_cli(
        "fit", "--data", "CIFAR10DataModule", "--data.data_dir", str(missing), "--trainer.fast_dev_run", "true",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert str(missing) in result.stderr and "download" in result.stderr
    assert "Traceback" not in result.stderr


def test_bf16_mixed_on_cpu(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = cli_main(["fit", *TINY_MODEL, "--trainer.precision", "bf16-mixed", "--trainer.max_steps", "3",
                    "--trainer.limit_val_batches", "1", "--trainer.accelerator", "cpu", *QUIET])
    plugin = cli.trainer.precision_plugin
    assert isinstance(plugin, MixedPrecision) and plugin.precision == "bf16-mixed" and plugin.device == "cpu"
    assert cli.trainer.global_step == 3
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss_step"])


@pytest.mark.slow
@pytest.mark.parametrize("on_device", ["false", "true"])
def test_ddp_two_cpu_processes_split_the_data(tmp_path, on_device) -> None:
    result = run_cli(
        "fit", *TINY_MODEL, "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
        "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "2", "--data.on_device", on_device, *QUIET,
        "--checkpoint.dirpath", str(tmp_path / "ckpt"), "--verbose", cwd=tmp_path,  # --verbose: Lightning's notices
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MEMBER: 2/2" in result.stderr + result.stdout
    checkpoint = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    # Each of the 2 ranks sees half of the digits training split (DistributedSampler pads
    # to an even split): one epoch is ceil(ceil(n / 2) / batch) steps, about half of one process's.
    digits = DigitsDataModule()
    digits.setup("fit")
    per_rank = -(-len(digits.train_set) // 2)
    assert checkpoint["global_step"] == -(-per_rank // digits.batch_size)


KILLER = """
import os, signal
import lightning as L

class KillAtStep(L.Callback):
    '''SIGKILL this process once training reaches `step`: no cleanup, no final checkpoint.'''
    def __init__(self, step: int):
        self.step = step
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tmp_path) -> None:
    (tmp_path / "killer.py").write_text(KILLER)
    (tmp_path / "kill.yaml").write_text(
        "trainer:\n  callbacks:\n    - class_path: killer.KillAtStep\n      init_args: {step: 30}\n"
    )
    env = {"PYTHONPATH": str(tmp_path)}
    common = ["fit", "--config", DIGITS, *TINY_MODEL, "--trainer.max_epochs", "3", *QUIET]

    reference = run_cli(*common, "--checkpoint.dirpath", "reference", cwd=tmp_path, env=env)
    assert reference.returncode == 0, reference.stderr[-3000:]

    killed = run_cli(*common, "--checkpoint.dirpath", "resumed", "--config", "kill.yaml", cwd=tmp_path, env=env)
    assert killed.returncode == -9  # SIGKILL: the process really died mid-epoch
    interrupted = torch.load(tmp_path / "resumed" / "last.ckpt", map_location="cpu", weights_only=False)
    assert 0 < interrupted["global_step"] < 30

    resumed = run_cli(*common, "--checkpoint.dirpath", "resumed", "--ckpt_path", "last", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    expected = torch.load(tmp_path / "reference" / "last.ckpt", map_location="cpu", weights_only=False)
    actual = torch.load(tmp_path / "resumed" / "last.ckpt", map_location="cpu", weights_only=False)
    assert actual["global_step"] == expected["global_step"]
    for name, tensor in expected["state_dict"].items():
        torch.testing.assert_close(actual["state_dict"][name], tensor, rtol=0, atol=0, msg=name)


def test_console_script_and_module_entry(tmp_path) -> None:
    script = Path(sys.executable).with_name("resnet-lightning")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    help_text = " ".join(result.stdout.split())  # argparse re-wraps the description
    assert result.returncode == 0 and "{fit,validate,test,predict}" in help_text
    assert "Other commands, each with its own --help: plugins (list" in help_text
    for command in ("analyze", "dashboard", "plugins"):
        extra = subprocess.run([str(script), command, "--help"], capture_output=True, text=True, timeout=120)
        assert extra.returncode == 0 and f"resnet-lightning {command}" in extra.stdout, extra.stderr
    module = run_cli("fit", "--help", cwd=tmp_path)
    assert module.returncode == 0 and "--model.arch" in module.stdout and "--checkpoint.dirpath" in module.stdout


def test_jsonargparse_460_is_still_there_so_the_double_parse_stays() -> None:
    """Fences ``ResNetLightningCLI._default_data_to_the_chosen_class`` (a second parse of the command line).

    jsonargparse carries the default class's values over to the class the user names
    (jsonargparse#460). When this test fails, jsonargparse has fixed it: delete the
    workaround (and this test), and the double parse with it.
    """
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningDataModule

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, "data")
    parser.set_defaults({"data": {"class_path": "resnet_lightning.data.DigitsDataModule"}})
    chosen = parser.parse_args(["--data", "CIFAR10DataModule"]).data
    assert chosen.class_path == "resnet_lightning.data.CIFAR10DataModule"
    # Digits' batch_size and num_workers, not CIFAR-10's own 128 and 4: the bug is still there.
    assert (chosen.init_args.batch_size, chosen.init_args.num_workers) == (64, 0)
