"""``resnet-lightning lr_find --config ...``: Lightning's learning-rate finder (and batch-size finder) on a fit's configuration.

The fit's own options (``--config``, ``--model.*``, ``--data.*``, ``--trainer.*``) build the model,
the data and the trainer as ``fit`` does; instead of training, :class:`lightning.pytorch.tuner.Tuner`
runs ``lr_find`` (Smith 2017, "Cyclical Learning Rates": the loss over a few hundred steps while the
learning rate grows from ``--min_lr`` to ``--max_lr``), saves the loss-vs-lr plot and prints the
suggestion (the steepest descent of the smoothed loss) with the flag that uses it. With
``--batch_size power|binsearch`` it runs ``scale_batch_size`` first and says the largest batch that fits.
No run directory is made, no checkpoint kept: nothing of it is a fit.
"""

from __future__ import annotations

import io
import sys
import warnings
from contextlib import nullcontext, redirect_stderr
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.tuner import Tuner

from ..callbacks import ArchitectureSummary, EpochLines
from ..console import PROG, tell
from ..errors import CommandParser, UsageError, debug_requested
from ..module import ResNetClassifier
from ..storage import atomic_path
from .held_notices import HeldNotices, QuietConsole
from .lightning import ResNetLightningCLI
from .options import check_trainer_options
from .user_errors import user_message


def _parser() -> CommandParser:
    parser = CommandParser(
        prog=f"{PROG} lr_find",
        description="Find a learning rate (and a batch size) for a fit's configuration with Lightning's Tuner. Every "
        "other option is fit's (see `resnet-lightning fit --help`), e.g. --config configs/digits.yaml.",
        epilog="example: resnet-lightning lr_find --config configs/digits.yaml --max_lr 1 --output lr_find.png",
    )
    parser.add_argument("--min_lr", type=float, default=1e-6, help="smallest learning rate tried (default 1e-6)")
    parser.add_argument("--max_lr", type=float, default=1.0, help="largest learning rate tried (default 1)")
    parser.add_argument("--num_training", type=int, default=100, help="steps of the search (default 100)")
    parser.add_argument("--mode", choices=("exponential", "linear"), default="exponential", help="how the rate grows")
    parser.add_argument("--output", type=Path, default=Path("lr_find.png"), help="the loss-vs-lr plot (default lr_find.png)")
    parser.add_argument("--batch_size", choices=("power", "binsearch"), default=None,
                        help="first find the largest batch size that fits (Tuner.scale_batch_size), by doubling or bisection")
    parser.add_argument("--max_trials", type=int, default=6, help="batch sizes tried at most (default 6)")
    return parser


def main(argv: list[str]) -> int:
    """Run ``lr_find``; the exit status."""
    options, fit_args = _parser().parse_known_args(argv)
    if not 0 < options.min_lr < options.max_lr:
        raise UsageError(
            f"lr_find: --min_lr {options.min_lr:g} --max_lr {options.max_lr:g} is not a range: need 0 < min_lr < max_lr; "
            "e.g. --min_lr 1e-6 --max_lr 1"
        )
    if options.num_training < 2 or options.max_trials < 1:
        raise UsageError(f"lr_find: --num_training {options.num_training} --max_trials {options.max_trials}: need "
                         "--num_training >= 2 (e.g. 100) and --max_trials >= 1")
    if options.output.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise UsageError(f"lr_find: --output {options.output}: the plot is written as .png, .pdf or .svg; e.g. --output lr_find.png")
    verbose = "--verbose" in fit_args or debug_requested()
    fit_args = [arg for arg in fit_args if arg != "--verbose"]
    with QuietConsole(verbose):
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")  # the args are ours
        held = HeldNotices()
        try:
            _LrFindCLI(
                ResNetClassifier, LightningDataModule, subclass_mode_data=True, save_config_callback=None,
                trainer_defaults={"enable_progress_bar": False, "logger": False}, auto_configure_optimizers=False,
                parser_kwargs={"prog": f"{PROG} lr_find", "exit_on_error": False, "allow_abbrev": False},
                args=["fit", *fit_args], held_output=held, argv=["lr_find", *argv], tuning=options,
            )
        except BaseException as exc:
            if not debug_requested() and user_message(exc) is not None:
                held.discard()  # the error line says why nothing ran
            raise
        finally:
            held.release()
    return 0


