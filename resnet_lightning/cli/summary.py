"""What a fit ends with: its time, its best epoch, its checkpoints and the commands that test or continue it."""

from __future__ import annotations

import shlex
from pathlib import Path

from lightning.pytorch import Trainer

from ..callbacks import EpochLines
from ..console import PROG


def fit_summary(trainer: Trainer, seconds: float, argv: list[str], run_dir: Path | None) -> list[str]:
    """What a fit ends with: its time, its best epoch, its checkpoints and the commands to test or continue it."""
    epochs = trainer.current_epoch  # epochs completed, those of a resumed fit's earlier part included
    lines = [f"done in {_duration(seconds)}, {epochs} epoch{'s' if epochs != 1 else ''}"]
    callback = trainer.checkpoint_callback
    if callback is None:
        return lines
    score, monitor = getattr(callback, "best_model_score", None), getattr(callback, "monitor", None)
    if score is not None and monitor:
        best_epoch = next((c.best_epoch for c in trainer.callbacks if isinstance(c, EpochLines)), None)
        value = f"{float(score):.4f}" if "acc" in monitor else f"{float(score):.4g}"
        lines[0] += f"; best {monitor} {value}" + (f" at epoch {best_epoch + 1}" if best_epoch is not None else "")
    lines.append(f"best checkpoint {callback.best_model_path or 'none (nothing monitored was logged)'}")
    lines.append(f"last checkpoint {callback.last_model_path}")
    if callback.last_model_path and run_dir is not None:
        args = without_options(argv[1:] if argv[:1] == ["fit"] else argv, "--ckpt_path", "--run")
        run = ["--run", run_dir.name]
        if callback.best_model_path:
            lines.append(f"test it with: {shlex.join([PROG, 'test', *args, *run, '--ckpt_path', 'best'])}")
        lines.append(f"continue it with: {shlex.join([PROG, 'fit', *args, *run, '--ckpt_path', 'last'])} (and a larger --trainer.max_epochs)")
    return lines


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{seconds:.1f} s" if seconds < 60 else f"{minutes} min {rest} s"


def without_options(argv: list[str], *options: str) -> list[str]:
    """``argv`` without ``options`` (``--x v`` and ``--x=v``)."""
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif not arg.startswith(tuple(f"{option}=" for option in options)):
            args.append(arg)
    return args
