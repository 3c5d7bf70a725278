"""MO-ASHA: the rule on a study with known values, the file's checks, and a real two-worker search on a journal file."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from resnet_lightning.search.config import load_search_config
from resnet_lightning.search.moasha import (
    MOASHA,
    crowding_distances,
    non_dominated_ranks,
    rung_epochs,
)

from .helpers import finish, journal_study, start_search, tiny_search
from .test_errors import search_error

TWO = {"val/acc": "maximize", "macs": "minimize"}
SHORT = {"trainer.limit_train_batches": 8, "trainer.limit_val_batches": 2}


def journal(path: Path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def moasha_search(tmp_path: Path, objectives: dict = TWO, enqueue: tuple = (), **pruner) -> Path:
    """The tiny search of three 3-epoch trials' blocks and rates, on accuracy and MACs, with ``pruner: moasha``."""
    fixed = {"model.arch": "cifar_resnet", "trainer.max_epochs": 3, "trainer.enable_model_summary": False, **SHORT}
    space = {
        "model.block": {"type": "categorical", "choices": ["basic", "plain", "se_basic"]},
        "model.optimizer.init_args.lr": {"type": "float", "low": 1.0e-5, "high": 0.3, "log": True},
    }
    return tiny_search(tmp_path / "mo.yaml", objectives=objectives, sampler={"name": "nsga2"}, fixed=fixed, space=space,
                       pruner={"name": "moasha", **pruner}, enqueue=list(enqueue))


def reached(study: optuna.Study, acc: float, macs: float, epoch: int = 1) -> None:
    """A finished trial that recorded (acc, macs) at the rung ``epoch``, as a worker's reporter does."""
    trial = study.ask()
    trial.set_user_attr("rung_values", {str(epoch): {"val/acc": acc, "macs": macs}})
    study.tell(trial, [acc, macs])


def arrives(path: Path, moasha: MOASHA, acc: float, macs: float, epoch: int = 1) -> tuple[bool, dict]:
    """A trial of another process (its own storage object) reaching ``epoch``: stopped?, and what it recorded."""
    study = optuna.load_study(study_name="mo", storage=journal(path))
    trial = study.ask()
    trial.set_user_attr("macs", macs)  # the reporter measures it at the first batch
    stopped = moasha.stops(trial, epoch, {"val/acc": [0.05] * (epoch - 1) + [acc]}, {"val/acc": list(range(1, epoch + 1))})
    return stopped, study._storage.get_trial(trial._trial_id).user_attrs


def test_a_dominated_trial_stops_at_its_first_rung_and_a_non_dominated_one_goes_on(tmp_path: Path) -> None:
    search = load_search_config(moasha_search(tmp_path, rungs=[1, 2], reduction_factor=3))
    moasha = MOASHA(search.pruner, max_epochs=3)
    path = tmp_path / "study.journal"
    study = optuna.create_study(study_name="mo", storage=journal(path), directions=["maximize", "minimize"])
    for acc, macs in [(0.9, 1.0e6), (0.8, 2.0e6), (0.6, 0.5e6), (0.5, 3.0e6), (0.4, 4.0e6)]:
        reached(study, acc, macs)
    # Dominated by (0.9, 1e6): stopped, and its values at the rung are in the storage for the next trials.
    stopped, attrs = arrives(path, moasha, acc=0.7, macs=2.5e6)
    assert stopped and attrs["rung_values"] == {"1": {"val/acc": 0.7, "macs": 2.5e6}}
    # Better than every trial in accuracy: on the first front, at its end (infinite crowding distance): goes on.
    assert arrives(path, moasha, acc=0.95, macs=3.0e6)[0] is False
    # On the first front but in its middle, behind both ends: 8 trials, top 8 // 3 = 2 go on, so it stops.
    assert arrives(path, moasha, acc=0.85, macs=0.9e6)[0] is True
    # Not a rung (epoch 3 is max_epochs; rungs are [1, 2]): nothing recorded, never stopped.
    stopped, attrs = arrives(path, moasha, acc=0.0, macs=9e9, epoch=3)
    assert not stopped and "rung_values" not in attrs


