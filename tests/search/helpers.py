"""A tiny search on digits (depth 8, two short epochs) and ways to run the real command on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import yaml

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "configs" / "digits.yaml"
# One torch thread per worker: two workers share two cores without oversubscribing them.
ENV = {"WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
GOOD = {"model.block": "basic", "model.arch_kwargs.depth": 8, "model.optimizer.init_args.lr": 0.1}


def tiny_search(path: Path, **changes: Any) -> Path:
    """Write a search file for a depth-8 CIFAR ResNet on digits (two epochs) and return its path."""
    search = {
        "study": "tiny",
        "configs": [str(DIGITS)],
        "fixed": {
            "model.arch": "cifar_resnet",
            "trainer.max_epochs": 2,
            "trainer.enable_model_summary": False,
            "trainer.log_every_n_steps": 5,
        },
        "space": {
            "model.block": {"type": "categorical", "choices": ["basic", "plain", "se_basic"]},
            "model.arch_kwargs.depth": {"type": "categorical", "choices": [8, 9]},
            "model.optimizer.init_args.lr": {"type": "float", "low": 1.0e-5, "high": 0.3, "log": True},
        },
        "objectives": {"val/acc": "maximize"},
        "sampler": {"name": "tpe"},  # no seed: two workers with one seed would draw the same trials
        "pruner": {"name": "median", "n_startup_trials": 1},
        **changes,
    }
    path.write_text(yaml.safe_dump(search, sort_keys=False))
    return path


def start_search(*args: str, cwd: Path) -> subprocess.Popen:
    """``resnet-lightning search ARGS`` in a new process (a worker), output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "resnet_lightning", "search", *args], cwd=cwd, env={**os.environ, **ENV},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def finish(worker: subprocess.Popen, timeout: float = 240) -> str:
    """Wait for a worker; its output, after checking it succeeded."""
    out, _ = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, out[-4000:]
    return out


def journal_study(path: Path, name: str = "tiny") -> optuna.Study:
    """The study in a journal file, read through Optuna as any other reader would."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    return optuna.load_study(study_name=name, storage=storage)
