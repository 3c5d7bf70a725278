"""Log the whole resolved CLI config to the experiment tracker, as flat keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import yaml
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typing_extensions import override

from .config import flatten_config, version_info
from .wandb_setup import RUN_ID_STATE_KEY


class LoggerSaveConfigCallback(SaveConfigCallback):
    """Save the CLI config as usual and log it to every logger as flat hyperparameters.

    Lightning's documented extension point (``save_config``, called on rank zero
    only): the resolved config (model, data, trainer, optimizer, ...) is dumped as
    ``config.yaml`` would be, flattened to dotted keys (``model.arch``,
    ``data.init_args.batch_size``) and merged with :func:`version_info`
    (``versions.torch``, ``versions.resnet_lightning``, every plugin distribution).
    It replaces the LightningModule's own partial hyperparameter logging, which
    would repeat ``model.*`` under bare names.

    ``config.yaml`` goes into the log directory, which the CLI makes the run
    directory; with a WandbLogger it also goes into the W&B run's files. The
    W&B run id is kept in checkpoints, so ``fit --ckpt_path`` continues the same
    run (see :func:`~resnet_lightning.tracking.wandb_resume_id`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._trainer: L.Trainer | None = None

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer
        if trainer.loggers:
            # The full config includes every model.* value: the module's own
            # hparams logging would only repeat them under bare names. Set on
            # every rank, as Lightning checks it on every rank. (The module logs
            # them itself when used without the CLI; the DataModules never do:
            # save_hyperparameters(logger=False).)
            pl_module._log_hyperparams = False
        super().setup(trainer, pl_module, stage)

    def flat_config(self) -> dict[str, Any]:
        """The resolved config as flat keys plus ``versions.*``."""
        # dump() gives the config exactly as config.yaml holds it: plain, serialisable values.
        plain = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        plain.pop("config", None)  # the paths of the --config files: not settings
        return {**flatten_config(plain), **version_info()}

    @override
    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not trainer.loggers:
            return
        flat = self.flat_config()
        for logger in trainer.loggers:
            logger.log_hyperparams(flat)
            if isinstance(logger, WandbLogger):
                # files/config.yaml is wandb's own; ours goes beside it and is uploaded with the run.
                run = logger.experiment
                path = Path(run.dir) / f"cli_{self.config_filename}"
                self.parser.save(self.config, path, skip_none=False, overwrite=True, multifile=False)
                run.save(str(path), base_path=run.dir, policy="now")

    @override
    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # A failed command's W&B run is finished now, marked failed, and its closing lines
        # (where the run is, how to sync it) come before the CLI's error line instead of
        # after it, from wandb's exit hook. A stopped fit (SIGTERM) is left to that hook.
        if isinstance(exception, SIGTERMException) or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and logger._experiment is not None:
                logger.experiment.finish(exit_code=1)

    @override
    def state_dict(self) -> dict[str, Any]:
        logger = self._trainer.logger if self._trainer is not None else None
        if isinstance(logger, WandbLogger) and logger.version:
            return {RUN_ID_STATE_KEY: logger.version}
        return {}
