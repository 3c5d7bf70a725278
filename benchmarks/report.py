"""Benchmark 9, report: how long ``resnet-lightning report`` takes for the main job's run and for a 32-trial search.

**Run.** The main job as the README runs it: ``fit --config configs/digits.yaml`` (a
ResNet-20, 15 epochs), then ``test`` of its best checkpoint (with ``TestReport``, so the page
has its confusion matrix and misclassified samples), into a scratch directory.
Its report is then timed two ways: the page alone (``write_report`` in this process,
imports done: what a fit adds at its end when it writes its own page), and the whole
command as a user types it (``python -m resnet_lightning report RUN``: a fresh
interpreter, imports included).

**Search.** A 32-trial output of ``configs/search/digits.yaml`` (two objectives,
val/acc and MACs), made without training 32 networks: a real Optuna study in a real
journal file whose trials draw their parameters from the search file's space
(``suggest``) and are told made-up values (``ask``/``tell``: accuracy and MACs
from the block and depth, some trials pruned or failed), each with a run directory
copied from the ONE real run above; ``trials.csv``, ``pareto.csv``, ``pareto.png`` and
the best configs are written by the search's own code (``write_outputs``). The page's
slow parts are timed apart: the fANOVA importances (one random forest per objective)
and the hypervolume history.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import markdown_table

ROOT = Path(__file__).resolve().parents[1]
MAIN_JOB = ROOT / "configs" / "digits.yaml"
SEARCH_FILE = ROOT / "configs" / "search" / "digits.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=int, default=None, help="trials in the search output (default 32; --quick 4)")
    parser.add_argument("--repeats", type=int, default=None, help="timings of each report (default 3; --quick 1)")


def _cli(*args: str) -> tuple[float, str]:
    """``python -m resnet_lightning ARGS``: its wall seconds and stderr (it must succeed)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "resnet_lightning", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "WANDB_MODE": "offline"})
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"resnet-lightning {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return wall, done.stderr


