"""``resnet-lightning export``'s options are checked before anything is loaded: one line, exit 2."""

from __future__ import annotations

import pytest

from resnet_lightning.cli import cli_main


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--input_size", "0"], "argument --input_size: '0' is not a positive whole number of pixels, e.g. 32"),
        (["--input_size", "-3"], "argument --input_size: '-3' is not a positive whole number of pixels"),
        (["--input_size", "3.5"], "argument --input_size: '3.5' is not a positive whole number"),
        (["--tolerance", "-1"], "argument --tolerance: '-1' is not a number >= 0, e.g. 1e-4"),
        (["--tolerance", "nan"], "argument --tolerance: 'nan' is not a number >= 0"),
        (["--format", "onnxx"], "invalid choice: 'onnxx'"),
    ],
)
def test_bad_export_options_are_one_line(args: list[str], expected: str, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_main(["export", "--ckpt_path", str(tmp_path / "never_read.ckpt"), *args])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("resnet-lightning: error: export: ")
    assert expected in err
