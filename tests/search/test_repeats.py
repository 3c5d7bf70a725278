"""A configuration drawn again takes the outcome of the trial that trained it, without a fit."""

from __future__ import annotations

import csv

import yaml
from optuna.trial import TrialState

from .helpers import finish, journal_study, start_search, tiny_search


def test_a_configuration_drawn_again_is_not_trained_again(tmp_path) -> None:
    # One configuration in the space: every trial after the first draws it again.
    search = tiny_search(tmp_path / "s.yaml", pruner="none",
                         space={"model.block": {"type": "categorical", "choices": ["basic"]}})
    raw = yaml.safe_load(search.read_text())
    raw["fixed"].update({"model.arch_kwargs.depth": 8, "trainer.max_epochs": 1, "trainer.limit_train_batches": 2,
                         "trainer.limit_val_batches": 1})
    search.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = finish(start_search("--config", str(search), "--n_trials", "3", "--output", "out", cwd=tmp_path))
    trained, *repeats = journal_study(tmp_path / "out" / "study.journal").trials
    assert trained.state == TrialState.COMPLETE and trained.user_attrs["epochs"] == 1 and "same_as" not in trained.user_attrs
    for repeat in repeats:
        assert repeat.state == TrialState.COMPLETE and repeat.values == trained.values
        assert repeat.user_attrs["same_as"] == 0 and repeat.user_attrs["epochs"] == 0
        assert repeat.user_attrs["run_dir"] == trained.user_attrs["run_dir"]  # its run is the first trial's
        assert not (tmp_path / "out" / "logs" / f"trial-{repeat.number:04d}.log").exists()  # no fit started
        assert f"search: trial {repeat.number} is trial 0 again (model.block=basic): not trained again" in out
    rows = list(csv.DictReader((tmp_path / "out" / "trials.csv").read_text().splitlines()))
    assert [r["same_as"] for r in rows] == ["", "0", "0"] and [r["epochs"] for r in rows] == ["1", "0", "0"]
    # The same study continued under a budget the configuration no longer meets: checked again, not taken as trained.
    raw["constraints"] = {"macs": {"max": 1.0e5}}
    search.write_text(yaml.safe_dump(raw, sort_keys=False))
    finish(start_search("--config", str(search), "--n_trials", "4", "--output", "out", cwd=tmp_path))
    fourth = journal_study(tmp_path / "out" / "study.journal").trials[3]
    assert fourth.state == TrialState.PRUNED and "same_as" not in fourth.user_attrs
    assert fourth.user_attrs["over_budget"].startswith("macs 7.5e5 > max 1e5")
