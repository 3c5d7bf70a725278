"""Reading a study: importance.csv/png (fANOVA and PED-ANOVA per objective), hypervolume.png, and --summary.

The study is a real Optuna study in a journal file whose trials carry made-up values
(accuracy driven by the block and the learning rate, MACs by the depth), so the
importances have something to find and no fit needs to run.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import optuna
import pytest

from resnet_lightning.cli import cli_main
from resnet_lightning.search.config import load_search_config

from .helpers import tiny_search

EVALUATORS = ("fanova", "ped_anova")


def made_up_study(cwd: Path, objectives: dict[str, str]) -> Path:
    """A search file and, in ``cwd/out/study.journal``, 12 completed trials of its space."""
    search_file = tiny_search(cwd / "s.yaml", objectives=objectives, pruner="none")
    search = load_search_config(search_file)
    journal = cwd / "out" / "study.journal"
    journal.parent.mkdir()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.create_study(storage=storage, study_name="tiny", directions=search.directions)
    for i in range(12):
        params = {"model.block": ["basic", "plain", "se_basic"][i % 3], "model.arch_kwargs.depth": [8, 9][i % 2],
                  "model.optimizer.init_args.lr": 10 ** (-4 + 3 * i / 11)}
        acc = 0.9 - 0.3 * (params["model.block"] == "plain") - 0.05 * abs(math.log10(params["model.optimizer.init_args.lr"]) + 1)
        macs = 1e6 * params["model.arch_kwargs.depth"]
        values = [acc, macs][: len(search.objectives)]
        study.add_trial(optuna.create_trial(params=params, distributions=search.space, values=values,
                                            user_attrs={"macs": macs}))
    return search_file


def summary(capsys, search_file: Path, cwd: Path) -> str:
    assert cli_main(["search", "--config", str(search_file), "--output", str(cwd / "out"), "--summary"]) is None
    return capsys.readouterr().out


def test_importances_name_every_dimension_for_every_objective_by_both_evaluators(tmp_path: Path, capsys) -> None:
    search_file = made_up_study(tmp_path, {"val/acc": "maximize", "macs": "minimize"})
    out = summary(capsys, search_file, tmp_path)
    with open(tmp_path / "out" / "importance.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    space = list(load_search_config(search_file).space)
    assert [r["parameter"] for r in rows] == space
    columns = [f"{o} {e}" for o in ("val/acc", "macs") for e in EVALUATORS]
    assert list(rows[0]) == ["parameter", *columns]
    for column in columns:
        assert sum(float(r[column]) for r in rows) == pytest.approx(1.0, abs=1e-6)  # each evaluator's shares sum to 1
    # MACs here depend on the depth alone: both evaluators find it
    assert max(rows, key=lambda r: float(r["macs fanova"]))["parameter"] == "model.arch_kwargs.depth"
    assert max(rows, key=lambda r: float(r["val/acc fanova"]))["parameter"] != "model.arch_kwargs.depth"
    for name in ("importance.png", "hypervolume.png", "pareto.png"):
        assert (tmp_path / "out" / name).read_bytes().startswith(b"\x89PNG")
    # --summary prints the trials, the front and the importances
    assert "Pareto front" in out and "not confirmed" in out
    assert "importances (fANOVA, PED-ANOVA" in out and all(key in out for key in space)


def test_one_objective_has_importances_but_no_hypervolume(tmp_path: Path, capsys) -> None:
    search_file = made_up_study(tmp_path, {"val/acc": "maximize"})
    summary(capsys, search_file, tmp_path)
    with open(tmp_path / "out" / "importance.csv", newline="") as f:
        assert list(next(csv.DictReader(f))) == ["parameter", "val/acc fanova", "val/acc ped_anova"]
    assert not (tmp_path / "out" / "hypervolume.png").exists()
