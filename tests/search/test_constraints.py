"""Costs before training and ``constraints:``: real searches on digits, real Optuna, CPU.

One search of two enqueued trials: a depth-8 network within the MACs budget (it trains)
and a depth-14 one over it (it never trains: PRUNED, zero epochs, the reason recorded).
Its objectives are accuracy and the measured latency, so latency_ms is used as an objective.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import yaml
from optuna.trial import TrialState

from resnet_lightning.search.algorithms import make_sampler
from resnet_lightning.search.config import load_search_config
from resnet_lightning.search.constraints import SETS_CONSTRAINTS
from resnet_lightning.search.space import SearchConfigError

from .helpers import GOOD, finish, journal_study, start_search, tiny_search
from .test_errors import search_error

SHORT = {"trainer.max_epochs": 1, "trainer.limit_train_batches": 2, "trainer.limit_val_batches": 1}
DEEP = {**GOOD, "model.arch_kwargs.depth": 14}  # 6n+2 with n=2: about 1.3e6 MACs at 8x8, over the budget of 1.0e6


def constrained_search(path, **changes):
    search = tiny_search(
        path, objectives={"val/acc": "maximize", "latency_ms": "minimize"}, sampler={"name": "nsga2", "seed": 0},
        pruner="none", constraints={"macs": {"max": 1.0e6}}, latency={"batch_size": 4, "warmup": 2, "repeats": 5},
        enqueue=[GOOD, DEEP], **changes,
    )
    raw = yaml.safe_load(search.read_text())
    raw["fixed"].update(SHORT)
    raw["space"]["model.arch_kwargs.depth"]["choices"] = [8, 14]
    search.write_text(yaml.safe_dump(raw, sort_keys=False))
    return search


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cwd = tmp_path_factory.mktemp("constraints")
    search = constrained_search(cwd / "c.yaml")
    out = finish(start_search("--config", str(search), "--n_trials", "2", "--output", "out", cwd=cwd))
    study = journal_study(cwd / "out" / "study.journal")
    by_depth = {t.params["model.arch_kwargs.depth"]: t for t in study.trials}
    return {"out": out, "dir": cwd / "out", "study": study, "fits": by_depth[8], "over": by_depth[14]}


def test_an_over_budget_configuration_never_trains(ran: dict) -> None:
    over = ran["over"]
    assert over.state == TrialState.PRUNED
    assert over.user_attrs["epochs"] == 0
    assert over.user_attrs["macs"] > 1.0e6
    assert over.user_attrs["over_budget"].startswith("macs 1.") and over.user_attrs["over_budget"].endswith("> max 1e6")
    assert "run_dir" not in over.user_attrs and "history" not in over.user_attrs  # no fit ran: nothing recorded by one
    assert not (ran["dir"] / "logs" / f"trial-{over.number:04d}.log").exists()
    assert f"search: trial {over.number} over budget: macs 1." in ran["out"] and "(not trained;" in ran["out"]
    assert f"search: trial {over.number} epoch" not in ran["out"]
    rows = {int(r["number"]): r for r in csv.DictReader((ran["dir"] / "trials.csv").read_text().splitlines())}
    assert rows[over.number]["state"] == "PRUNED" and rows[over.number]["over_budget"] == over.user_attrs["over_budget"]
    assert rows[over.number]["epochs"] == "0" and float(rows[over.number]["latency_ms"]) > 0


def test_a_configuration_within_budget_trains_and_its_costs_come_first(ran: dict) -> None:
    fits = ran["fits"]
    assert fits.state == TrialState.COMPLETE and fits.user_attrs["epochs"] == 1
    assert fits.user_attrs["macs"] == 747136 and fits.user_attrs["params"] > 0
    assert 0 < fits.user_attrs["cost_seconds"] < 10
    assert "over_budget" not in fits.user_attrs
    assert len(list((ran["dir"] / "runs").glob("*/version_*"))) == 1  # one fit's run directory: the feasible trial's


def constraint_values(trial) -> list[float]:
    """Optuna 5: what the worker set (trial.constraints); Optuna 4: constraints_func's list (system attribute)."""
    return list(getattr(trial, "constraints", {}).values()) or trial.system_attrs["constraints"]


def test_every_trial_gets_its_constraint_values_and_best_trials_leave_infeasible_out(ran: dict) -> None:
    # One value per bound, macs - max, for the trained trial and the one never trained.
    assert constraint_values(ran["fits"]) == [747136 - 1.0e6]
    assert constraint_values(ran["over"])[0] == ran["over"].user_attrs["macs"] - 1.0e6 > 0
    assert [t.number for t in ran["study"].best_trials] == [ran["fits"].number]


