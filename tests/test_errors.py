"""Every user error through the real command prints one line, ``resnet-lightning: error: ...``, and no traceback.

Each case runs the real command line: most through ``cli_main`` in this process
(stderr captured, ``SystemExit`` expected), and one of each kind (an error while
parsing, in a config file, while building the classes, on the data directory, on a
checkpoint) as ``python -m resnet_lightning`` in a fresh process, where everything
the process writes to stderr counts, Lightning's own notices included. Those
processes start together, two at a time, once per session.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from resnet_lightning import refresh_plugins
from resnet_lightning.checkpoint_io import read_checkpoint
from resnet_lightning.cli import cli_main
from resnet_lightning.registry import PLUGINS_ENV

TINY = ["--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}"]
# Some cases need files; {tmp} is the directory the commands run in.
CASES: dict[str, tuple[list[str], list[str]]] = {
    # id: (arguments, what the one line must contain)
    "cifar_depth_21": (["fit", "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 21}"],
                       ["'cifar_resnet'", "depth=21", "try depth=20"]),
    "label_smoothing": (["fit", "--model.label_smoothing", "1.5"], ["label_smoothing=1.5", "[0, 1)", "--model.label_smoothing 0.1"]),
    "batch_size_0": (["fit", "--data.batch_size", "0"], ["batch_size=0", "--data.batch_size 128"]),
    "val_fraction": (["fit", "--data.val_fraction", "1.5"], ["val_fraction=1.5", "e.g. 0.1"]),
    "val_fraction_too_small": (["fit", "--data.val_fraction", "0.001"], ["val_fraction=0.001", "--data.val_fraction 0.006"]),
    "val_size": (["fit", "--data", "CIFAR10DataModule", "--data.val_size", "-1"], ["val_size=-1"]),
    "num_classes_in_arch_kwargs": (["fit", "--model.arch_kwargs", "{num_classes: 5}"],
                                   ["num_classes: 5", "remove them from arch_kwargs", "--model.num_classes"]),
    "misspelt_arch_kwarg": (["fit", "--model.arch_kwargs", "{dept: 56}"], ["dept=56", "Did you mean 'depth'?"]),
    # A dataset that is not there (and not to be downloaded): one line before any of Lightning's notices.
    "missing_mnist": (["fit", "--data", "MNISTDataModule", "--data.data_dir", "nodata"],
                      ["MNIST not found", "nodata", "--data.download true"]),
    "missing_cifar": (["test", "--data", "CIFAR10DataModule", "--data.data_dir", "nodata", "--ckpt_path", "untrained"],
                      ["cifar-10-batches-py not found", "--data.data_dir"]),
    "missing_imagenet": (["fit", "--data", "ImageNetDataModule", "--data.data_dir", "nodata"],
                         ["ImageNet not found", "has no train/ or val/ folder"]),
    "unreadable_data_dir": (["fit", "--data", "CIFAR10DataModule", "--data.data_dir", "noread"],
                            ["noread is not readable", "permission denied", "chmod"]),
    "yaml_syntax": (["fit", "--config", "bad.yaml"], ["bad.yaml, line 4, column 8", "YAML syntax error"]),
    "binary_config": (["fit", "--config", "binary.yaml"], ["binary.yaml: not a text file", "0x81"]),
    # Not a zip archive: torch's legacy unpickler failed with a KeyError or IndexError traceback.
    "text_checkpoint": (["test", *TINY, "--ckpt_path", "text.ckpt"], ["text.ckpt", "not a checkpoint written by torch.save"]),
    "noise_weights_file": (["fit", *TINY, "--model.weights", "noise.pt"], ["--model.weights", "noise.pt", "torch.save"]),
    "misspelt_verbose": (["fit", "--verbos"], ["--verbos is not an option", "did you mean --verbose?"]),
    "missing_config": (["fit", "--config", "missing.yaml"], ["--config missing.yaml: no such file", "{tmp}"]),
    "missing_checkpoint": (["fit", "--ckpt_path", "nothere.ckpt"], ["'nothere.ckpt' does not exist"]),
    "truncated_checkpoint": (["test", "--ckpt_path", "truncated.ckpt"], ["truncated.ckpt", "incomplete or corrupt"]),
    "data_class_typo": (["fit", "--data", "DigitModule"], ["--data DigitModule", "did you mean DigitsDataModule?"]),
    "optimizer_typo": (["fit", "--optimizer", "SDG"], ["--optimizer", "--model.optimizer SGD", "did you mean SGD, not SDG?"]),
    "model_optimizer_typo": (["fit", "--model.optimizer", "SDG"], ["--model.optimizer SDG", "did you mean SGD?"]),
    "scheduler_typo": (["fit", "--model.lr_scheduler", "CosineAnealingLR"], ["did you mean CosineAnnealingLR?"]),
    "misspelt_flag": (["fit", "--trainer.max_epohcs", "3"], ["--trainer.max_epohcs", "did you mean --trainer.max_epochs?"]),
    "abbreviated_flag": (["fit", "--trainer.max_epoch", "3"], ["--trainer.max_epoch is not an option", "did you mean --trainer.max_epochs?"]),
    "misspelt_data_option": (["fit", "--data.batch_sise", "3"], ["'batch_sise'", "did you mean batch_size?"]),
    "misspelt_command": (["fitt"], ["'fitt'", "did you mean fit?"]),
    "analyze_missing_checkpoint": (["analyze", "lesion", "--ckpt_path", "nothere.ckpt"], ["analyze:", "nothere.ckpt"]),
    "export_truncated_checkpoint": (["export", "--ckpt_path", "truncated.ckpt"], ["export:", "truncated.ckpt"]),
    "analyze_misspelt_analysis": (["analyze", "lesn"], ["analyze:", "invalid choice: 'lesn'", "resnet-lightning analyze --help"]),
    "dashboard_missing_argument": (["dashboard"], ["dashboard:", "required: --project"]),
    # Command-line and config values of the wrong type, out of range, or hostile (issue 17); braces doubled for format().
    "scheduler_division_by_zero": (["fit", *TINY, "--model.lr_scheduler", "CosineAnnealingLR", "--model.lr_scheduler.init_args.T_max", "0"],
                                   ["--model.lr_scheduler CosineAnnealingLR (T_max=0) fails at epoch 1", "ZeroDivisionError",
                                    "--model.lr_scheduler.help CosineAnnealingLR"]),
    "scheduler_rejects_value": (["fit", *TINY, "--model.lr_scheduler", "LinearLR", "--model.lr_scheduler.start_factor", "0"],
                                ["LinearLR (start_factor=0.0) fails when created", "Starting multiplicative factor"]),
    "scheduler_negative_lr": (["fit", *TINY, "--model.lr_scheduler", "ExponentialLR", "--model.lr_scheduler.gamma", "-1"],
                              ["ExponentialLR (gamma=-1.0) makes the learning rate -0.1 at epoch 1"]),
    "optimizer_rejects_value": (["fit", *TINY, "--model.optimizer", "SGD", "--model.optimizer.lr", "-1"],
                                ["--model.optimizer SGD (lr=-1.0): Invalid learning rate: -1.0", "--model.optimizer.help SGD"]),
    "arch_kwargs_empty_value": (["fit", "--model.arch", "cifar_resnet", "--model.arch_kwargs", '{"depth": }'],
                                ["depth=None", "depth has no value", "e.g. depth: 20"]),
    "arch_kwargs_string_for_int": (["fit", "--model.arch", "cifar_resnet", "--model.arch_kwargs", '{depth: "abc"}'],
                                   ["depth='abc'", "takes an int like its default 20"]),
    "arch_kwargs_no_colon": (["fit", "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth 56}"],
                             ["does not accept depth 56=None", "write depth: 56"]),
    "arch_kwargs_no_space": (["fit", "--model.arch_kwargs", "{depth:56, shortcut:B}"],
                             ["--model.arch_kwargs {{depth:56, shortcut:B}}", "space after each colon", "{{depth: 56, shortcut: B}}"]),
    "arch_kwargs_alias_bomb": (["fit", "--model.arch_kwargs", "{a: &a [x,x,x,x,x,x,x,x,x], " + ", ".join(
                                   f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdef", "bcdefg")) + "}"],
                               ["--model.arch_kwargs {{a: &a", "expands to more than 100,000 values"]),
    "config_alias_bomb": (["fit", "--config", "bomb.yaml"], ["bomb.yaml: not loaded", "expands to more than 100,000 values"]),
    "config_nested_flow": (["fit", "--config", "deep_flow.yaml"], ["deep_flow.yaml, line 1", "nesting depth", "a config is a few levels deep"]),
    "config_nested_block": (["fit", "--config", "deep_block.yaml"], ["deep_block.yaml: not loaded", "nested more than 100 levels deep"]),
    "int_as_quoted_string": (["fit", "--trainer.max_epochs", '"3"'], ['--trainer.max_epochs "3": expected a whole number', "without quotes"]),
    "int_as_float": (["fit", "--data.batch_size", "1.5"], ["--data.batch_size 1.5: expected a whole number"]),
    "bad_union_choice": (["fit", "--trainer.precision", "bf17"], ["--trainer.precision bf17: expected one of", "'bf16-mixed'",
                                                                  "did you mean bf16?"]),
    "bad_choice_in_class_option": (["fit", "--model.lr_scheduler", "torch.optim.lr_scheduler.ReduceLROnPlateau",
                                     "--model.lr_scheduler.mode", "foo"], ["--model.lr_scheduler.mode foo: expected one of 'min', 'max'"]),
    "ambiguous_class_name": (["fit", "--model.lr_scheduler", "ReduceLROnPlateau"],
                             ["Multiple subclasses with name ReduceLROnPlateau", "torch.optim.lr_scheduler.ReduceLROnPlateau"]),
    "bad_choice": (["fit", "--model.lr_scheduler_interval", "epoc"], ["epoc: expected one of 'epoch', 'step'", "did you mean epoch?"]),
    "linked_option": (["fit", "--model.num_classes", "3"], ["--model.num_classes is not an option of its own", "data.num_classes"]),
    "negative_max_epochs": (["fit", "--trainer.max_epochs", "-5"], ["--trainer options", "max_epochs", "-5"]),
    "accumulate_zero": (["fit", "--trainer.accumulate_grad_batches", "0"], ["--trainer.accumulate_grad_batches 0: must be 1 or more"]),
    "bad_strategy": (["fit", "--trainer.strategy", "foo"], ["--trainer options", "strategy='foo'"]),
    "seed_out_of_range": (["fit", "--seed_everything", "-1"], ["--seed_everything -1", "from 0 to 4294967295"]),
    "optimizer_flag_is_a_name": (["fit", "--optimizer", "Adam"], ["e.g. --model.optimizer Adam, which keeps"]),
    "root_dir_is_a_file": (["fit", *TINY, "--trainer.default_root_dir", "afile/runs"],
                           ["--trainer.default_root_dir afile/runs", "{tmp}/afile is a file, not a directory"]),
    "root_dir_name_too_long": (["fit", *TINY, "--trainer.default_root_dir", "x" * 300], ["is 300 bytes, over the filesystem's limit"]),
}


def _without_file_permission_override() -> None:
    """As root, drop the capabilities that let root read any file, so a mode-000 directory is unreadable."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH; PR_CAPBSET_DROP = 24
            if libc.prctl(24, capability, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "resnet_lightning", *args],
        cwd=cwd, env=dict(os.environ, WANDB_MODE="offline", **(env or {})), capture_output=True, text=True,
        timeout=300, preexec_fn=_without_file_permission_override,
    )


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("errors")
    (tmp / "bad.yaml").write_text("model:\n  arch: cifar_resnet\n  arch_kwargs: {depth: 8\ntrainer:\n  max_epochs: 1\n")
    (tmp / "binary.yaml").write_bytes(b"model:\x81\x00\xff\xfe" + bytes(range(256)))
    (tmp / "truncated.ckpt").write_bytes(b"PK\x03\x04" + b"\x00" * 60)  # the start of a zip, cut off
    (tmp / "text.ckpt").write_text("root:x:0:0:root:/root:/bin/bash\n")  # not a zip: torch reads it as a legacy pickle
    (tmp / "noise.pt").write_bytes(bytes((i * 151 + 7) % 256 for i in range(4096)))
    (tmp / "noread" / "cifar-10-batches-py").mkdir(parents=True)
    (tmp / "noread").chmod(0)
    (tmp / "afile").write_text("not a directory\n")
    (tmp / "bomb.yaml").write_text("model:\n  arch_kwargs:\n    a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"    {c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdef", "bcdefg")))  # 9^7 leaves
    (tmp / "deep_flow.yaml").write_text("model: {arch_kwargs: " + "[" * 20_000 + "]" * 20_000 + "}\n")
    (tmp / "deep_block.yaml").write_text("".join("  " * i + "a:\n" for i in range(200)))  # 200 > the limit of 100; 20,000 levels: 400 MB
    (tmp / "readonly").mkdir()
    (tmp / "readonly").chmod(0o555)
    yield tmp
    (tmp / "noread").chmod(0o755)
    (tmp / "readonly").chmod(0o755)


# Run in a fresh process: the whole process's stderr is checked (and the data
# directory needs the dropped capabilities, which only a new process can have).
IN_SUBPROCESS = ("batch_size_0", "yaml_syntax", "unreadable_data_dir", "truncated_checkpoint", "missing_mnist")


@pytest.fixture(scope="session")
def outcomes(workdir: Path) -> dict[str, Future]:
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {case: pool.submit(_run, CASES[case][0], workdir) for case in IN_SUBPROCESS}
    futures["debug"] = pool.submit(_run, ["fit", "--model.label_smoothing", "1.5"], workdir, {"RESNET_LIGHTNING_DEBUG": "1"})
    futures["readonly_cwd"] = pool.submit(_run, ["fit", *TINY], workdir / "readonly")
    # --verbose: Lightning's notices are not shown by default (tests/test_console.py); asked for, they come out in order.
    good_run = ["fit", *TINY, "--trainer.fast_dev_run", "1", "--trainer.enable_progress_bar", "false", "--verbose"]
    futures["good_run"] = pool.submit(_run, good_run, workdir)
    yield futures
    pool.shutdown(cancel_futures=True)


@pytest.mark.parametrize("case", list(CASES))
def test_a_user_error_is_one_line_naming_the_value(
    case: str, outcomes: dict[str, Future], workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    if case in IN_SUBPROCESS:
        result = outcomes[case].result()
        code, stderr = result.returncode, result.stderr
    else:
        monkeypatch.chdir(workdir)
        with pytest.raises(SystemExit) as exit_info:  # any other exception is a traceback for the user
            cli_main(CASES[case][0])
        code, stderr = exit_info.value.code, capsys.readouterr().err
    assert code not in (0, None), stderr
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("resnet-lightning: error: ")
    for part in CASES[case][1]:
        assert part.format(tmp=workdir) in line, line


def test_a_read_only_working_directory_is_one_line(outcomes: dict[str, Future], workdir: Path) -> None:
    result = outcomes["readonly_cwd"].result()  # capabilities dropped: root, too, may not write there
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"resnet-lightning: error: the working directory {workdir / 'readonly'}: cannot create the run directory "
        f"{workdir / 'readonly' / 'digits-cifar_resnet-d8'}: permission denied; run from a directory you can write to, "
        "or give one with --trainer.default_root_dir DIR"
    ]


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("accelerator", ["gpu", "cuda", "mps"])
def test_an_accelerator_the_machine_lacks_is_one_line(accelerator: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *TINY, "--trainer.accelerator", accelerator])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"resnet-lightning: error: --trainer.accelerator {accelerator}: this machine has no "
        f"{'GPU (CUDA or MPS)' if accelerator == 'gpu' else accelerator.upper()} that PyTorch can use (available: cpu); "
        "use --trainer.accelerator cpu, or auto to take what there is"
    ]


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``last.ckpt`` of the TINY network after one training step."""
    root = tmp_path_factory.mktemp("trained")
    cli_main(["fit", *TINY, "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar",
              "false", "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(root)])
    return next(root.glob("*/version_0/checkpoints/last.ckpt"))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("missing", "1 tensor(s) missing from the file (model.layer1.0.conv1.weight)"),
        ("unexpected", "1 unexpected tensor(s) in the file (model.extra.weight)"),
        ("shape", "model.fc.weight is [10, 32] in the file, [10, 64] here"),
    ],
)
@pytest.mark.parametrize("command", ["test", "fit"])
def test_a_checkpoint_of_another_network_names_the_tensors(
    change: str, expected: str, command: str, trained_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = read_checkpoint(trained_checkpoint)
    state = checkpoint["state_dict"]
    if change == "missing":
        del state["model.layer1.0.conv1.weight"]
    elif change == "unexpected":
        state["model.extra.weight"] = torch.zeros(3)
    else:
        state["model.fc.weight"] = torch.zeros(10, 32)
    torch.save(checkpoint, tmp_path / "other.ckpt")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli_main([command, *TINY, "--ckpt_path", str(tmp_path / "other.ckpt"), "--trainer.default_root_dir", str(tmp_path)])
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines  # before Lightning's notices: nothing else is said
    assert lines[0].startswith(f"resnet-lightning: error: checkpoint {tmp_path / 'other.ckpt'} does not fit this network")
    assert expected in lines[0]
    assert "saved by another version of the network" in lines[0]


def test_an_unknown_block_says_what_the_plugin_switch_hides(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv(PLUGINS_ENV, "none")
    refresh_plugins()
    try:
        with pytest.raises(SystemExit):
            cli_main(["fit", "--model.block", "wide_basic"])
    finally:
        monkeypatch.undo()
        refresh_plugins()
    line = capsys.readouterr().err.strip()
    assert "unknown block 'wide_basic'" in line
    assert f"'wide_basic' is installed (from wide-resnet) but hidden by {PLUGINS_ENV}=none" in line


def test_the_debug_switch_shows_the_traceback(outcomes: dict[str, Future]) -> None:
    result = outcomes["debug"].result()  # RESNET_LIGHTNING_DEBUG=1
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert "ModelConfigError: label_smoothing=1.5" in result.stderr


def test_what_a_good_run_says_before_training_is_not_lost(outcomes: dict[str, Future]) -> None:
    # The notices held back while the classes are built come out once they are, in order.
    result = outcomes["good_run"].result()
    assert result.returncode == 0, result.stderr
    assert "resnet-lightning: fit: run directory" in result.stderr
    assert "Seed set to" in result.stderr
    assert result.stderr.index("Seed set to") < result.stderr.index("run directory") < result.stderr.index("GPU available")


def test_a_fit_that_could_not_start_leaves_no_run_directory(outcomes: dict[str, Future], workdir: Path) -> None:
    # Runs after the cases above (and the good run, which keeps its directory).
    for future in outcomes.values():
        future.result()
    claimed = [run for run in workdir.glob("*/version_*") if {entry.name for entry in run.iterdir()} <= {"run.json"}]
    assert claimed == []
    assert list(workdir.glob("digits-cifar_resnet-d8/version_*/checkpoints"))  # the good run's are kept