def _main_job(root: Path, quick: bool) -> tuple[Path, float]:
    """Fit and test the main job into ``root``; its run directory and the fit's wall seconds."""
    short = ["--trainer.max_epochs=2", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"] if quick else []
    common = ["--config", str(MAIN_JOB), f"--trainer.default_root_dir={root}", *short]
    fit_s, _ = _cli("fit", *common)
    # With TestReport, as configs/wandb/logger.yaml has it: the page then holds the confusion matrix too.
    _cli("test", *common, "--ckpt_path", "best", "--trainer.callbacks+=resnet_lightning.callbacks.TestReport",
         *(["--trainer.limit_test_batches=2"] if quick else []))
    return next(root.glob("*/version_0")), fit_s


def _search_output(output: Path, run: Path, trials: int) -> dict[str, Any]:
    """A search output of ``trials`` trials with made-up values and copies of ``run`` (see the module docstring)."""
    import optuna
    from optuna.trial import TrialState

    from resnet_lightning.search.config import load_search_config
    from resnet_lightning.search.outputs import write_outputs
    from resnet_lightning.search.space import suggest
    from resnet_lightning.search.storage import JOURNAL_FILE, open_storage

    search = load_search_config(SEARCH_FILE)
    output.mkdir(parents=True)
    study = optuna.create_study(study_name=search.study, storage=open_storage(str(output / JOURNAL_FILE)),
                                directions=search.directions, sampler=optuna.samplers.RandomSampler(seed=0))
    rng = random.Random(0)
    states = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
    for number in range(trials):
        trial = study.ask()
        params = suggest(trial, search.space)
        depth, block = params["model.arch_kwargs.depth"], params["model.block"]
        run_dir = output / "runs" / f"digits-cifar_resnet-{block}-d{depth}" / f"version_{number}"
        shutil.copytree(run, run_dir)
        macs = 0.75e6 * (depth - 2) / 6 * 4  # about what count_macs says at 8x8 (0.75 M for depth 8), widths x4 for 16/32/64
        attrs = {"macs": macs, "params": int(macs / 9), "epochs": 8, "wall_time": 2.0 * depth, "fit_seconds": 1.8 * depth,
                 "run_dir": str(run_dir)}
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        plain_penalty = 0.004 * depth if block == "plain" else 0.0  # deep plain nets train worse (the paper's point)
        lr_penalty = 0.05 * abs(math.log10(params["model.optimizer.init_args.lr"] / 0.1))
        acc = min(0.995, 0.97 - plain_penalty - lr_penalty + rng.gauss(0, 0.005))
        if number % 11 == 10:
            state = TrialState.FAIL
            trial.set_user_attr("fail_reason", "made up: out of memory")
            study.tell(trial, state=state)
        elif number % 7 == 6:
            state = TrialState.PRUNED
            study.tell(trial, state=state)
        else:
            state = TrialState.COMPLETE
            study.tell(trial, [acc, macs])
        states[state.name] += 1
    write_outputs(study, search, output)
    return states


def _time(function: Any, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def _row(what: str, page: Path, in_process: list[float], command: list[float], detail: str) -> dict[str, Any]:
    return {
        "what": what, "detail": detail, "page_kib": page.stat().st_size / 1024,
        "images": page.read_text().count("<img "),
        "in_process_s": statistics.median(in_process), "in_process_rounds": [round(t, 2) for t in in_process],
        "command_s": statistics.median(command), "command_rounds": [round(t, 2) for t in command],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from resnet_lightning.report.command import write_report
    from resnet_lightning.report.search import JOURNAL_FILE, _hypervolume, _importances

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = args.trials or (4 if args.quick else 32)
    repeats = args.repeats or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="rl-bench-report-") as tmp:
        tmp = Path(tmp)
        run_dir, fit_s = _main_job(tmp / "main", args.quick)
        run_in = _time(lambda: write_report(run_dir, tmp / "run.html"), repeats)
        run_cmd = [_cli("report", str(run_dir), "--output", str(tmp / "run.html"))[0] for _ in range(repeats)]
        csv_rows = len((run_dir / "metrics.csv").read_text().splitlines()) - 1
        pngs = sum(1 for _ in run_dir.rglob("*.png"))
        rows = [_row("run: the main job (fit + test)", tmp / "run.html", run_in, run_cmd,
                     f"{2 if args.quick else 15} epochs, {csv_rows} metrics.csv rows, {pngs} PNGs")]

        output = tmp / "search"
        states = _search_output(output, run_dir, trials)
        search_in = _time(lambda: write_report(output, tmp / "search.html"), repeats)
        search_cmd = [_cli("report", str(output), "--output", str(tmp / "search.html"))[0] for _ in range(repeats)]
        counts = ", ".join(f"{n} {s.lower()}" for s, n in states.items() if n)
        rows.append(_row(f"search: {trials} trials of configs/search/digits.yaml", tmp / "search.html", search_in, search_cmd,
                         counts))
        columns = list(next(iter(_csv_header(output / "trials.csv"))))
        parts = {
            "importances_s": statistics.median(_time(lambda: _importances(output / JOURNAL_FILE, columns), repeats)),
            "hypervolume_s": statistics.median(_time(lambda: _hypervolume(output / JOURNAL_FILE, columns), repeats)),
        }
    return {"benchmark": "report", "fit_s": fit_s, "rows": rows, "search_parts": parts, "trials": trials, "repeats": repeats}


def _csv_header(path: Path) -> list[list[str]]:
    import csv

    with open(path, newline="") as f:
        return [next(csv.reader(f))]


def table(result: dict[str, Any]) -> str:
    rows = [{**r, "in_rounds": ", ".join(f"{t:.2f}" for t in r["in_process_rounds"]),
             "cmd_rounds": ", ".join(f"{t:.2f}" for t in r["command_rounds"])} for r in result["rows"]]
    main = markdown_table(rows, {
        "what": "report of", "detail": "what it holds", "page_kib": "page KiB", "images": "images",
        "in_process_s": "page alone, s (median)", "in_rounds": "rounds", "command_s": "`resnet-lightning report`, s (median)",
        "cmd_rounds": "rounds",
    })
    parts = result["search_parts"]
    return (
        f"{main}\n\nOf the search's page: fANOVA importances {parts['importances_s']:.2f} s, hypervolume history "
        f"{parts['hypervolume_s']:.2f} s. The main job's fit took {result['fit_s']:.0f} s (its own report is the "
        f"'page alone' figure, written when it ends)."
    )
