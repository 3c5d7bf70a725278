"""A tiny comparison on digits (depth-8 CIFAR ResNets, two short epochs) and ways to run the real command on it."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.search.helpers import DIGITS, ENV


def tiny_comparison(path: Path, **changes: Any) -> Path:
    """Write a comparison of the basic and plain blocks at depth 8 (two seeds, two epochs) and return its path."""
    comparison = {
        "name": "tiny",
        "configs": [str(DIGITS)],
        "fixed": {
            "model.arch": "cifar_resnet",
            "model.arch_kwargs.depth": 8,
            "trainer.max_epochs": 2,
            "trainer.enable_model_summary": False,
            "trainer.log_every_n_steps": 5,
        },
        "baseline": "basic",
        "variants": {"basic": {"model.block": "basic"}, "plain": {"model.block": "plain"}},
        "seeds": 2,
        "metrics": ["test/acc", "train/acc"],
        **changes,
    }
    path.write_text(yaml.safe_dump(comparison, sort_keys=False))
    return path


def start_compare(*args: str, cwd: Path) -> subprocess.Popen:
    """``resnet-lightning compare ARGS`` in a new process, output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "resnet_lightning", "compare", *args], cwd=cwd, env={**os.environ, **ENV},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def compare(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``resnet-lightning compare ARGS`` to its end."""
    return subprocess.run(
        [sys.executable, "-m", "resnet_lightning", "compare", *args], cwd=cwd, env={**os.environ, **ENV},
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fit_runs(output: Path) -> list[Path]:
    """Every run directory a comparison's fits made."""
    return sorted(p for p in (output / "runs").glob("*/version_*") if p.is_dir())