class _LrFindCLI(ResNetLightningCLI):
    """The fit CLI, with the Tuner run where ``fit`` would train, and no run directory."""

    def __init__(self, *args: Any, tuning: Any, **kwargs: Any) -> None:
        self.tuning = tuning
        super().__init__(*args, **kwargs)

    def before_instantiate_classes(self) -> None:
        config = self.config["fit"]
        check_trainer_options(config.trainer)
        self.run_dir = None

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        trainer = super().instantiate_trainer(**kwargs)
        # Nothing of the search is a fit: no checkpoints, no epoch lines, no model line.
        trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, (Checkpoint, EpochLines, ArchitectureSummary))]
        return trainer

    def _run_subcommand(self, subcommand: str) -> None:
        options, tuner = self.tuning, Tuner(self.trainer)
        if options.batch_size is not None:
            start = getattr(self.datamodule, "batch_size", None) or 2  # from the configured size up (Lightning's default: 2)
            size = tuner.scale_batch_size(self.model, datamodule=self.datamodule, mode=options.batch_size,
                                          init_val=start, max_trials=options.max_trials)
            tell(f"lr_find: the largest batch size found to fit in {options.max_trials} trials from {start} is {size}; "
                 f"use it with --data.batch_size {size} (and scale the learning rate with it)")
        # Lightning's finder always draws a tqdm bar: dropped where stderr is not a terminal (a log, a pipe, CI).
        with nullcontext() if sys.stderr.isatty() else redirect_stderr(_WithoutBar(sys.stderr)):
            finder = tuner.lr_find(self.model, datamodule=self.datamodule, min_lr=options.min_lr, max_lr=options.max_lr,
                                   num_training=options.num_training, mode=options.mode, update_attr=False)
        suggestion = finder.suggestion() if finder is not None else None
        if finder is None or suggestion is None:
            tell(f"lr_find: no suggestion: the loss did not fall over {options.num_training} steps between "
                 f"{options.min_lr:g} and {options.max_lr:g}; try more --num_training or another range")
            return
        figure = finder.plot(suggest=True)
        figure.axes[0].set_title(f"lr_find: suggestion {suggestion:.3g}")
        options.output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(options.output) as scratch:
            figure.savefig(scratch, format=options.output.suffix.lstrip(".").lower(), dpi=120, bbox_inches="tight")
        tell(f"lr_find: loss vs learning rate plotted in {options.output}")
        tell(f"lr_find: suggested learning rate {suggestion:.3g} (the steepest fall of the smoothed loss)")
        tell(f"lr_find: use it with {_flag(self.config['fit'].model.get('optimizer'), suggestion)}")


class _WithoutBar(io.TextIOBase):
    """A stream that passes on everything but the lr finder's progress bar (its refreshes and its closing newline)."""

    def __init__(self, stream: Any) -> None:
        self.stream, self.in_bar = stream, False

    def write(self, text: str) -> int:
        if _BAR in text or (self.in_bar and not text.strip()):
            self.in_bar = True
        else:
            self.in_bar = False
            self.stream.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


_BAR = "Finding best initial lr"


def _flag(optimizer: Any, lr: float) -> str:
    """The options that set the learning rate to ``lr``: the configured optimizer's, or the default SGD spelled out."""
    if optimizer is None:
        return f"--model.optimizer SGD --model.optimizer.lr {lr:.3g} --model.optimizer.momentum 0.9 --model.optimizer.weight_decay 1e-4"
    return f"--model.optimizer.lr {lr:.3g}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
