"""Run directories: one per ``fit``, found again by name to evaluate or continue it.

A framework for comparing runs must never report one run's result as another's,
so every fit writes into a directory that no other fit writes to::

    <root>/<run name>/version_<N>/      root: --trainer.default_root_dir (default: .)
        run.json                        who made it: command line, host, pid, SLURM job
        config.yaml                     the resolved CLI config
        metrics.csv  hparams.yaml       the default CSV logger (wandb/ with a WandbLogger)
        checkpoints/last.ckpt           the latest state, rewritten every epoch
        checkpoints/best-*.ckpt         the best by the monitored metric (save_top_k)
        test/version_<K>/ ...           what later `test` / `validate` / `predict` logged

The run name is ``<data>-<arch>[-<block>][-d<depth>]``. ``version_<N>`` is claimed
with an exclusive ``mkdir``, so two fits started at once in one directory get two
versions.

A run is written by one process at a time (its ``run.lock``), and a run directory
exists only for a fit that started training: :mod:`resnet_lightning.run_claims`, whose
functions are used from here too (``runs.lock_run``, ``runs.claims``). Nothing here
imports Lightning or torch: the CLI, the W&B setup and the analyses all read runs
through these functions.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UserError
from .run_claims import (  # noqa: F401  (re-exported: callers use runs.lock_run, runs.claims, ...)
    LOCK_FILE,
    RunInUseError,
    claim_new_run,
    claims,
    discard_unstarted,
    lock_run,
    mark_started,
    release_run,
    watch_for_leftovers,
)
from .storage import write_atomically

VERSION_PREFIX = "version_"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
RUN_FILE = "run.json"


class RunNotFoundError(UserError, FileNotFoundError):
    """No run (or no run with a checkpoint) matches what was asked for."""


def arch_depth(arch: str, arch_kwargs: dict[str, Any] | None) -> int | None:
    """The depth an architecture was asked for: ``arch_kwargs["depth"]``, else the name's number."""
    if arch_kwargs and isinstance(arch_kwargs.get("depth"), int):
        return arch_kwargs["depth"]
    match = re.search(r"(\d+)$", arch)  # cifar_resnet56 -> 56, resnet50 -> 50
    return int(match.group(1)) if match else None


def data_name(data_class_path: str) -> str:
    """``resnet_lightning.data.DigitsDataModule`` -> ``digits``."""
    return data_class_path.rsplit(".", 1)[-1].removesuffix("DataModule").lower()


def run_name(data_class_path: str, arch: str, block: str | None, arch_kwargs: dict[str, Any] | None) -> str:
    """The name shared by every run of one setting: ``<data>-<arch>[-<block>][-d<depth>]``.

    Seeds of one setting share it (they are versions of one name); settings that
    differ in data, architecture, block or depth never do. It is also the W&B group.

    Args:
        data_class_path: The DataModule's class path.
        arch: Architecture name.
        block: Block name, or None for the architecture's default.
        arch_kwargs: Architecture options (a ``depth`` there is part of the name).
    """
    depth = arch_depth(arch, arch_kwargs)
    name = "-".join(str(p) for p in (data_name(data_class_path), arch, block) if p)
    if depth is not None and not arch.endswith(str(depth)):
        name += f"-d{depth}"
    return name.replace(":", "_").replace(os.sep, "_")  # "dist:block" plugin names


def version_of(run_dir: Path) -> int | None:
    """``.../version_7`` -> 7; None for a directory not named like a run version."""
    suffix = run_dir.name.removeprefix(VERSION_PREFIX)
    return int(suffix) if run_dir.name.startswith(VERSION_PREFIX) and suffix.isdigit() else None


def list_runs(root: str | os.PathLike[str], name: str) -> list[Path]:
    """Every ``version_<N>`` directory of ``name`` under ``root``, oldest (lowest N) first."""
    parent = Path(root) / name
    if not parent.is_dir():
        return []
    runs = [p for p in parent.iterdir() if p.is_dir() and version_of(p) is not None]
    return sorted(runs, key=version_of)