def test_fewer_trials_than_the_reduction_factor_at_a_rung(tmp_path: Path) -> None:
    """The first trial at a rung goes on; with fewer than eta there, a trial goes on only if no other ranks ahead of it."""
    moasha = MOASHA(load_search_config(moasha_search(tmp_path, rungs=[1, 2])).pruner, max_epochs=3)
    path = tmp_path / "study.journal"
    study = optuna.create_study(study_name="mo", storage=journal(path), directions=["maximize", "minimize"])
    assert arrives(path, moasha, acc=0.1, macs=9e6, epoch=2)[0] is False  # alone at rung 2, however bad
    reached(study, 0.8, 1.0e6)
    assert arrives(path, moasha, acc=0.7, macs=2.0e6)[0] is True  # 2 at rung 1, the other ahead of it
    assert arrives(path, moasha, acc=0.9, macs=4.0e6)[0] is False  # 3 at rung 1, none ahead (both ends of the front)


def test_sorting_and_crowding_and_rungs() -> None:
    points = [[1, 5], [2, 2], [5, 1], [3, 3], [4, 4], [6, 6]]  # minimised
    ranks = non_dominated_ranks(points)
    assert ranks == [0, 0, 0, 1, 2, 3]
    crowding = crowding_distances(points, ranks)
    assert crowding[0] == crowding[2] == math.inf and crowding[1] == pytest.approx(4 / 4 + 4 / 4)
    assert rung_epochs({"min_epochs": 1, "reduction_factor": 3}, 10) == [1, 3, 9]
    assert rung_epochs({"min_epochs": 2, "reduction_factor": 2}, 8) == [2, 4]
    assert rung_epochs({"rungs": [1, 3, 5]}, 5) == [1, 3]


@pytest.mark.parametrize(
    ("pruner", "objectives", "expected"),
    [
        ({"reduction_factor": 1}, TWO, ["reduction_factor 1", ">= 2"]),
        ({"min_epochs": 0}, TWO, ["min_epochs 0", "integer >= 1"]),
        ({"rungs": [2, 1]}, TWO, ["rungs [2, 1]", "increasing"]),
        ({"rungs": [1], "min_epochs": 1}, TWO, ["rungs: or min_epochs:"]),
        ({"reduction_facter": 3}, TWO, ["'reduction_facter'", "reduction_factor"]),
        ({}, {"val/acc": "maximize", "wall_time": "minimize"}, ["wall_time", "not at a rung"]),
        ({"rungs": [1, 3]}, TWO, ["rung at epoch 3", "trainer.max_epochs: 3"]),  # a rung at the last epoch saves nothing
        ({"min_epochs": 4}, TWO, ["rung at epoch 4", "trainer.max_epochs: 3"]),
    ],
)
def test_moasha_mistakes_are_one_line_before_any_trial(tmp_path: Path, capsys, pruner: dict, objectives: dict,
                                                       expected: list[str]) -> None:
    search = moasha_search(tmp_path, objectives, **pruner)
    err = search_error(capsys, "--config", str(search), "--n_trials", "1", "--output", str(tmp_path / "out"))
    for text in expected:
        assert text in err
    assert not (tmp_path / "out").exists()


def test_two_workers_stop_dominated_trials_at_the_rung(tmp_path: Path) -> None:
    # Trials 0 and 1 train the same network (same MACs), the second with a rate too small to learn: dominated.
    good = {"model.block": "basic", "model.optimizer.init_args.lr": 0.1}
    slow = {**good, "model.optimizer.init_args.lr": 1.0e-5}
    search = moasha_search(tmp_path, enqueue=(good, slow), rungs=[1], reduction_factor=3)
    workers = [start_search("--config", str(search), "--n_trials", "6", "--output", "out", cwd=tmp_path) for _ in range(2)]
    for worker in workers:
        finish(worker)
    trials = journal_study(tmp_path / "out" / "study.journal", "tiny").trials
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    assert all("1" in t.user_attrs["rung_values"] for t in trials)  # every trial was ranked at the rung
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned and complete
    for trial in pruned:  # stopped at the rung, after one epoch, as an ordinary early-stopped fit
        assert trial.user_attrs["pruned_at_epoch"] == 0 and trial.user_attrs["epochs"] == 1
    assert all(t.user_attrs["epochs"] == 3 for t in complete)
