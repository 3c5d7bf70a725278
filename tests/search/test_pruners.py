"""Optuna's single-objective pruners by name, with their options: checked by a throwaway study, one in a real search."""

from __future__ import annotations

import json

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from resnet_lightning.search.algorithms import make_pruner
from resnet_lightning.search.config import load_search_config
from resnet_lightning.search.space import SearchConfigError

from .helpers import GOOD, finish, journal_study, start_search, tiny_search

PRUNERS = [
    ({"name": "none"}, optuna.pruners.NopPruner),
    ({"name": "median", "n_startup_trials": 1, "n_warmup_steps": 1}, optuna.pruners.MedianPruner),
    ({"name": "percentile", "percentile": 25.0, "n_startup_trials": 1}, optuna.pruners.PercentilePruner),
    ({"name": "hyperband", "min_resource": 1, "max_resource": 9, "reduction_factor": 3}, optuna.pruners.HyperbandPruner),
    ({"name": "successive_halving", "min_resource": 1, "reduction_factor": 2}, optuna.pruners.SuccessiveHalvingPruner),
    ({"name": "wilcoxon", "p_threshold": 0.1}, optuna.pruners.WilcoxonPruner),
    ({"name": "patient", "patience": 2}, optuna.pruners.PatientPruner),
]


@pytest.mark.parametrize(("spec", "kind"), PRUNERS, ids=[spec["name"] for spec, _ in PRUNERS])
def test_each_pruner_by_name_with_its_options(tmp_path, spec: dict, kind: type) -> None:
    search = load_search_config(tiny_search(tmp_path / "s.yaml", pruner=spec))  # try_algorithms reports and prunes with it
    # The fit's reporter gets the spec through its command line (JSON) and builds the pruner again.
    pruner = make_pruner(json.loads(json.dumps(search.pruner)))
    assert type(pruner) is kind


def test_patient_wraps_another_pruner_given_by_name_and_options(tmp_path) -> None:
    spec = {"name": "patient", "patience": 1, "min_delta": 0.01, "wrapped": {"name": "median", "n_startup_trials": 3}}
    search = load_search_config(tiny_search(tmp_path / "s.yaml", pruner=spec))
    pruner = make_pruner(json.loads(json.dumps(search.pruner)))
    assert isinstance(pruner, optuna.pruners.PatientPruner) and pruner._patience == 1
    assert isinstance(pruner._wrapped_pruner, optuna.pruners.MedianPruner) and pruner._wrapped_pruner._n_startup_trials == 3
    shorthand = load_search_config(tiny_search(tmp_path / "t.yaml", pruner={"name": "patient", "patience": 1, "wrapped": "wilcoxon"}))
    assert isinstance(make_pruner(shorthand.pruner)._wrapped_pruner, optuna.pruners.WilcoxonPruner)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"name": "successivehalving", "min_resources": 1},
         "pruner successivehalving: unknown option 'min_resources'; SuccessiveHalvingPruner takes min_resource,"),
        ({"name": "patient", "patience": 1, "wrapped_pruner": "median"}, "unknown option 'wrapped_pruner'; PatientPruner takes wrapped,"),
        ({"name": "patient", "patience": 1, "wrapped": {"name": "median", "warmup": 1}},
         "pruner.wrapped median: unknown option 'warmup'; MedianPruner takes"),
        ({"name": "patient", "patience": 1, "wrapped": "medain"}, "pruner.wrapped: unknown pruner.wrapped 'medain'; did you mean 'median'?"),
        ({"name": "patient", "patience": -1}, "pruner patient: Optuna refused its options"),
        ({"name": "percentile"}, "pruner percentile: Optuna refused its options"),
        ({"name": "wilcoxon", "p_threshold": "low"}, "pruner wilcoxon: Optuna refused its options"),
        ({"name": "halving"}, "pruner: unknown pruner 'halving'"),
    ],
)
def test_bad_pruner_options_are_refused_before_any_trial(tmp_path, spec: dict, expected: str) -> None:
    with pytest.raises(SearchConfigError) as err:
        load_search_config(tiny_search(tmp_path / "s.yaml", pruner=spec))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_successive_halving_stops_a_trial_behind_at_its_first_rung_in_a_real_search(tmp_path) -> None:
    # Optuna's steps are epochs from 0: min_resource 1 is a rung after the second epoch (step 1), where of two
    # trials, reduction factor 2, only the better one goes on to the third.
    search = tiny_search(
        tmp_path / "s.yaml", pruner={"name": "successivehalving", "min_resource": 1, "reduction_factor": 2},
        enqueue=[GOOD, {**GOOD, "model.optimizer.init_args.lr": 1.0e-5}],
    )
    raw = yaml.safe_load(search.read_text())
    raw["fixed"].update({"trainer.max_epochs": 3, "trainer.limit_train_batches": 3, "trainer.limit_val_batches": 2})
    search.write_text(yaml.safe_dump(raw, sort_keys=False))
    finish(start_search("--config", str(search), "--n_trials", "2", "--output", "out", cwd=tmp_path))
    good, slow = journal_study(tmp_path / "out" / "study.journal").trials
    assert good.state == TrialState.COMPLETE and good.user_attrs["epochs"] == 3
    assert slow.state == TrialState.PRUNED and slow.user_attrs["pruned_at_epoch"] == 1 and slow.user_attrs["epochs"] == 2
