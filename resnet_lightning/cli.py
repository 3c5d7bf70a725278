"""``resnet-lightning``: LightningCLI wiring and the console-script entry.

``resnet-lightning fit|validate|test|predict`` is a LightningCLI over
:class:`ResNetClassifier` and any ``LightningDataModule`` (``--data
DigitsDataModule``, ``--data CIFAR10DataModule``, or a full class path);
``resnet-lightning plugins`` lists the installed blocks and architectures,
``resnet-lightning analyze`` runs the seed papers' analyses and
``resnet-lightning dashboard`` saves a W&B workspace.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from . import data  # noqa: F401  (imports the DataModules so --data finds them by name)
from .callbacks import RNGStateCheckpoint
from .models import BlockContractError
from .module import NonFiniteLossError, ResNetClassifier
from .registry import PluginError
from .tracking import LoggerSaveConfigCallback, prepare_wandb_logger

# Commands beside LightningCLI's fit/validate/test/predict: name -> (module:function(argv), help).
EXTRA_COMMANDS = {
    "plugins": ("resnet_lightning.plugin_status:main", "list the installed blocks and architectures and whether each loads"),
    "analyze": (
        "resnet_lightning.analysis.command:main",
        "lesion study, shattered gradients, degradation and gradient-flow plots (PNG + CSV/JSON)",
    ),
    "dashboard": (
        "resnet_lightning.tracking.dashboard:main",
        "save a W&B workspace laying out every metric the framework logs",
    ),
}
USER_ERRORS = (PluginError, BlockContractError, NonFiniteLossError, data.DataError)


class ResNetLightningCLI(LightningCLI):
    """LightningCLI with the DataModule's shape linked into the model and
    checkpoints in a fixed directory, so ``--ckpt_path last|best`` find them from
    a new process."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.in_channels", "model.in_channels", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "data": {"class_path": "resnet_lightning.data.DigitsDataModule"},
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-{epoch:03d}-{step:06d}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )

    def before_instantiate_classes(self) -> None:
        # One checkpoint directory per (data, arch, block), unless given: runs of
        # different models do not overwrite each other's last.ckpt, and a later
        # `test --ckpt_path last|best` with the same config finds the fit's.
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.checkpoint.dirpath is None:
            data_name = str(config.data.class_path).rsplit(".", 1)[-1].removesuffix("DataModule").lower()
            run_name = "-".join(str(p) for p in (data_name, config.model.arch, config.model.block) if p)
            config.checkpoint.dirpath = str(Path("checkpoints") / run_name.replace(":", "_"))
        # A WandbLogger gets project/group/tags from data, arch and block, the run id
        # of the checkpoint it resumes, and offline mode when W&B is unreachable.
        prepare_wandb_logger(config, self.subcommand)

    def _resolve_best(self) -> None:
        """Turn ``--ckpt_path best`` (the default when a fit left checkpoints) into a
        path in a process that did not run the fit.

        Lightning knows the best checkpoint only in the process that trained; the
        ``last`` checkpoint records it in its ModelCheckpoint state.
        """
        config = self.config_init[self.subcommand]
        dirpath = Path(self.trainer.checkpoint_callback.dirpath)
        last = dirpath / "last.ckpt"
        if config.get("ckpt_path") is None:
            # `fit` then `test` with the same config evaluates what the fit trained,
            # not a freshly initialised network.
            if not last.is_file():
                rank_zero_warn(
                    f"no --ckpt_path and no checkpoint in {dirpath}: {self.subcommand} runs on an untrained "
                    "model. Run `resnet-lightning fit` with the same config first, or pass --ckpt_path"
                )
                return
            rank_zero_info(f"{self.subcommand}: no --ckpt_path given, using the best checkpoint of {dirpath}")
            config["ckpt_path"] = "best"
        if config.get("ckpt_path") != "best" or self.trainer.checkpoint_callback.best_model_path:
            return
        if not last.is_file():
            raise FileNotFoundError(
                f"--ckpt_path best: no {last} to read the best checkpoint from; run `resnet-lightning fit` "
                f"with the same --checkpoint.dirpath first, or pass --ckpt_path PATH/TO/FILE.ckpt"
            )
        # mmap: only the callback state is read, not the weights and optimizer state.
        state = torch.load(last, map_location="cpu", weights_only=False, mmap=True)
        best = next(
            (s.get("best_model_path") for k, s in state.get("callbacks", {}).items() if k.startswith("ModelCheckpoint")),
            None,
        )
        if not best or not Path(best).is_file():
            raise FileNotFoundError(f"--ckpt_path best: {last} names no existing best checkpoint (got {best!r})")
        config["ckpt_path"] = best

    def before_validate(self) -> None:
        self._resolve_best()

    def before_test(self) -> None:
        self._resolve_best()

    def before_predict(self) -> None:
        self._resolve_best()


def _run_extra_command(name: str, argv: list[str]) -> int | None:
    module_name, function = EXTRA_COMMANDS[name][0].split(":")
    return getattr(importlib.import_module(module_name), function)(argv)


def cli_main(args: ArgsType = None, run: bool = True) -> ResNetLightningCLI | None:
    """Run the command line; ``args`` as a list lets tests drive the real CLI from Python.

    Args:
        args: Command-line arguments (``sys.argv[1:]`` when None).
        run: Run the subcommand (False: only parse and instantiate).
    """
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in EXTRA_COMMANDS:
        try:
            code = _run_extra_command(argv[0], argv[1:])
        except (*USER_ERRORS, FileNotFoundError, ValueError) as exc:
            print(f"resnet-lightning {argv[0]}: error: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        if code:  # e.g. `plugins` exits 1 when a plugin fails to load, as a CI check would want
            raise SystemExit(code)
        return None
    try:
        return ResNetLightningCLI(
            ResNetClassifier,
            LightningDataModule,
            subclass_mode_data=True,
            trainer_defaults={"callbacks": [RNGStateCheckpoint()]},
            # Logs the whole resolved config as flat keys (plus versions) to every logger.
            save_config_callback=LoggerSaveConfigCallback,
            # Each logger version has its own directory; without a logger, `test` after
            # `fit` writes its config where the fit's was.
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"description": _description()},
            args=args,  # None: LightningCLI reads sys.argv itself
            run=run,
        )
    except USER_ERRORS as exc:
        print(f"resnet-lightning: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def _description() -> str:
    extra = "; ".join(f"{name} ({what})" for name, (_, what) in EXTRA_COMMANDS.items())
    return (
        "Train and compare residual networks with PyTorch Lightning. "
        f"Other commands, each with its own --help: {extra}."
    )


def main() -> None:
    """Console-script entry: ``resnet-lightning``."""
    cli_main()
