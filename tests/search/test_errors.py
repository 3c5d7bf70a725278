"""Every mistake in a search file or its storage is one line naming the value, what was expected and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from resnet_lightning.cli import cli_main

from .helpers import tiny_search


def search_error(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as stop:
        cli_main(["search", *args])
    assert stop.value.code == 1
    err = capsys.readouterr().err.strip()
    # "resnet-lightning search: error: ..." (or "resnet-lightning: error: search: ..."): one line, no traceback
    assert len(err.splitlines()) == 1 and err.startswith("resnet-lightning") and "error: " in err and "search" in err, err
    return err


SPACE = {"model.block": {"type": "categorical", "choices": ["basic", "plain"]}}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"sapce": SPACE}, ["'sapce'", "did you mean 'space'"]),
        ({"space": {"model.block": {"type": "choice", "choices": ["basic"]}}}, ["'choice'", "categorical, int, float"]),
        ({"space": {"model.optimizer.init_args.lr": {"type": "float", "low": 0.3, "high": 0.01}}}, ["lr", "low", "high"]),
        ({"space": {"model.optimizer.init_args.lr": {"type": "float", "low": 0.01, "hi": 0.3}}}, ["'hi'", "high"]),
        ({"space": {"model.block": {"type": "categorical", "choices": ["basic", "prect"]}}}, ["'prect'", "did you mean 'preact'"]),
        ({"space": {"model.blok": {"type": "categorical", "choices": ["basic"]}}}, ["model.blok", "fit --help"]),
        ({"configs": ["missing.yaml"]}, ["missing.yaml", "relative to"]),
        ({"objectives": {"val/acc": "max"}}, ["'max'", "maximize or minimize"]),
        ({"sampler": {"name": "tpe", "n_startup": 3}}, ["'n_startup'", "n_startup_trials"]),
        ({"pruner": "medain"}, ["'medain'", "did you mean 'median'"]),
        ({"objectives": {"val/acc": "maximize", "macs": "minimize"}}, ["pruner median", "2 objectives", "pruner: none"]),
    ],
)
def test_search_file_mistakes(tmp_path: Path, capsys, changes: dict, expected: list[str]) -> None:
    search = tiny_search(tmp_path / "bad.yaml", **changes)
    err = search_error(capsys, "--config", str(search), "--n_trials", "1", "--output", str(tmp_path / "out"))
    for text in expected:
        assert text in err
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_missing_search_file_and_no_stop_condition(tmp_path: Path, capsys) -> None:
    assert "nowhere.yaml does not exist" in search_error(capsys, "--config", str(tmp_path / "nowhere.yaml"))
    err = search_error(capsys, "--config", str(tiny_search(tmp_path / "s.yaml")), "--output", str(tmp_path / "out"))
    assert "--n_trials N or --timeout S" in err


def test_unreachable_storage_is_one_line_without_a_hang(tmp_path: Path, capsys) -> None:
    search = tiny_search(tmp_path / "s.yaml")
    err = search_error(capsys, "--config", str(search), "--n_trials", "1", "--storage", "postgresql://user:secret@127.0.0.1:9/optuna")
    assert "cannot open storage postgresql://user:***@127.0.0.1:9/optuna" in err and "server runs" in err
    assert "secret" not in err


def test_summary_of_a_study_that_does_not_exist(tmp_path: Path, capsys) -> None:
    search = tiny_search(tmp_path / "s.yaml")
    err = search_error(capsys, "--config", str(search), "--summary", "--output", str(tmp_path / "empty"))
    assert "no study 'tiny'" in err and "--output" in err
