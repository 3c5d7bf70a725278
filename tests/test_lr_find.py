"""resnet-lightning lr_find: Lightning's Tuner on a fit's configuration, on digits, through the real command line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from resnet_lightning.cli import cli_main
from tests.fixtures_cli import DIGITS

TINY = ["--config", DIGITS, "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}"]


def test_lr_find_writes_its_plot_and_prints_the_suggestion_and_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "plots" / "lr.png"
    cli_main(["lr_find", *TINY, "--num_training", "20", "--output", str(plot), "--trainer.default_root_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    suggested = re.search(r"lr_find: suggested learning rate (\S+) ", err)
    assert suggested and 1e-6 <= float(suggested[1]) <= 1.0, err
    assert f"lr_find: use it with --model.optimizer.lr {suggested[1]}\n" in err
    assert "Finding best initial lr" not in err  # no bar refreshes where stderr is not a terminal
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.glob("digits-*"))  # no run, no checkpoint left


def test_lr_find_scales_the_batch_size_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli_main(["lr_find", *TINY, "--num_training", "5", "--batch_size", "power", "--max_trials", "2",
              "--output", str(tmp_path / "lr.png"), "--trainer.default_root_dir", str(tmp_path)])
    err = capsys.readouterr().err
    # From the config's 64, doubling: the second trial (128) fits on a CPU.
    assert "lr_find: the largest batch size found to fit in 2 trials from 64 is 128; use it with --data.batch_size 128" in err
    assert "lr_find: no suggestion: the loss did not fall over 5 steps" in err  # too few steps for Lightning's suggestion


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--min_lr", "0.1", "--max_lr", "0.01"], "lr_find: --min_lr 0.1 --max_lr 0.01 is not a range: need 0 < min_lr < max_lr"),
        (["--min_lr", "1", "--max_lr", "1"], "lr_find: --min_lr 1 --max_lr 1 is not a range"),
        (["--output", "lr.txt"], "lr_find: --output lr.txt: the plot is written as .png, .pdf or .svg"),
    ],
)
def test_a_bad_range_is_one_line_and_runs_nothing(
    options: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli_main(["lr_find", *TINY, *options, "--trainer.default_root_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1 and expected in err, err
    assert not list(tmp_path.iterdir())