def new_run(root: str | os.PathLike[str], name: str, argv: list[str] | None = None) -> Path:
    """Claim the next free ``<root>/<name>/version_<N>`` and describe it in ``run.json``.

    ``mkdir`` without ``exist_ok`` is atomic: of two fits racing for one number,
    one gets it and the other takes the next.

    Args:
        root: The runs' root directory.
        name: The run name (:func:`run_name`).
        argv: The command line, recorded in ``run.json``.
    """
    parent = Path(root).resolve() / name
    created = [d for d in (parent, *parent.parents) if not d.exists()]  # innermost first
    parent.mkdir(parents=True, exist_ok=True)
    runs = list_runs(root, name)
    version = version_of(runs[-1]) + 1 if runs else 0
    while True:
        run_dir = parent / f"{VERSION_PREFIX}{version}"
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            version += 1
        except FileNotFoundError:  # another process's failed fit removed the empty <name>/ just now
            parent.mkdir(parents=True, exist_ok=True)
    claim_new_run(run_dir, created)
    info = {
        "argv": list(sys.argv if argv is None else argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_job_id": slurm_job_id(),
    }
    write_atomically(run_dir / RUN_FILE, json.dumps(info, indent=2) + "\n")
    return run_dir


def run_info(run_dir: Path) -> dict[str, Any]:
    """What ``run.json`` says about a run ({} if it has none or it is unreadable)."""
    try:
        return json.loads((run_dir / RUN_FILE).read_text())
    except (OSError, ValueError):
        return {}


def slurm_job_id() -> str | None:
    """This process's SLURM job (``<array job>_<task>`` for array jobs), or None outside SLURM.

    A requeued job keeps its id, which is how it finds its run again.
    """
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None:
        return f"{array_job}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    return os.environ.get("SLURM_JOB_ID")


def requeued_run(root: str | os.PathLike[str], name: str) -> Path | None:
    """The newest run of ``name`` that this SLURM job created, when SLURM requeued the job.

    Lightning's auto-requeue saves ``hpc_ckpt_<k>.ckpt`` into the trainer's root
    directory (the run directory) and, when the job restarts, loads it from there.
    The requeued job runs the same command, so it must land in the same run.
    """
    job = slurm_job_id()
    if job is None or int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) < 1:
        return None
    for run_dir in reversed(list_runs(root, name)):
        if run_info(run_dir).get("slurm_job_id") == job:
            return run_dir
    return None


def checkpoint_dir(run_dir: Path) -> Path:
    """Where a run keeps its checkpoints."""
    return run_dir / CHECKPOINT_DIR


def run_of_checkpoint(path: str | os.PathLike[str]) -> Path | None:
    """The run directory a checkpoint file belongs to, if it lies in one (``<run>/checkpoints/x.ckpt``)."""
    path = Path(path).resolve()
    run_dir = path.parent.parent
    return run_dir if path.parent.name == CHECKPOINT_DIR and version_of(run_dir) is not None else None


def newest_run_with_checkpoint(
    root: str | os.PathLike[str], name: str, differs: Callable[[Path], str | None] | None = None
) -> tuple[Path, list[tuple[Path, str]]]:
    """The newest run of ``name`` whose ``last.ckpt`` exists (and that ``differs`` accepts).

    Args:
        root: The runs' root directory.
        name: The run name.
        differs: Given a run with a checkpoint, why it is not the one wanted (its model
            differs from the command's, say), or None to take it.

    Returns:
        The run, and the newer runs skipped, each with why (``"no checkpoints/last.ckpt"``
        or what ``differs`` said).

    Raises:
        RunNotFoundError: No run of that name has a checkpoint (or none that ``differs`` accepts).
    """
    runs = list_runs(root, name)
    skipped: list[tuple[Path, str]] = []
    for run_dir in reversed(runs):
        if not (checkpoint_dir(run_dir) / LAST_CHECKPOINT).is_file():
            skipped.append((run_dir, f"no {CHECKPOINT_DIR}/{LAST_CHECKPOINT}"))
            continue
        why = differs(run_dir) if differs is not None else None
        if why is None:
            return run_dir, skipped
        skipped.append((run_dir, why))
    where = Path(root).resolve() / name
    with_checkpoint = [run for run, why in skipped if not why.startswith("no ")]
    if not runs:
        found = "no run there"
    elif not with_checkpoint:
        found = f"{len(runs)} run(s) there, none with a {CHECKPOINT_DIR}/{LAST_CHECKPOINT}"
    else:
        found = f"{len(runs)} run(s) there; " + "; ".join(f"{run.name}: {why}" for run, why in skipped)
    raise RunNotFoundError(f"no checkpoint of a run named {name!r} in {where} ({found})")


def select_run(root: str | os.PathLike[str], name: str, run: str) -> Path:
    """The run that ``--run`` names: ``3``, ``version_3`` (of ``name`` under ``root``) or a run directory's path.

    Raises:
        RunNotFoundError: There is no such run; the message lists the ones there are.
    """
    version = run.removeprefix(VERSION_PREFIX)
    candidate = Path(root).resolve() / name / f"{VERSION_PREFIX}{version}" if version.isdigit() else Path(run)
    if candidate.is_dir():
        return candidate.resolve()
    available = ", ".join(p.name for p in list_runs(root, name)) or "none"
    raise RunNotFoundError(
        f"--run {run}: no run directory {candidate}; runs of {name!r} under {Path(root).resolve()}: {available}"
    )


def stale_checkpoints(ckpt_dir: Path, keep: set[str], prefix: str) -> list[Path]:
    """Checkpoints named ``<prefix>*.ckpt`` in ``ckpt_dir`` that are not in ``keep`` (file names).

    A run killed between saving a new best checkpoint and its ``last.ckpt`` leaves
    best files its last state does not know about; a resumed run would write its
    own beside them and break ``save_top_k``.
    """
    if not ckpt_dir.is_dir():
        return []
    return sorted(p for p in ckpt_dir.glob(f"{prefix}*.ckpt") if p.name not in keep)
