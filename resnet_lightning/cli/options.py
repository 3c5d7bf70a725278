"""Checks of the command line that jsonargparse cannot make: Trainer options out of range, an
accelerator the machine lacks, LightningCLI's own optimizer flags, a run directory that cannot be made."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .parse_errors import unknown_class

# LightningCLI's automatic optimizer would silently replace the model's own (and its schedule).
AUTO_OPTIMIZER_FLAGS = ("--optimizer", "--lr_scheduler")


def refuse_auto_optimizer(argv: list[str]) -> None:
    """Raise ``UsageError`` for ``--optimizer``/``--lr_scheduler``: the model's own options set them."""
    for i, arg in enumerate(argv):
        flag = arg.split("=", 1)[0]
        if flag.split(".", 1)[0] in AUTO_OPTIMIZER_FLAGS:
            what = flag.split(".", 1)[0].removeprefix("--")
            value = arg.split("=", 1)[1] if "=" in arg else argv[i + 1] if i + 1 < len(argv) else ""
            example = f"--model.{what} {value}" if flag == f"--{what}" and value and not value.startswith("-") else ""
            if example and "did you mean " in (typo := unknown_class(f"model.{what}", value)):
                closest = typo.split("did you mean ", 1)[1].split("?", 1)[0]
                if closest != value:  # "Adam" is a name already: no "did you mean Adam, not Adam?"
                    example = f"--model.{what} {closest} (did you mean {closest}, not {value}?)"
            example = example or "--model.optimizer SGD --model.optimizer.lr 0.05"
            raise UsageError(
                f"{flag} is not an option here; set the model's {what} with --model.{what} instead, e.g. "
                f"{example}, which keeps its schedule and warm-up"
            )


# Trainer options Lightning takes without a check (or fails on mid-fit): (option, lowest value, what it means).
_TRAINER_MINIMUMS = (
    ("accumulate_grad_batches", 1, "batches per optimizer step"),
    ("check_val_every_n_epoch", 1, "epochs between validations"),
    ("log_every_n_steps", 0, "steps between logged values"),
    ("min_epochs", 0, "epochs"),
    ("num_sanity_val_steps", -1, "validation batches before training (-1: all)"),
    ("gradient_clip_val", 0, "the gradient's largest norm or value (0: no clipping)"),
    ("fast_dev_run", 0, "batches of a quick check (0: off)"),
    ("limit_train_batches", 0, "a fraction (0.0-1.0) or a count of batches"),
    ("limit_val_batches", 0, "a fraction (0.0-1.0) or a count of batches"),
    ("limit_test_batches", 0, "a fraction (0.0-1.0) or a count of batches"),
    ("limit_predict_batches", 0, "a fraction (0.0-1.0) or a count of batches"),
)


def check_trainer_options(trainer: Any) -> None:
    """Raise ``UsageError`` for a Trainer option out of range, or an accelerator this machine lacks.

    Args:
        trainer: The ``trainer`` section of the parsed config.
    """
    for name, lowest, meaning in _TRAINER_MINIMUMS:
        value = trainer.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < lowest:
            raise UsageError(f"--trainer.{name} {value}: must be {lowest} or more ({meaning})")
    for name in ("val_check_interval",):
        value = trainer.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            raise UsageError(f"--trainer.{name} {value}: must be more than 0 (a fraction of an epoch, or a count of batches)")
    accelerator = trainer.get("accelerator")
    if isinstance(accelerator, str) and accelerator.lower() in ("gpu", "cuda", "mps", "tpu"):
        from lightning.pytorch.accelerators import CUDAAccelerator, MPSAccelerator, XLAAccelerator

        found = {"cuda": CUDAAccelerator.is_available(), "mps": MPSAccelerator.is_available(), "tpu": XLAAccelerator.is_available()}
        wanted = ("cuda", "mps") if accelerator.lower() == "gpu" else (accelerator.lower(),)
        if not any(found[name] for name in wanted):
            have = [name for name, ok in found.items() if ok] + ["cpu"]
            device = "GPU (CUDA or MPS)" if accelerator.lower() == "gpu" else accelerator.upper()
            raise UsageError(
                f"--trainer.accelerator {accelerator}: this machine has no {device} that PyTorch can use "
                f"(available: {', '.join(have)}); use --trainer.accelerator {have[0]}, or auto to take what there is"
            )


def run_directory_error(err: OSError, root: Any) -> UsageError | None:
    """One line for an ``OSError`` while creating the run directory under ``root`` (None: a full disk, said elsewhere)."""
    if err.errno is None or err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return None  # an error of ours that is an OSError (RunNotFoundError), or a full disk
    path = Path(err.filename) if err.filename else Path(str(root or "."))
    shown = str(root) if len(str(root)) <= 80 else str(root)[:77] + "..."
    option = f"--trainer.default_root_dir {shown}" if root not in (None, ".", "") else f"the working directory {Path.cwd()}"
    if err.errno == errno.ENOTDIR or (err.errno == errno.EEXIST and not path.is_dir()):
        blocker = next((parent for parent in [path, *path.parents] if parent.exists() and not parent.is_dir()), path)
        return UsageError(
            f"{option}: cannot create the run directory {path}: {blocker} is a file, not a directory; "
            "give a directory (it is created if missing), or move the file"
        )
    if err.errno == errno.ENAMETOOLONG:
        long_part = max(path.parts, key=len)
        return UsageError(
            f"{option}: cannot create the run directory: the name {long_part[:40]}... is {len(long_part.encode())} bytes, "
            f"over the filesystem's limit of {_name_max(path)}; use a shorter --trainer.default_root_dir"
        )
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "the filesystem is read-only" if err.errno == errno.EROFS else "permission denied"
        return UsageError(
            f"{option}: cannot create the run directory {path}: {why}; run from a directory you can write to, "
            "or give one with --trainer.default_root_dir DIR"
        )
    return UsageError(f"{option}: cannot create the run directory {path}: {err.strerror}; give another --trainer.default_root_dir")


def _name_max(path: Path) -> int:
    for parent in [path, *path.parents]:
        try:
            return os.pathconf(parent, "PC_NAME_MAX")
        except OSError:
            continue
    return 255
