"""``resnet-lightning fit|validate|test|predict``: the LightningCLI over :class:`ResNetClassifier`
and any ``LightningDataModule`` (``--data DigitsDataModule``, ``--data CIFAR10DataModule``, or a
full class path), with one run directory per fit (:mod:`resnet_lightning.runs`).

Reached through :func:`resnet_lightning.cli.cli_main`, which turns user errors into one line.
"""

from __future__ import annotations

import importlib
import shlex
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentError
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import ProgressBar as LightningProgressBar
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

from .. import data  # noqa: F401  (imports the DataModules so --data finds them by name)
from .. import runs
from ..callbacks import ArchitectureSummary, EpochLines, RNGStateCheckpoint, RunCheckpoint, StopOnSignal, TrainingStarted
from ..callbacks.epoch_lines import ProgressBar
from ..callbacks.prediction_writer import PredictionWriter
from ..callbacks.run_report import RunReport
from ..checkpoint_io import AtomicCheckpointIO, read_checkpoint
from ..config_limits import register_parser_mode
from ..console import PROG, tell
from ..errors import UsageError, debug_requested
from ..models.pretrained import WeightsError, is_weights_file, read_weights_file
from ..module import ModelConfigError, ResNetClassifier
from ..tracking import LoggerSaveConfigCallback, prepare_wandb_logger, start_wandb_runs
from .commands import COMMANDS
from .checkpoint_options import (
    EVALUATION_KEYS,
    check_linked_hyperparameters,
    reconcile_hyperparameters,
    saved_hyperparameters,
)
from .held_notices import HeldNotices, QuietConsole
from .options import check_trainer_options, refuse_auto_optimizer, run_directory_error
from .parse_errors import parse_error
from .run_choice import BEST_PREFIX, prepare_evaluation_run, prepare_fit_run
from .summary import fit_summary, without_options
from .user_errors import user_message


