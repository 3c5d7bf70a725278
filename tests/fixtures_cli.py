"""Running the real command line in a fresh process, as a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "configs" / "digits.yaml")
RUN_NAME = "digits-cifar_resnet-d8"  # the run directory of --model.arch cifar_resnet --model.arch_kwargs {depth: 8}


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``resnet-lightning ARGS`` in ``cwd``, with ``env`` added to this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "resnet_lightning", *args],
        cwd=cwd, env=dict(os.environ, **(env or {})), capture_output=True, text=True, timeout=300,
    )