def test_latency_is_measured_and_is_an_objective(ran: dict) -> None:
    fits = ran["fits"]
    assert fits.user_attrs["latency_ms"] > 0
    assert fits.values[1] == fits.user_attrs["latency_ms"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"constraints": {"flops": {"max": 1.0e6}}}, "constraints: unknown measure 'flops'"),
        ({"constraints": {"wall_time": {"max": 60}}}, "wall_time is known only after training"),
        ({"constraints": {"macs": {"max": "lots"}}}, "constraints.macs.max: 'lots' is not a finite number"),
        ({"constraints": {"macs": {"max": float("inf")}}}, "inf is not a finite number"),
        ({"constraints": {"macs": 2.0e7}}, "constraints.macs: 20000000.0 is not a bound; write macs: {max: NUMBER}"),
        ({"constraints": {"macs": {"most": 1}}}, "constraints.macs: unknown bound 'most'"),
        ({"constraints": {"macs": {"min": 2, "max": 1}}}, "min 2 > max 1: no network fits"),
        ({"constraints": ["macs"]}, "constraints: ['macs'] is not a mapping of measure to {max: number}"),
        ({"latency": {"repeats": 0}}, "latency.repeats: 0 is not a whole number >= 1"),
        ({"latency": {"batch": 2}}, "latency: unknown option 'batch'"),
    ],
)
def test_bad_constraints_are_one_line_before_any_trial(tmp_path, capsys, changes: dict, expected: str) -> None:
    search = tiny_search(tmp_path / "s.yaml", **changes)
    with pytest.raises(SearchConfigError, match=None) as err:
        load_search_config(search)
    assert expected in str(err.value)
    line = search_error(capsys, "--config", str(search), "--n_trials", "1", "--output", str(tmp_path / "out"))
    assert expected in line and not (tmp_path / "out").exists()


def test_constraints_func_only_where_optuna_wants_it(tmp_path) -> None:
    search = load_search_config(tiny_search(tmp_path / "s.yaml", constraints={"params": {"max": 1.0e5}}))
    given = make_sampler(search.sampler, search.space, search.constraints)._constraints_func
    assert given is (None if SETS_CONSTRAINTS else search.constraints)  # Optuna 5 deprecates it for Trial.set_constraint
    assert search.latency is None  # latency is measured only when an objective or a constraint uses it
    make_sampler({"name": "random"}, search.space, search.constraints)  # random sampling takes none, and is not given one


# A worker that measured latency, then forks a fit (what --trial_process fork does), in a fresh interpreter:
# the pytest process has computed with torch already, and a fork of it would hang whatever the cost check does.
FORKS_AFTER_MEASURING = """
import os, sys, time, torch
from resnet_lightning.search.costs import CostMeter, parse_latency
config = open(sys.argv[1]).read()
costs = CostMeter(parse_latency({"batch_size": 8, "warmup": 1, "repeats": 3, "threads": 2}))(config)
print(costs["macs"], costs["params"], costs["latency_ms"] > 0, flush=True)
pid = os.fork()
if pid == 0:  # the fit: a convolution large enough for OpenMP's threads
    torch.nn.Conv2d(16, 64, 3)(torch.randn(8, 16, 32, 32))
    os._exit(0)
for _ in range(300):
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("forked fit ran", flush=True)
        break
    time.sleep(0.1)
else:
    os.kill(pid, 9)
    print("forked fit hung", flush=True)
"""


def test_a_worker_that_measured_latency_can_still_fork_its_fits(tmp_path) -> None:
    from resnet_lightning.search.fit_args import fit_args, resolved_config

    search = load_search_config(tiny_search(tmp_path / "s.yaml"))
    config = tmp_path / "config.yaml"
    config.write_text(resolved_config(fit_args(search, GOOD)))
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", FORKS_AFTER_MEASURING, str(config)], capture_output=True, text=True, check=False,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    counts, ran = done.stdout.splitlines()[:2]
    macs, params, timed = counts.split()
    assert float(macs) == 747136 and int(params) > 0 and timed == "True"
    assert ran == "forked fit ran"  # measured in the worker itself, the fork hung at its convolution


def test_a_cost_check_that_fails_in_its_process_says_why() -> None:
    import torch

    from resnet_lightning.search.costs import (
        CostCheckError,
        build,
        measure_in_a_child,
        median_latency_ms,
    )

    network = build({"arch": "cifar_resnet", "block": "basic", "arch_kwargs": {"depth": 8}, "in_channels": 1, "num_classes": 10})
    assert measure_in_a_child(lambda: {"ms": median_latency_ms(network, (2, 1, 8, 8), torch.device("cpu"), 1, 3)})["ms"] > 0
    with pytest.raises(CostCheckError, match=r"the cost check failed: RuntimeError: .*channels"):
        measure_in_a_child(median_latency_ms, network, (2, 3, 8, 8), torch.device("cpu"), 1, 3)  # 3 channels into 1


def test_budgets_make_tpe_the_default_sampler_and_another_is_told_it_does_not_learn_them(tmp_path, ran: dict) -> None:
    two = {"objectives": {"val/acc": "maximize", "macs": "minimize"}, "pruner": "none", "sampler": None}  # the default
    assert load_search_config(tiny_search(tmp_path / "a.yaml", **two)).sampler["name"] == "nsga2"
    budget = load_search_config(tiny_search(tmp_path / "b.yaml", constraints={"macs": {"max": 1.0e6}}, **two))
    assert budget.sampler["name"] == "tpe"  # it reads the over-budget (PRUNED) trials; NSGA-II never sees them
    assert "sampler nsga2 does not learn from them" in ran["out"]  # the fixture's search asked for NSGA-II


def test_a_budget_written_as_yaml_1_2_writes_it_is_a_number(tmp_path) -> None:
    # PyYAML reads 2.0e7 and 1e6 as text (YAML 1.1 wants 2.0e+7); the issue and every reader mean numbers.
    search = tiny_search(tmp_path / "s.yaml")
    search.write_text(search.read_text() + "constraints:\n  macs: {max: 2.0e7}\n  params: {max: 1e6}\n")
    bounds = {b.measure: b.limit for b in load_search_config(search).constraints.bounds}
    assert bounds == {"macs": 2.0e7, "params": 1.0e6}