class ResNetLightningCLI(LightningCLI):
    """LightningCLI with the DataModule's shape linked into the model, and one run
    directory per fit (see :mod:`resnet_lightning.runs`) that ``test``/``validate``/
    ``predict`` and ``fit --ckpt_path last`` find again by run name."""

    run_dir: Path | None = None
    saved_hparams: dict[str, Any] | None = None  # of the checkpoint to load, if any

    def __init__(self, *args: Any, held_output: HeldNotices | None = None, argv: list[str] | None = None, **kwargs: Any) -> None:
        self.held_output = held_output
        self.argv = argv or []  # the command line, for the commands the summary suggests
        self.fit_started = 0.0
        super().__init__(*args, **kwargs)

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        # Every parser (the main one and each subcommand's) loads YAML within size limits:
        # an alias bomb or a 20,000-level nesting is refused instead of hanging or overflowing.
        kwargs.setdefault("parser_mode", register_parser_mode())
        return super().init_parser(**kwargs)

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        try:
            self._default_data_to_the_chosen_class(parser, args)
            super().parse_arguments(parser, args)
        except (ArgumentError, UnicodeDecodeError) as exc:  # exit_on_error=False: the errors come here
            argv = [str(arg) for arg in (sys.argv[1:] if args is None else args)] if not isinstance(args, dict) else []
            raise parse_error(exc, argv, self._subcommand_parsers) from exc
        seed = self.config.get(f"{self.config.get('subcommand')}.seed_everything")
        if not isinstance(seed, bool) and isinstance(seed, int) and not 0 <= seed < 2**32:  # checked before Lightning seeds
            raise UsageError(f"--seed_everything {seed}: a seed is from 0 to {2**32 - 1}; e.g. --seed_everything 42")

    def _default_data_to_the_chosen_class(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        # jsonargparse carries the default DataModule's values over to the class the user
        # names when their keys match (jsonargparse#460): `--data CIFAR10DataModule` got
        # Digits' batch_size 64 and num_workers 0 instead of CIFAR's own 128 and 4. A first
        # parse (without --print_config, which would print and exit) finds the chosen class;
        # with it as the default, the real parse starts from that class's own defaults.
        # tests/test_cli.py::test_jsonargparse_460_is_still_there_so_the_double_parse_stays fails once it is fixed.
        if isinstance(args, dict):
            return
        argv = [str(arg) for arg in (sys.argv[1:] if args is None else args)]
        if not any(arg.startswith(("--data", "--config")) for arg in argv):
            return  # only those can choose another DataModule: spare the extra parse
        subcommand = argv[0] if argv and argv[0] in self._subcommand_parsers else None
        sub_parser = self._subcommand_parsers[subcommand] if subcommand else parser
        default = sub_parser.get_defaults().get("data")
        if default is None:
            return
        config = parser.parse_args([arg for arg in argv if not arg.startswith("--print_config")])
        chosen = (config[subcommand] if subcommand else config).get("data")
        if chosen is not None and chosen.class_path != default.class_path:
            sub_parser.set_defaults({"data": {"class_path": chosen.class_path}})

    def after_instantiate_classes(self) -> None:
        # A checkpoint whose tensors do not fit the network is one line now, not after Lightning's notices.
        ckpt_path = self.config[self.subcommand].get("ckpt_path")
        if self.saved_hparams is not None and ckpt_path is not None:
            state_dict = read_checkpoint(ckpt_path).get("state_dict")
            if isinstance(state_dict, dict) and (problem := self.model.checkpoint_mismatch(state_dict, ckpt_path)) is not None:
                raise problem
        # A fresh fit's weights file that is missing, damaged or hostile: one line now, not after Lightning's notices
        # (a resumed fit needs no weights file: the checkpoint replaces them).
        weights = self.model.hparams.get("weights")
        if self.subcommand == "fit" and ckpt_path is None and weights is not None and is_weights_file(weights):
            try:
                read_weights_file(weights)
            except WeightsError as err:
                raise ModelConfigError(f"--model.weights: {err}") from None
        # A dataset that is not there and will not be downloaded: one line now, not after Lightning's notices.
        check_available = getattr(self.datamodule, "check_available", None)
        if callable(check_available):
            check_available()
        # The configuration was good: what was said while checking it is worth reading.
        if self.held_output is not None:
            self.held_output.release()

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.in_channels", "model.in_channels", apply_on="instantiate")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.add_argument(
            "--run",
            type=str | None,
            default=None,
            help="Which run of this run name to evaluate or continue: N, version_N or a run directory "
            "(default: the newest with a checkpoint). Runs live in <default_root_dir>/<data>-<arch>[-<block>]/version_N.",
        )
        parser.add_argument("--report", type=bool, default=True, help="fit and test: write the run's report.html "
                            "(one self-contained HTML page) when they end; `resnet-lightning report RUN` writes it at any time.")
        parser.set_defaults(
            {
                "data": {"class_path": "resnet_lightning.data.DigitsDataModule"},
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": f"{BEST_PREFIX}{{epoch:03d}}-{{step:06d}}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        check_trainer_options(config.trainer)
        if not config.trainer.get("enable_progress_bar") and _configures_a_progress_bar(config.trainer.get("callbacks")):
            config.trainer.enable_progress_bar = True  # a bar asked for by its callback, not off by our default
        try:
            if self.subcommand == "fit":
                self.run_dir = prepare_fit_run(config)
            else:
                self.run_dir = prepare_evaluation_run(config, self.subcommand)
        except OSError as err:  # a file in the way, a name too long, a directory we may not write
            problem = run_directory_error(err, config.trainer.get("default_root_dir"))
            if problem is None:
                raise
            raise problem from err
        self.saved_hparams = None if config.get("ckpt_path") is None else saved_hyperparameters(config.ckpt_path)
        if self.saved_hparams is not None:
            defaults = self._subcommand_parsers[self.subcommand].get_defaults().model
            keys = None if self.subcommand == "fit" else EVALUATION_KEYS  # all to continue a fit, the network's to evaluate
            adopted = reconcile_hyperparameters(config.model, defaults, self.saved_hparams, config.ckpt_path, keys)
            if adopted:
                tell(f"{self.subcommand}: from the checkpoint: " + ", ".join(f"model.{k}={v!r}" for k, v in adopted.items()))
                self.config = self.parser.parse_object({self.subcommand: {"model": adopted}}, self.config)
                config = self.config[self.subcommand]
        # A WandbLogger gets project/group/tags from the run name, the run id of the
        # checkpoint it resumes, offline mode when W&B is unreachable, and the run directory.
        prepare_wandb_logger(config, self.subcommand)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ValueError, TypeError) as err:  # Trainer's checks of its arguments
            raise UsageError(
                f"--trainer options: {' '.join(str(err).split())}; fix the value (`{PROG} {self.subcommand} --help` lists them)"
            ) from err
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # not a user's own CheckpointIO
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        if self.subcommand == "predict":  # predictions.csv in the run's predict/version_<K>/
            trainer.callbacks.append(PredictionWriter())
        if self.subcommand == "fit" and self.run_dir is not None:  # the run stays once training starts
            trainer.callbacks.append(TrainingStarted(self.run_dir))
        if self.subcommand in ("fit", "test") and self.run_dir is not None and self.config[self.subcommand].get("report"):
            trainer.callbacks.append(RunReport(self.run_dir))  # <run>/report.html when it ends
        if self.subcommand == "fit" and not any(isinstance(c, ArchitectureSummary) for c in trainer.callbacks):
            trainer.callbacks.append(ArchitectureSummary())  # the one model line: arch, block, depth, parameters, MACs
        if self.subcommand == "fit":  # last: it reads what the other callbacks logged and kept this epoch
            trainer.callbacks.append(EpochLines())
        for i, bar in enumerate(trainer.callbacks):  # Lightning's own bar (the default or configured), not a subclass
            if type(bar) is TQDMProgressBar:
                trainer.callbacks[i] = ProgressBar(bar.refresh_rate, bar.process_position, bar._leave)
        return trainer

    def _parse_ckpt_path(self) -> None:
        # Lightning's version overwrites every --model.* option with the checkpoint's
        # hyperparameters (and reads a damaged file with a traceback); the checkpoint is
        # resolved, checked and reconciled with the options in before_instantiate_classes.
        return

    def _check_checkpoint_matches_model(self) -> None:
        if self.saved_hparams is not None:
            check_linked_hyperparameters(dict(self.model.hparams), self.saved_hparams, self.config_init[self.subcommand].ckpt_path)

    def before_fit(self) -> None:
        self._check_checkpoint_matches_model()
        start_wandb_runs(self.trainer)  # here, a W&B server failing leaves an offline run; inside fit, a crash
        self.fit_started = time.perf_counter()

    def after_fit(self) -> None:
        for text in fit_summary(self.trainer, time.perf_counter() - self.fit_started, self.argv, self.run_dir):
            tell(f"fit: {text}")

    def before_validate(self) -> None:
        self._check_checkpoint_matches_model()
        start_wandb_runs(self.trainer)

    def before_test(self) -> None:
        self._check_checkpoint_matches_model()
        start_wandb_runs(self.trainer)

    def before_predict(self) -> None:
        self._check_checkpoint_matches_model()
        start_wandb_runs(self.trainer)


def run_lightning_cli(args: ArgsType = None, run: bool = True) -> ResNetLightningCLI:
    """Build (and with ``run``, run) the LightningCLI for ``args`` (None: ``sys.argv[1:]``); user errors are raised, not printed.

    A fit stopped by SIGTERM (or SIGINT, SIGUSR1...) exits with 128 + the signal's number after
    printing where its state is and the command that continues it.
    """
    argv = [str(arg) for arg in (sys.argv[1:] if args is None else args)]
    verbose = "--verbose" in argv or debug_requested()  # Lightning's notices and every library warning, as they come
    if "--verbose" in argv:
        argv = args = [arg for arg in argv if arg != "--verbose"]
    refuse_auto_optimizer(argv)
    with QuietConsole(verbose):
        if args is argv:  # given as a list now: LightningCLI's warning that args came from sys.argv is about us
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        return _run(args, argv, run)


def _run(args: ArgsType, argv: list[str], run: bool) -> ResNetLightningCLI:
    stop = StopOnSignal()
    held = HeldNotices()
    try:
        # A fit that fails before training starts (a bad option, missing data, unreachable
        # weights) removes the run it claimed; the run's lock is released when the command ends.
        with runs.claims(completes=run):
            return ResNetLightningCLI(
                ResNetClassifier,
                LightningDataModule,
                subclass_mode_data=True,
                # No progress bar where stderr is not a terminal (a log file, a pipe, CI): its
                # refreshes would be hundreds of lines; EpochLines prints one line per epoch instead.
                trainer_defaults={"callbacks": [RNGStateCheckpoint(), stop], "enable_progress_bar": sys.stderr.isatty()},
                # Logs the whole resolved config as flat keys (plus versions) to every logger.
                save_config_callback=LoggerSaveConfigCallback,
                # A resumed fit writes its config where the run's first part did.
                save_config_kwargs={"overwrite": True},
                auto_configure_optimizers=False,
                # Parse errors are raised (cli_main prints them as one line), not printed with the
                # usage; no abbreviations: --trainer.max_epoch is a typo to point out, not max_epochs.
                parser_kwargs={"description": _description(), "prog": PROG, "exit_on_error": False, "allow_abbrev": False},
                args=args,  # None: LightningCLI reads sys.argv itself
                run=run,
                held_output=held,
                argv=argv,
            )
    except SIGTERMException:
        held.release()
        signum = stop.signum or signal.SIGTERM
        print(_resume_hint(signal.Signals(signum).name, stop, argv), file=sys.stderr)
        raise SystemExit(128 + signum) from None
    except BaseException as exc:
        if not debug_requested() and user_message(exc) is not None:
            held.discard()  # it described a run that is not going to happen; the error line says why
        raise  # cli_main prints a user error as one line; a bug keeps its traceback, after what was held
    finally:
        held.release()


def _resume_hint(signal_name: str, stop: StopOnSignal, argv: list[str]) -> str:
    """What a fit stopped by a signal prints: where its state is and the command that continues it."""
    if stop.last_checkpoint is None:
        return f"resnet-lightning: fit stopped by {signal_name} before training started; nothing to resume"
    # An earlier --ckpt_path is dropped: the new one is the run's last state.
    command = shlex.join(["resnet-lightning", *without_options(argv, "--ckpt_path"), "--ckpt_path", str(stop.last_checkpoint)])
    return (
        f"resnet-lightning: fit stopped by {signal_name} at epoch {stop.epoch}, step {stop.step}; its state is saved "
        f"in {stop.last_checkpoint}. Continue it with:\n  {command}"
    )


def _configures_a_progress_bar(callbacks: Any) -> bool:
    """Whether the Trainer's configured callbacks include a progress bar (a class path or an instance)."""
    for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
        path = getattr(callback, "class_path", None)
        if isinstance(path, str):
            module, _, name = path.rpartition(".")
            try:
                callback = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError, ValueError):
                continue
        cls = callback if isinstance(callback, type) else type(callback)
        if issubclass(cls, LightningProgressBar):
            return True
    return False


def _description() -> str:
    extra = "; ".join(f"{name} ({what})" for name, (_, what) in COMMANDS.items())
    return (
        "Train and compare residual networks with PyTorch Lightning. "
        f"Other commands, each with its own --help: {extra}. "
        "--verbose (or RESNET_LIGHTNING_DEBUG=1) shows Lightning's own notices and libraries' deprecation warnings too."
    )

