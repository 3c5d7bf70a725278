"""`resnet-lightning search` end to end: real Optuna, real fits of a depth-8 ResNet on digits, CPU.

One study is run by two worker processes sharing the default journal storage; the
tests below read what they left behind. The enqueued trials make the outcomes
certain whatever the sampler draws: two good ones, one whose learning rate is too
small to learn (pruned after its first epoch, against the completed ones), a depth
the block cannot build (FAIL, with the reason) and a plugin block.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import torch
import yaml
from optuna.trial import TrialState

from resnet_lightning.cli import cli_main

from .helpers import GOOD, finish, journal_study, start_search, tiny_search

N_TRIALS = 7
ENQUEUED = [
    GOOD,
    {**GOOD, "model.block": "plain"},
    {**GOOD, "model.optimizer.init_args.lr": 1.0e-5},  # learns nothing in two epochs: pruned
    {**GOOD, "model.arch_kwargs.depth": 9},  # not 6n+2: the fit refuses to build it
    {**GOOD, "model.block": "se_basic"},  # a plugin's block (plugins/se-resnet)
]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two workers, started together on one search with the default storage."""
    cwd = tmp_path_factory.mktemp("search")
    search = tiny_search(cwd / "tiny.yaml", enqueue=ENQUEUED)
    args = ["--config", str(search), "--n_trials", str(N_TRIALS), "--output", "out"]
    workers = [start_search(*args, cwd=cwd) for _ in range(2)]
    logs = [finish(worker) for worker in workers]
    return {"cwd": cwd, "out": cwd / "out", "args": args, "logs": logs, "study": journal_study(cwd / "out" / "study.journal")}


def by_state(study, state: TrialState) -> list:
    return study.get_trials(deepcopy=False, states=(state,))


def test_two_workers_complete_the_study_between_them(shared: dict) -> None:
    study = shared["study"]
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) >= N_TRIALS - 1 and len(finished) >= 6
    workers = {t.user_attrs["worker"] for t in finished}
    assert len(workers) == 2  # both workers ran trials of the one study
    assert all("search: trial" in log for log in shared["logs"])
    assert by_state(study, TrialState.COMPLETE) and by_state(study, TrialState.PRUNED)


def test_each_worker_shows_its_trials_epoch_lines(shared: dict) -> None:
    # Forked trials (the default): each epoch of each trial a worker ran is on that worker's console.
    for log in shared["logs"]:
        started = set(re.findall(r"^search: trial (\d+) model", log, re.MULTILINE))
        trained = set(re.findall(r"^search: trial (\d+) epoch 1/2  train/loss ", log, re.MULTILINE))
        assert trained and trained <= started, log[-3000:]


def test_a_trial_is_an_ordinary_fit_with_its_own_run(shared: dict) -> None:
    complete = by_state(shared["study"], TrialState.COMPLETE)
    run_dirs = [Path(t.user_attrs["run_dir"]) for t in complete]
    assert len(set(run_dirs)) == len(run_dirs)
    for trial, run_dir in zip(complete, run_dirs):
        assert run_dir.is_relative_to(shared["out"] / "runs")
        assert (run_dir / "checkpoints" / "last.ckpt").is_file() and (run_dir / "run.json").is_file()
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["model"]["block"] == trial.params["model.block"]
        assert config["model"]["optimizer"]["init_args"]["lr"] == pytest.approx(trial.params["model.optimizer.init_args.lr"])
        reporter = next(c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("SearchTrialReporter"))
        assert reporter["init_args"]["trial_number"] == trial.number  # the trial is in the run's config (and W&B's)
        # the objective is the best epoch's val/acc, as the run's own checkpoint callback saw it
        best = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["callbacks"]
        score = next(v["best_model_score"] for k, v in best.items() if "Checkpoint" in k and "best_model_score" in v)
        assert trial.values[0] == pytest.approx(float(score), abs=1e-6)
        assert trial.user_attrs["macs"] > 0 and trial.user_attrs["params"] > 0


def test_the_pruner_stops_a_hopeless_trial_after_an_epoch(shared: dict) -> None:
    pruned = by_state(shared["study"], TrialState.PRUNED)
    hopeless = [t for t in pruned if t.params["model.optimizer.init_args.lr"] == pytest.approx(1e-5)]
    assert hopeless, [(t.number, t.state, t.params) for t in shared["study"].trials]
    assert hopeless[0].user_attrs["epochs"] == 1 and hopeless[0].intermediate_values  # reported each epoch, stopped after one
    assert (Path(hopeless[0].user_attrs["run_dir"]) / "checkpoints" / "last.ckpt").is_file()  # a stopped fit keeps its state


def test_a_failing_trial_is_fail_with_its_reason_and_the_study_goes_on(shared: dict) -> None:
    study = shared["study"]
    failed = [t for t in by_state(study, TrialState.FAIL) if t.params["model.arch_kwargs.depth"] == 9]
    assert failed
    assert "depth=9 is not 6n+2" in failed[0].user_attrs["fail_reason"]
    later = [t.state for t in study.trials if t.number > failed[0].number]
    assert TrialState.COMPLETE in later or TrialState.PRUNED in later  # trials after it ran their fits
    rows = list(csv.DictReader(open(shared["out"] / "trials.csv")))
    row = next(r for r in rows if int(r["number"]) == failed[0].number)
    assert row["state"] == "FAIL" and "depth=9 is not 6n+2" in row["fail_reason"]


def test_a_plugin_block_trains_like_a_built_in(shared: dict) -> None:
    plugin = [t for t in shared["study"].trials if t.params["model.block"] == "se_basic" and t.params["model.arch_kwargs.depth"] == 8]
    assert any(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in plugin)


def test_outputs_and_best_yaml_retrains(shared: dict) -> None:
    out, study = shared["out"], shared["study"]
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert [int(r["number"]) for r in rows] == [t.number for t in study.trials]
    assert {"model.block", "val/acc", "macs", "params", "wall_time", "run_dir"} <= set(rows[0])
    pareto = list(csv.DictReader(open(out / "pareto.csv")))
    assert pareto and all(r["state"] == "COMPLETE" for r in pareto)
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = study.best_trial
    text = (out / "best.yaml").read_text()
    assert f"trial {best.number} " in text
    config = yaml.safe_load(text)
    assert config["model"]["block"] == best.params["model.block"]
    assert "SearchTrialReporter" not in text  # the search's plumbing stays out
    # `fit --config best.yaml` retrains it (shortened here to one epoch of 3 batches).
    retrain = shared["cwd"] / "retrain"
    cli = cli_main(["fit", "--config", str(out / "best.yaml"), "--trainer.max_epochs=1", "--trainer.limit_train_batches=3",
                    f"--trainer.default_root_dir={retrain}", "--trainer.enable_progress_bar=false"])
    assert cli.model.hparams.block == best.params["model.block"]
    assert cli.model.hparams.arch_kwargs == {"depth": 8}
    assert cli.trainer.current_epoch == 1 and Path(cli.trainer.checkpoint_callback.last_model_path).is_file()


def test_running_the_command_again_continues_the_study_and_summary_reads_it(shared: dict, monkeypatch, capsys) -> None:
    monkeypatch.chdir(shared["cwd"])
    before = len(shared["study"].trials)
    cli_main(["search", *shared["args"]])
    assert "already holds" in capsys.readouterr().err
    assert len(journal_study(shared["out"] / "study.journal").trials) == before  # not clobbered, nothing rerun
    cli_main(["search", *shared["args"], "--summary"])
    summary = capsys.readouterr().out
    assert "PRUNED" in summary and "FAIL" in summary and "depth=9 is not 6n+2" in summary
