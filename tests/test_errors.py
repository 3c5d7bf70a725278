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

from resnet_lightning.cli import cli_main

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
    "unreadable_data_dir": (["fit", "--data", "CIFAR10DataModule", "--data.data_dir", "noread"],
                            ["noread is not readable", "permission denied", "chmod"]),
    "yaml_syntax": (["fit", "--config", "bad.yaml"], ["bad.yaml, line 4, column 8", "YAML syntax error"]),
    "binary_config": (["fit", "--config", "binary.yaml"], ["binary.yaml: not a text file", "0x81"]),
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
    (tmp / "noread" / "cifar-10-batches-py").mkdir(parents=True)
    (tmp / "noread").chmod(0)
    yield tmp
    (tmp / "noread").chmod(0o755)


# Run in a fresh process: the whole process's stderr is checked (and the data
# directory needs the dropped capabilities, which only a new process can have).
IN_SUBPROCESS = ("batch_size_0", "yaml_syntax", "unreadable_data_dir", "truncated_checkpoint")


@pytest.fixture(scope="session")
def outcomes(workdir: Path) -> dict[str, Future]:
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {case: pool.submit(_run, CASES[case][0], workdir) for case in IN_SUBPROCESS}
    futures["debug"] = pool.submit(_run, ["fit", "--model.label_smoothing", "1.5"], workdir, {"RESNET_LIGHTNING_DEBUG": "1"})
    good_run = ["fit", *TINY, "--trainer.fast_dev_run", "1", "--trainer.enable_progress_bar", "false"]
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
