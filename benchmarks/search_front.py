"""Benchmark 10, search front: how much of an exhaustive grid's Pareto front a constrained MO-ASHA search finds, for how many epochs.

**Ground truth.** Every configuration of a small space (4 blocks x 4 depths x 2 widths of
the CIFAR ResNet, 32 in all) trained once with the full recipe (9 epochs on digits, 30%
of the images held out for validation so that accuracies differ by more than one image),
through the real ``resnet-lightning search`` command with Optuna's grid sampler.

**The search.** The same space, searched by the real command with a MACs budget
(``constraints:``), multi-objective asynchronous successive halving (``pruner: moasha``,
rungs at 1 and 3 epochs, reduction factor 3) and multi-objective TPE, two workers on one journal
file, a fixed number of trials (12, then 24: the trade-off between epochs and front); once per
sampler seed.

**The measure.** The hypervolume of the search's front relative to the grid's: both
fronts are evaluated on the grid's accuracies (a configuration the search trained in full
counts with the accuracy the grid measured for it, so the two runs' noise does not enter),
in the same box (each objective normalised between the best and the worst value among the
grid's configurations within the budget; the reference point is that worst value), against
the share of the grid's epochs the search trained. Goal (issue 18): at least 0.95 of the
grid's hypervolume with at most 30% of its epochs. Also: the cost check's milliseconds per
trial (MACs, parameters and latency before the fit) and each trial's overhead beyond its fit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.trial import TrialState

from benchmarks.common import markdown_table

ROOT = Path(__file__).resolve().parents[1]
SPACE = {
    "model.block": {"type": "categorical", "choices": ["basic", "preact", "plain", "highway"]},
    "model.arch_kwargs.depth": {"type": "categorical", "choices": [8, 14, 20, 26]},
    "model.arch_kwargs.widths": {"type": "categorical", "choices": ["[8, 16, 32]", "[16, 32, 64]"]},
}
EPOCHS = 9
MACS_BUDGET = 3.0e6  # leaves out the 8 widest configurations of depth 20 and 26 (highway from depth 14)
OBJECTIVES = {"val/acc": "maximize", "macs": "minimize"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=int, nargs="+", default=None, help="trials per search, one set of searches per "
                        "number (default 12 24; --quick 6)")
    parser.add_argument("--seeds", type=int, default=None, help="searches, one per sampler seed (default 3; --quick 1)")


def _search_file(path: Path, study: str, epochs: int, **rest: Any) -> Path:
    search = {
        "study": study,
        "configs": [str(ROOT / "configs" / "digits.yaml")],
        "fixed": {
            "model.arch": "cifar_resnet",
            "trainer.max_epochs": epochs,
            "model.lr_scheduler.init_args.T_max": epochs,
            "data.init_args.val_fraction": 0.3,
            "trainer.enable_model_summary": False,
        },
        "space": SPACE,
        "objectives": OBJECTIVES,
        **rest,
    }
    path.write_text(yaml.safe_dump(search, sort_keys=False))
    return path


def _start(search: Path, output: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "resnet_lightning", "search", "--config", str(search), "--output", str(output), *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _finish(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        out, err = worker.communicate()
        if worker.returncode != 0:
            raise RuntimeError(f"search failed:\n{out[-2000:]}\n{err[-3000:]}")


def _study(output: Path, name: str) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(output / "study.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def _key(params: dict[str, Any]) -> tuple:
    return tuple(str(params[key]) for key in SPACE)


def _volume(points: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Hypervolume of ``points`` (rows of losses, minimised) in the box [low, high], normalised to [0, 1]^d."""
    # The volume Optuna's samplers and plots use.
    from optuna._hypervolume import compute_hypervolume

    if len(points) == 0:
        return 0.0
    normalised = np.clip((points - low) / np.where(high > low, high - low, 1.0), 0.0, 1.0)
    return float(compute_hypervolume(normalised, np.ones(points.shape[1])))


def _grid(tmp: Path, quick: bool) -> dict[str, Any]:
    epochs = 2 if quick else EPOCHS
    search = _search_file(tmp / "grid.yaml", "grid", epochs, sampler={"name": "grid", "seed": 0})
    start = time.perf_counter()
    _finish([_start(search, tmp / "grid")])
    trials = [t for t in _study(tmp / "grid", "grid").trials if t.state == TrialState.COMPLETE]
    return {
        "accuracy": {_key(t.params): t.values[0] for t in trials},
        "macs": {_key(t.params): t.values[1] for t in trials},
        "epochs": sum(t.user_attrs.get("epochs", 0) for t in trials),
        "configurations": len(trials),
        "wall_s": time.perf_counter() - start,
        "max_epochs": epochs,
    }


def _losses(keys: list[tuple], grid: dict[str, Any]) -> np.ndarray:
    return np.array([[-grid["accuracy"][k], grid["macs"][k]] for k in keys]).reshape(len(keys), 2)


