"""Confirming a front: each Pareto point retrained with K further seeds as ordinary fits, intervals in pareto.csv.

One tiny search (two enqueued 1-epoch trials, two objectives) with ``confirm: {seeds: 2}``
runs once for the module; the tests read what it left and run the command again.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState
from scipy import stats

from resnet_lightning.search.intervals import CHEAPEST, NOT_SHOWN, SHOWN, point_stats
from resnet_lightning.search.objectives import Objective
from resnet_lightning.search.outputs import variants

from .helpers import GOOD, finish, journal_study, start_search, tiny_search
from .test_errors import search_error

K = 2
QUICK = {
    "model.arch": "cifar_resnet",
    "trainer.max_epochs": 1,
    "trainer.limit_train_batches": 2,
    "trainer.limit_val_batches": 1,
    "trainer.enable_model_summary": False,
}
OBJECTIVES = {"val/acc": "maximize", "macs": "minimize"}


def confirmed_search(path: Path, **changes) -> Path:
    settings = {"fixed": QUICK, "objectives": OBJECTIVES, "sampler": {"name": "random", "seed": 0}, "pruner": "none",
                "enqueue": [GOOD, {**GOOD, "model.block": "plain"}], "n_trials": 2}
    return tiny_search(path, **{**settings, **changes})


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cwd = tmp_path_factory.mktemp("confirm")
    search = confirmed_search(cwd / "tiny.yaml", confirm={"seeds": K})
    log = finish(start_search("--config", str(search), "--output", "out", cwd=cwd))
    journal = cwd / "out" / "study.journal"
    return {"cwd": cwd, "search": search, "log": log, "study": journal_study(journal), "confirm": journal_study(journal, "tiny-confirm")}


def pareto_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "pareto.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_each_pareto_point_is_retrained_with_k_further_seeds_as_ordinary_fits(confirmed: dict) -> None:
    rows = pareto_rows(confirmed["cwd"] / "out")
    runs = confirmed["confirm"].get_trials(states=(TrialState.COMPLETE,))
    assert rows and len(runs) == K * len(rows), confirmed["log"][-3000:]
    for row in rows:
        trial = confirmed["study"].trials[int(row["number"])]
        own = yaml.safe_load((Path(trial.user_attrs["run_dir"]) / "config.yaml").read_text())["seed_everything"]
        mine = [r for r in runs if r.params["variant"] == f"trial-{trial.number:04d}"]
        seeds = []
        for run in mine:
            run_dir = Path(run.user_attrs["run_dir"])
            assert run_dir.is_relative_to(confirmed["cwd"] / "out" / "confirm" / "runs")
            assert (run_dir / "checkpoints" / "last.ckpt").is_file()  # a real fit
            config = yaml.safe_load((run_dir / "config.yaml").read_text())
            assert config["model"]["block"] == trial.params["model.block"]
            seeds.append(config["seed_everything"])
        assert sorted(seeds) == sorted({s for s in seeds}) and own not in seeds and len(seeds) == K


def test_pareto_csv_holds_intervals_that_scipy_gives_from_the_runs(confirmed: dict) -> None:
    runs = confirmed["confirm"].get_trials(states=(TrialState.COMPLETE,))
    for row in pareto_rows(confirmed["cwd"] / "out"):
        trial = confirmed["study"].trials[int(row["number"])]
        values = [trial.values[0]] + [max(r.user_attrs["history"]["val/acc"]) for r in runs
                                      if r.params["variant"] == f"trial-{trial.number:04d}"]
        assert int(row["seeds"]) == K + 1 == len(values)
        assert float(row["val/acc mean"]) == pytest.approx(np.mean(values))
        assert float(row["val/acc std"]) == pytest.approx(np.std(values, ddof=1))
        if np.std(values) > 0:
            low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
            assert (float(row["val/acc ci_low"]), float(row["val/acc ci_high"])) == pytest.approx((low, high))
        assert row["vs_cheaper"] in (SHOWN, NOT_SHOWN, CHEAPEST)


def test_best_yaml_keeps_the_seed_its_trial_ran_with(confirmed: dict) -> None:
    best = yaml.safe_load((confirmed["cwd"] / "out" / "best.yaml").read_text())
    trial = confirmed["study"].trials[0]
    run = yaml.safe_load((Path(trial.user_attrs["run_dir"]) / "config.yaml").read_text())
    assert best["seed_everything"] == run["seed_everything"] == 0


def test_best_yaml_keeps_the_seed_lightning_drew_when_the_config_said_true(tmp_path: Path) -> None:
    search = confirmed_search(tmp_path / "s.yaml", fixed={**QUICK, "seed_everything": True}, enqueue=[GOOD], n_trials=1)
    finish(start_search("--config", str(search), "--output", "out", cwd=tmp_path))
    trial = journal_study(tmp_path / "out" / "study.journal").trials[0]
    drawn = yaml.safe_load((Path(trial.user_attrs["run_dir"]) / "config.yaml").read_text())["seed_everything"]
    assert isinstance(drawn, int) and not isinstance(drawn, bool)
    kept = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())["seed_everything"]
    assert kept == drawn and not isinstance(kept, bool)  # not the config's `true`, which would draw another seed


def test_a_rerun_of_a_finished_confirmation_runs_nothing_new(confirmed: dict) -> None:
    before = len(confirmed["confirm"].trials)
    log = finish(start_search("--config", str(confirmed["search"]), "--output", "out", "--confirm", str(K), "--summary",
                              cwd=confirmed["cwd"]))
    assert "0 run(s) queued now" in log and "confirm: trial-" not in log
    assert len(journal_study(confirmed["cwd"] / "out" / "study.journal", "tiny-confirm").trials) == before
    assert f"over {K + 1} seeds" in log  # the summary prints the front with its intervals


def test_more_seeds_later_run_only_the_missing_ones_shared_by_two_workers(confirmed: dict) -> None:
    points = len(pareto_rows(confirmed["cwd"] / "out"))
    args = ("--config", str(confirmed["search"]), "--output", "out", "--confirm", str(K + 2))
    logs = [finish(worker) for worker in [start_search(*args, cwd=confirmed["cwd"]) for _ in range(2)]]
    assert any(f"run(s) queued now, {K * points} finished" in log for log in logs)
    confirm = journal_study(confirmed["cwd"] / "out" / "study.journal", "tiny-confirm")
    done = [(t.params["variant"], t.params["seed"]) for t in confirm.get_trials(states=(TrialState.COMPLETE,))]
    assert len(done) == len(set(done)) == (K + 2) * points  # each point and seed once, whichever worker ran it
    assert sorted(seed for _, seed in done) == sorted([1, 2, 3, 4] * points)
    assert {int(row["seeds"]) for row in pareto_rows(confirmed["cwd"] / "out")} == {K + 3}


def test_vs_cheaper_says_whether_an_interval_clears_every_cheaper_point() -> None:
    objectives = [Objective("val/acc", "maximize"), Objective("macs", "minimize")]
    dist = {"model.block": CategoricalDistribution(["a", "b", "c"])}
    front = [optuna.create_trial(values=[acc, macs], params={"model.block": name}, distributions=dist)
             for name, acc, macs in (("a", 0.80, 1.0), ("b", 0.95, 2.0), ("c", 0.82, 3.0))]
    for number, trial in enumerate(front):
        trial.number = number
    retrains = {0: [{"history": {"val/acc": [v]}} for v in (0.79, 0.81)],  # about 0.80
                1: [{"history": {"val/acc": [v]}} for v in (0.94, 0.96)],  # about 0.95: clear of 0.80
                2: [{"history": {"val/acc": [v]}} for v in (0.70, 0.97)]}  # wide: overlaps both cheaper points
    verdicts = {n: s.vs_cheaper for n, s in point_stats(front, objectives, retrains).items()}
    assert verdicts == {0: CHEAPEST, 1: SHOWN, 2: NOT_SHOWN}
    assert {n: s.vs_cheaper for n, s in point_stats(front, objectives, {}).items()} == {0: "", 1: "", 2: ""}


def test_points_with_the_same_parameters_share_one_set_of_retrains() -> None:
    dist = {"model.block": CategoricalDistribution(["a", "b"])}
    front = [optuna.create_trial(values=[0.9, 1.0], params={"model.block": name}, distributions=dist) for name in "aba"]
    for number, trial in enumerate(front):
        trial.number = number + 3
    assert variants(front) == {3: "trial-0003", 4: "trial-0004", 5: "trial-0003"}


def test_confirm_seeds_below_two_and_a_study_without_completed_trials_are_one_line(tmp_path: Path, capsys) -> None:
    search = confirmed_search(tmp_path / "s.yaml", confirm={"seeds": 1})
    err = search_error(capsys, "--config", str(search), "--output", str(tmp_path / "out"))
    assert "confirm: seeds: 1 is not a number of further seeds" in err and "e.g. 3" in err
    search = confirmed_search(tmp_path / "s.yaml")
    err = search_error(capsys, "--config", str(search), "--output", str(tmp_path / "out"), "--confirm", "1", code=2)
    assert "argument --confirm: 1 is not a number of further seeds" in err
    journal = tmp_path / "out" / "study.journal"
    journal.parent.mkdir()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    optuna.create_study(storage=storage, study_name="tiny", directions=["maximize", "minimize"])
    err = search_error(capsys, "--config", str(search), "--output", str(tmp_path / "out"), "--confirm", "2", code=1)
    assert "--confirm 2: study 'tiny' has no completed trial" in err
