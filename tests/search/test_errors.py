"""Every mistake in a search file or its storage is one line naming the value, what was expected and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

from resnet_lightning.cli import cli_main
from resnet_lightning.errors import UsageError
from resnet_lightning.search.command import build_parser
from resnet_lightning.search.config import load_search_config

from .helpers import GOOD, ROOT, journal_study, start_search, tiny_search


def search_error(capsys, *args: str, code: int = 2) -> str:
    with pytest.raises(SystemExit) as stop:
        cli_main(["search", *args])
    assert stop.value.code == code
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
        ({"configs": ["."]}, ["configs: . is a directory"]),
        ({"objectives": {"val/acc": "max"}}, ["'max'", "maximize or minimize"]),
        ({"sampler": {"name": "tpe", "n_startup": 3}}, ["'n_startup'", "n_startup_trials"]),
        ({"pruner": "medain"}, ["'medain'", "did you mean 'median'"]),
        ({"objectives": {"val/acc": "maximize", "macs": "minimize"}}, ["pruner median", "2 objectives", "pruner: none"]),
        # Distributions Optuna would refuse, or take as something else than written.
        ({"space": {"model.arch_kwargs.depth": {"type": "int", "low": 8, "high": 56, "step": 0}}}, ["depth", "step=0", "step > 0"]),
        ({"space": {"model.optimizer.init_args.lr": {"type": "float", "low": 0.1, "high": 0.3, "step": 0}}}, ["step=0", "step > 0"]),
        ({"space": {"model.arch_kwargs.depth": {"type": "int", "low": 0, "high": 56, "log": True}}}, ["log: true needs low > 0", "low=0"]),
        ({"space": {"model.optimizer.init_args.lr": {"type": "float", "low": 0.1, "high": 0.3, "log": "false"}}}, ["log='false'", "true or false"]),
        ({"space": {"model.arch_kwargs.depth": {"type": "int", "low": 8, "high": 57, "step": 6}}}, ["high=57", "steps of 6", "high: 56"]),
        ({"space": {"model.optimizer.init_args.lr": {"type": "float", "low": 0.1, "high": float("inf")}}}, ["high=inf", "finite"]),
        ({"space": {"model.optimizer.init_args.lr": {"type": "float", "low": 0.1, "high": 0.5, "step": 0.1, "log": True}}}, ["step and log"]),
        ({"space": {"model.block": {"type": "categorical", "choices": []}}}, ["model.block", "non-empty list"]),
        ({"space": {"model.block": {"type": "categorical", "choices": ["basic", "plain", "basic"]}}}, ["'basic' is given twice"]),
        ({"space": {"model.arch_kwargs.depth": {"type": "int", "low": None, "high": 20}}}, ["low=None", "an integer"]),
        ({"enqueue": [{"model.block": "prect"}]}, ["enqueue: model.block='prect'", "choices: basic, plain, se_basic"]),
        ({"enqueue": [{"model.optimizer.init_args.lr": 5.0}]}, ["lr=5.0", "1e-05 to 0.3, log"]),
        # Options Optuna checks only when it uses them: refused before the study exists.
        ({"sampler": {"name": "tpe", "n_startup_trials": "5"}}, ["sampler tpe", "Optuna refused"]),
        ({"pruner": {"name": "median", "n_warmup_steps": "1"}}, ["pruner median", "Optuna refused"]),
        ({"sampler": {"name": "nsga2", "population_size": 1}, "pruner": "none"}, ["sampler nsga2", "population_size"]),
        # Stop conditions, seed and name in the file are checked as the same options on the command line are.
        ({"n_trials": 0}, ["n_trials: 0", "integer >= 1"]),
        ({"n_trials": 2.5}, ["n_trials: 2.5", "integer >= 1"]),
        ({"timeout": -5}, ["timeout: -5", "seconds > 0"]),
        ({"sampler": {"name": "tpe", "seed": -3}}, ["seed: -3", "0 to 4294967295"]),
        ({"study": ["a", "b"]}, ["study: ['a', 'b']", "is not a name"]),
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
    err = search_error(capsys, "--config", str(search), "--n_trials", "1", "--storage", "postgresql://user:secret@127.0.0.1:9/optuna", code=1)
    assert "cannot open storage postgresql://user:***@127.0.0.1:9/optuna" in err and "server runs" in err
    assert "secret" not in err


def test_summary_of_a_study_that_does_not_exist(tmp_path: Path, capsys) -> None:
    search = tiny_search(tmp_path / "s.yaml")
    err = search_error(capsys, "--config", str(search), "--summary", "--output", str(tmp_path / "empty"))
    assert "no study 'tiny'" in err and "--output" in err


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--n_trials", "0", "0 is not a number of trials; expected an integer >= 1"),
        ("--n_trials", "-1", "-1 is not a number of trials"),
        ("--n_trials", "2.5", "'2.5' is not a number of trials"),
        ("--timeout", "-5", "-5.0 is not a time limit; expected a number of seconds > 0"),
        ("--timeout", "nan", "nan is not a time limit"),
        ("--seed", "-1", "-1 is not a seed; expected an integer from 0 to 4294967295"),
        ("--study", "", "an empty study name"),
    ],
)
def test_command_line_values_are_checked_before_anything_runs(tmp_path: Path, capsys, option: str, value: str, expected: str) -> None:
    search = tiny_search(tmp_path / "s.yaml")
    err = search_error(capsys, "--config", str(search), "--output", str(tmp_path / "out"), option, value, code=2)
    assert f"argument {option}: {expected}" in err and "search --help" in err
    assert not (tmp_path / "out").exists()


def test_an_unknown_option_is_one_usage_line(tmp_path: Path, capsys) -> None:
    search = tiny_search(tmp_path / "s.yaml")
    err = search_error(capsys, "--config", str(search), "--bogus", code=2)
    assert "search: unrecognized arguments: --bogus" in err and "resnet-lightning search --help" in err
    # The search parser's own error(), not argparse patched for the whole process.
    with pytest.raises(UsageError, match="^search: unrecognized arguments: --bogus; see `resnet-lightning search --help`$"):
        build_parser().parse_args(["--config", str(search), "--bogus"])


def test_files_and_places_that_cannot_be_used(tmp_path: Path, capsys) -> None:
    search = tiny_search(tmp_path / "s.yaml")
    (tmp_path / "taken").write_text("a file")
    err = search_error(capsys, "--config", str(search), "--n_trials", "1", "--output", str(tmp_path / "taken"))
    assert "--output" in err and "taken is a file" in err
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00\x01")
    assert "is not text" in search_error(capsys, "--config", str(tmp_path / "binary.yaml"))
    assert "is a directory" in search_error(capsys, "--config", str(tmp_path))
    (tmp_path / "list.yaml").write_text("- space\n")
    assert "expected a mapping" in search_error(capsys, "--config", str(tmp_path / "list.yaml"))
    # An alias bomb (9^7 leaves once expanded) under fixed: refused before it is expanded, at once.
    bomb = "fixed:\n  a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"  {k}: &{k} [*{j}, *{j}, *{j}, *{j}, *{j}, *{j}, *{j}, *{j}, *{j}]\n" for j, k in zip("abcdef", "bcdefg"))
    (tmp_path / "bomb.yaml").write_text(bomb)
    assert "bomb.yaml: not loaded: the YAML expands to more than 100,000 values" in search_error(
        capsys, "--config", str(tmp_path / "bomb.yaml"))
    # A summary of nothing reads; it creates no journal (nor its directory).
    search_error(capsys, "--config", str(search), "--summary", "--output", str(tmp_path / "none"))
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        ("sqlite://", "memory"),  # each trial's own process would see an empty database
        ("sqlite:///:memory:", "memory"),
        ("postgres://user:secret@localhost/optuna", "unknown database kind 'postgres'"),
        ("mongodb://localhost/optuna", "unknown database kind 'mongodb'"),
        ("postgresql://user:secret@localhost:port/optuna", "not a database URL"),
    ],
)
def test_storage_urls_that_cannot_hold_a_study(tmp_path: Path, capsys, storage: str, expected: str) -> None:
    search = tiny_search(tmp_path / "s.yaml")
    err = search_error(capsys, "--config", str(search), "--n_trials", "1", "--storage", storage, "--output", str(tmp_path / "o"), code=1)
    assert expected in err and "sqlite:///" in err and "secret" not in err


def test_an_objective_no_fit_logs_ends_the_search_after_the_first_trial(tmp_path: Path) -> None:
    search = tiny_search(tmp_path / "s.yaml", objectives={"val/accuracy": "maximize"}, pruner="none", enqueue=[GOOD])
    search.write_text(search.read_text().replace(
        "trainer.max_epochs: 2", "trainer.max_epochs: 1\n  trainer.limit_train_batches: 3\n  trainer.limit_val_batches: 2"))
    worker = start_search("--config", str(search), "--n_trials", "3", "--output", "out", cwd=tmp_path)
    out, _ = worker.communicate(timeout=240)
    assert worker.returncode == 2, out  # a mistake in the search file, found by its first trial
    last = out.strip().splitlines()[-1]
    assert last.startswith("resnet-lightning: error: search: 'val/accuracy' (objectives: in") and "val/acc," in last, out
    assert "Traceback" not in out
    study = journal_study(tmp_path / "out" / "study.journal")
    assert [t.state for t in study.trials] == [TrialState.FAIL]  # one trial ran, not three
    assert "'val/accuracy'" in study.trials[0].user_attrs["fail_reason"]


def test_a_damaged_journal_or_a_file_that_is_no_journal_is_refused_untouched(tmp_path: Path, capsys) -> None:
    search = tiny_search(tmp_path / "s.yaml")
    (tmp_path / "out").mkdir()
    journal = tmp_path / "out" / "study.journal"
    journal.write_text('{"op_code": 0, "worker_id": "w", "study_name": "tiny", "directions": [2]}\n{"op_code": 4, "stu\n')
    for extra in (["--summary"], ["--n_trials", "1"]):
        err = search_error(capsys, "--config", str(search), "--output", str(tmp_path / "out"), *extra, code=1)
        assert f"journal file {journal} is damaged" in err and "line 2" in err
    before = search.read_text()  # a --storage naming the search file itself: never appended to
    err = search_error(capsys, "--config", str(search), "--n_trials", "1", "--storage", str(search), code=1)
    assert "not an Optuna journal (line 1" in err and search.read_text() == before


def test_an_sqlite_file_that_cannot_be_opened_says_why(tmp_path: Path, capsys) -> None:
    search = tiny_search(tmp_path / "s.yaml")
    for storage, expected in ((f"sqlite:///{tmp_path}/no/such/dir/study.db", "unable to open"), (f"sqlite:///{search}", "not a database")):
        err = search_error(capsys, "--config", str(search), "--n_trials", "1", "--storage", storage, "--output", str(tmp_path / "o"), code=1)
        assert "cannot open SQLite database" in err and expected in err and "server" not in err


def test_a_search_whose_trials_all_fail_alike_stops_and_exits_with_one_line(tmp_path: Path) -> None:
    # A fixed option every trial's fit refuses (here a weights file that is not there) is not the trials' parameters:
    # the search stops after three such failures and says why, instead of failing every trial and exiting 0.
    space = {"model.block": {"type": "categorical", "choices": ["basic", "plain"]},
             "model.optimizer.init_args.lr": {"type": "float", "low": 0.01, "high": 0.3, "log": True}}
    search = tiny_search(tmp_path / "s.yaml", pruner="none", space=space)
    search.write_text(search.read_text().replace(
        "trainer.max_epochs: 2", f"trainer.max_epochs: 1\n  model.arch_kwargs.depth: 8\n  model.weights: {tmp_path / 'gone.pth'}"))
    worker = start_search("--config", str(search), "--n_trials", "8", "--output", "out", cwd=tmp_path)
    out, _ = worker.communicate(timeout=240)
    assert worker.returncode == 1, out
    errors = [line for line in out.splitlines() if "error:" in line]
    assert errors == [out.strip().splitlines()[-1]], out
    assert "no trial of study 'tiny' succeeded" in errors[0] and "gone.pth does not exist" in errors[0]
    study = journal_study(tmp_path / "out" / "study.journal")
    assert len(study.trials) == 3 and all(t.state == TrialState.FAIL for t in study.trials)


def test_the_shipped_search_files_load() -> None:
    # Every check above passes the project's own search files (several objectives with NSGA-II among them).
    files = sorted((ROOT / "configs" / "search").glob("*.yaml"))
    assert files
    for path in files:
        assert load_search_config(path).space
