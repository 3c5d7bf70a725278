"""Benchmark 7, search: what a trial costs beyond its fit, and the epochs pruning saves.

**Overhead.** A tiny study (depth-8 CIFAR ResNet on digits, one epoch of a few
batches) runs through the real ``resnet-lightning search`` command, once with each
``--trial_process``: ``fork`` (the worker forks per trial) and ``fresh`` (a new
``python -m resnet_lightning fit`` per trial). Per trial, the overhead is the
trial's wall time (as the worker measured it) minus the fit's own time (from
``on_fit_start`` to ``on_fit_end``, as the fit measured it): process start, imports,
config parsing, model and data set-up, storage reads and writes. The worker's own
start-up (imports, checking the search file, opening the study) is paid once per
worker and reported apart, and so is one ask/tell round trip on the journal file.

**Pruning.** The same 12 trials (a grid: blocks basic/plain x six learning rates
from 1e-4 to 0.3, depth 8, 4 epochs, one worker, the grid visited in one seeded
order) run twice: with the median pruner (``n_startup_trials: 2``) and without. The
epochs trained are summed over trials; the best validation accuracy of each run
says whether pruning lost the best trial.
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

import optuna
import yaml

from benchmarks.common import markdown_table

ROOT = Path(__file__).resolve().parents[1]
LRS = [1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=int, default=None, help="trials per overhead study (default 4; --quick 2)")


def _search_file(path: Path, fixed: dict[str, Any], space: dict[str, Any], **rest: Any) -> Path:
    search = {
        "study": "bench",
        "configs": [str(ROOT / "configs" / "digits.yaml")],
        "fixed": {"model.arch": "cifar_resnet", "model.arch_kwargs.depth": 8, "trainer.enable_model_summary": False, **fixed},
        "space": space,
        "objectives": {"val/acc": "maximize"},
        **rest,
    }
    path.write_text(yaml.safe_dump(search, sort_keys=False))
    return path


def _run_search(search: Path, output: Path, *extra: str) -> tuple[optuna.Study, float]:
    """Run the real command to completion; the study and the worker's wall seconds."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "resnet_lightning", "search", "--config", str(search), "--output", str(output), *extra],
        env={**os.environ, "WANDB_MODE": "offline"}, capture_output=True, text=True,
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"search failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(output / "study.journal")))
    return optuna.load_study(study_name="bench", storage=storage), wall


def _overhead(tmp: Path, process: str, trials: int) -> dict[str, Any]:
    search = _search_file(
        tmp / f"overhead-{process}.yaml",
        {"trainer.max_epochs": 1, "trainer.limit_train_batches": 4, "trainer.limit_val_batches": 2},
        {"model.optimizer.init_args.lr": {"type": "float", "low": 0.01, "high": 0.3, "log": True}},
    )
    launched = time.time()
    study, wall = _run_search(search, tmp / f"out-{process}", "--n_trials", str(trials), "--trial_process", process)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    overheads = [t.user_attrs["wall_time"] - t.user_attrs["fit_seconds"] for t in done]
    first_start = min(t.datetime_start.timestamp() for t in study.trials)
    return {
        "what": f"--trial_process {process}",
        "trials": len(done),
        "trial_s": statistics.median(t.user_attrs["wall_time"] for t in done),
        "fit_s": statistics.median(t.user_attrs["fit_seconds"] for t in done),
        "overhead_s": statistics.median(overheads),
        "overhead_min_s": min(overheads),
        "overhead_max_s": max(overheads),
        "worker_startup_s": first_start - launched,
        "worker_wall_s": wall,
    }


def _storage_round_trip(tmp: Path, n: int = 50) -> float:
    """Milliseconds of one ask + tell on a journal file (what the worker adds per trial besides attributes)."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp / "round-trip.journal")))
    study = optuna.create_study(storage=storage, study_name="round-trip")
    start = time.perf_counter()
    for _ in range(n):
        trial = study.ask()
        study.tell(trial, 0.0)
    return (time.perf_counter() - start) / n * 1000


def _pruning(tmp: Path, pruned: bool, quick: bool) -> dict[str, Any]:
    lrs = LRS[::2] if quick else LRS
    epochs = 2 if quick else 4
    search = _search_file(
        tmp / f"pruning-{pruned}.yaml",
        {"trainer.max_epochs": epochs, "model.lr_scheduler.init_args.T_max": epochs},
        {"model.block": {"type": "categorical", "choices": ["basic", "plain"]},
         "model.optimizer.init_args.lr": {"type": "categorical", "choices": lrs}},
        sampler={"name": "grid", "seed": 0},
        pruner={"name": "median", "n_startup_trials": 2} if pruned else "none",
    )
    study, wall = _run_search(search, tmp / f"out-pruning-{pruned}")
    trials = [t for t in study.trials if t.state.is_finished()]
    best = max(t.values[0] for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    return {
        "what": "median pruner" if pruned else "no pruner",
        "trials": len(trials),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
        "epochs": sum(t.user_attrs.get("epochs", 0) for t in trials),
        "max_epochs": epochs * len(trials),
        "best_val_acc": best,
        "best_trial": next(f"{t.params['model.block']} lr {t.params['model.optimizer.init_args.lr']:g}"
                           for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.values[0] == best),
        "order": [f"{t.params['model.block']}/{t.params['model.optimizer.init_args.lr']:g}:{t.state.name[0]}" for t in trials],
        "wall_s": wall,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    trials = args.trials or (2 if args.quick else 4)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="rl-bench-search-") as tmp:
        tmp = Path(tmp)
        overhead = [_overhead(tmp, process, trials) for process in ("fork", "fresh")]
        round_trip = _storage_round_trip(tmp)
        pruning = [_pruning(tmp, pruned, args.quick) for pruned in (False, True)]
    saved = 1 - pruning[1]["epochs"] / pruning[0]["epochs"]
    return {
        "benchmark": "search",
        "overhead": overhead,
        "journal_ask_tell_ms": round_trip,
        "pruning": pruning,
        "epochs_saved": saved,
        "same_best": abs(pruning[0]["best_val_acc"] - pruning[1]["best_val_acc"]) < 1e-9,
    }


def table(result: dict[str, Any]) -> str:
    overhead = markdown_table(result["overhead"], {
        "what": "trial process", "trials": "trials", "trial_s": "trial s (median)", "fit_s": "fit s (median)",
        "overhead_s": "overhead s (median)", "overhead_min_s": "min", "overhead_max_s": "max",
        "worker_startup_s": "worker start-up s (once)",
    })
    pruning = markdown_table(result["pruning"], {
        "what": "run", "trials": "trials", "pruned": "pruned", "epochs": "epochs trained", "max_epochs": "of",
        "best_val_acc": "best val/acc", "best_trial": "best trial", "wall_s": "wall s",
    })
    same = "the same best accuracy" if result["same_best"] else "a different best accuracy (see the rows)"
    return (
        f"{overhead}\n\nOne ask + tell on the journal file: {result['journal_ask_tell_ms']:.1f} ms.\n\n{pruning}\n\n"
        f"Pruning trained **{100 * result['epochs_saved']:.0f}% fewer epochs** for {same}."
    )