def _search(tmp: Path, grid: dict[str, Any], seed: int, trials: int, quick: bool) -> dict[str, Any]:
    epochs = grid["max_epochs"]
    name = f"search-{trials}-{seed}"  # its own study: the 24-trial search does not continue the 12-trial one
    search = _search_file(
        tmp / f"{name}.yaml", name, epochs,
        constraints={"macs": {"max": MACS_BUDGET}},
        pruner={"name": "moasha", "rungs": [1] if quick else [1, 3], "reduction_factor": 3},
        sampler={"name": "tpe"},  # TPE learns the budget from over-budget trials; NSGA-II reads trained ones only
        n_trials=trials,
    )
    output = tmp / name
    start = time.perf_counter()
    # Two workers on one journal file, each with its own sampler seed (the same seed would draw the same trials).
    first = _start(search, output, "--seed", str(2 * seed))
    time.sleep(3)  # the first worker creates the study
    _finish([first, _start(search, output, "--seed", str(2 * seed + 1))])
    wall = time.perf_counter() - start
    finished = [t for t in _study(output, name).trials if t.state.is_finished()]
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    over_budget = [t for t in finished if t.user_attrs.get("over_budget")]
    feasible = [k for k in grid["accuracy"] if grid["macs"][k] <= MACS_BUDGET]
    everything = _losses(feasible, grid)
    low, high = everything.min(axis=0), everything.max(axis=0)
    found = sorted({_key(t.params) for t in complete})
    grid_volume = _volume(everything, low, high)
    search_volume = _volume(_losses(found, grid), low, high)
    cost_ms = [1000 * t.user_attrs["cost_seconds"] for t in finished if "cost_seconds" in t.user_attrs]
    overheads = [t.user_attrs["wall_time"] - t.user_attrs["fit_seconds"] for t in complete if "fit_seconds" in t.user_attrs]
    epochs_trained = sum(t.user_attrs.get("epochs", 0) for t in finished)
    return {
        "seed": seed,
        "asked": trials,
        "trials": len(finished),
        "complete": len(complete),
        "trained_in_full": len(found),  # distinct configurations: a repeat takes its twin's outcome untrained
        "stopped_at_a_rung": sum(t.state == TrialState.PRUNED and not t.user_attrs.get("over_budget") for t in finished),
        "over_budget": len(over_budget),
        "epochs": epochs_trained,
        "epoch_share": epochs_trained / grid["epochs"],
        "hypervolume_ratio": search_volume / grid_volume if grid_volume else float("nan"),
        "cost_check_ms": statistics.median(cost_ms) if cost_ms else None,
        "overhead_s": statistics.median(overheads) if overheads else None,
        "wall_s": wall,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    budgets = args.trials or ([6] if args.quick else [12, 24])
    seeds = args.seeds or (1 if args.quick else 3)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="rl-bench-front-") as tmp:
        tmp = Path(tmp)
        grid = _grid(tmp, args.quick)
        searches = [_search(tmp, grid, seed, trials, args.quick) for trials in budgets for seed in range(seeds)]
    return {
        "benchmark": "search_front",
        "grid": {k: v for k, v in grid.items() if k not in ("accuracy", "macs")},
        "grid_table": [{"configuration": " ".join(k), "val_acc": grid["accuracy"][k], "macs": grid["macs"][k]}
                       for k in sorted(grid["accuracy"], key=lambda k: grid["macs"][k])],
        "macs_budget": MACS_BUDGET,
        "searches": searches,
        "means": [
            {
                "asked": trials,
                "hypervolume_ratio": statistics.mean(s["hypervolume_ratio"] for s in searches if s["asked"] == trials),
                "epoch_share": statistics.mean(s["epoch_share"] for s in searches if s["asked"] == trials),
            }
            for trials in budgets
        ],
    }


def table(result: dict[str, Any]) -> str:
    grid = result["grid"]
    rows = markdown_table(result["searches"], {
        "asked": "n_trials", "seed": "seed", "trials": "trials finished", "complete": "complete",
        "trained_in_full": "of them trained (not repeats)", "stopped_at_a_rung": "stopped at a rung",
        "over_budget": "over budget (not trained)", "epochs": "epochs", "epoch_share": "share of the grid's epochs",
        "hypervolume_ratio": "hypervolume / grid's", "cost_check_ms": "cost check ms (median)",
        "overhead_s": "overhead s per trial (median)", "wall_s": "wall s",
    })
    return (
        f"Grid: {grid['configurations']} configurations x {grid['max_epochs']} epochs = {grid['epochs']} epochs "
        f"in {grid['wall_s']:.0f} s. Budget: MACs <= {result['macs_budget']:.3g}.\n\n{rows}\n\n"
        + "".join(f"With n_trials {m['asked']}, mean over seeds: **{m['hypervolume_ratio']:.3f} of the grid's hypervolume "
                  f"with {100 * m['epoch_share']:.0f}% of its epochs**.\n" for m in result["means"])
        + "(Goal: >= 0.95 with <= 30%.)\n\n"
        "Grid (ground truth):\n\n" + markdown_table(result["grid_table"], {"configuration": "configuration", "val_acc": "val/acc", "macs": "MACs"})
    )
