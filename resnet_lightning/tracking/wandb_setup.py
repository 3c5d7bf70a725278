"""Prepare a ``WandbLogger`` from the CLI config before it is instantiated.

Everything here happens before ``wandb.init`` can run:

* **Names.** Project, group and tags are derived from the data, architecture,
  block and depth when the user set none, so runs of one setting (different
  seeds) share a group and settings are comparable across a project.
* **Resume.** ``fit --ckpt_path`` continues the W&B run whose id the checkpoint
  carries (:class:`~resnet_lightning.tracking.LoggerSaveConfigCallback` stores it),
  instead of starting a second run for the same training; ``validate``/``test``
  ``--ckpt_path`` add their results to that run too.
* **Offline.** With no API key, or a W&B server that does not answer (or answers
  with an error) within seconds, the run is logged offline with one line saying so
  (:mod:`~resnet_lightning.tracking.wandb_online`).
* **Settings.** A ``WANDB_*`` variable that wandb would reject (``WANDB_MODE=sideways``,
  ``WANDB_BASE_URL='not a url'``) is a one-line error before anything starts, naming
  the variable, its value and what wandb accepts (:mod:`~resnet_lightning.tracking.wandb_settings`).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from ..runs import arch_depth, data_name, run_name
from .wandb_online import resolve_wandb_mode

RUN_ID_STATE_KEY = "wandb_run_id"


def wandb_resume_id(ckpt_path: str | os.PathLike[str] | None) -> str | None:
    """The W&B run id stored in a checkpoint, or None.

    The id is saved by :class:`~resnet_lightning.tracking.LoggerSaveConfigCallback`
    in the checkpoint's callback state. The file is memory-mapped, so the weights
    are not read.

    Args:
        ckpt_path: Path to a Lightning checkpoint (None or a missing file gives None).
    """
    if ckpt_path is None or not Path(ckpt_path).is_file():
        return None
    from ..checkpoint_io import read_checkpoint  # late: it imports Lightning

    state = read_checkpoint(ckpt_path)  # weights only, memory-mapped: the tensors are not read
    for value in state.get("callbacks", {}).values():
        if isinstance(value, dict) and value.get(RUN_ID_STATE_KEY):
            return str(value[RUN_ID_STATE_KEY])
    return None


def _is_wandb_logger(class_path: Any) -> bool:
    if not isinstance(class_path, str) or "." not in class_path:
        return False
    from lightning.pytorch.loggers import WandbLogger

    module, name = class_path.rsplit(".", 1)
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return False
    return isinstance(cls, type) and issubclass(cls, WandbLogger)


def _wandb_logger_args(config: Any) -> list[Any]:
    """The ``init_args`` of every WandbLogger in ``config.trainer.logger``."""
    loggers = config.trainer.logger
    loggers = loggers if isinstance(loggers, list) else [loggers]
    return [logger.init_args for logger in loggers if _is_wandb_logger(getattr(logger, "class_path", None))]


def run_names(data_class_path: str, arch: str, block: str | None, arch_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """Default ``project``, ``group`` and ``tags`` for a run of this setting.

    ``project`` is per dataset, ``group`` per (data, arch, block, depth), so the
    seeds of one setting group together; tags let the dashboard filter by any one.

    Args:
        data_class_path: The DataModule's class path (``...DigitsDataModule``).
        arch: Architecture name.
        block: Block name, or None for the architecture's default.
        arch_kwargs: Architecture options (a ``depth`` there names the depth).
    """
    data = data_name(data_class_path)
    depth = arch_depth(arch, arch_kwargs)
    tags = [f"data:{data}", f"arch:{arch}", f"block:{block or 'default'}"]
    if depth is not None:
        tags.append(f"depth:{depth}")
    group = run_name(data_class_path, arch, block, arch_kwargs)  # the run directory's name too
    return {"project": f"resnet-lightning-{data}", "group": group, "tags": tags}


def _resume_checkpoint(config: Any) -> Path | None:
    # The CLI has resolved `best`/`last` to a file by now; "hpc" is Lightning's own.
    ckpt_path = config.get("ckpt_path")
    return None if ckpt_path in (None, "last", "best", "hpc") else Path(ckpt_path)


def prepare_wandb_logger(config: Any, subcommand: str | None) -> bool:
    """Fill in a WandbLogger's names, resume id and mode in a LightningCLI config.

    Call from ``LightningCLI.before_instantiate_classes`` with the subcommand's
    config (after ``checkpoint.dirpath`` is set). A config without a WandbLogger
    is left unchanged. Values the user set (``project``, ``group``, ``tags``,
    ``id``/``version``, or ``WANDB_PROJECT``/``WANDB_RUN_GROUP``/``WANDB_TAGS``)
    always win.

    Args:
        config: ``cli.config[subcommand]`` (a jsonargparse Namespace).
        subcommand: ``"fit"``, ``"validate"``, ``"test"``, ``"predict"``.

    Returns:
        True when the config has a WandbLogger.
    """
    targets = _wandb_logger_args(config)
    if not targets:
        return False
    resolve_wandb_mode(save_dir=targets[0].get("save_dir") or targets[0].get("dir"))
    names = run_names(str(config.data.class_path), config.model.arch, config.model.block, config.model.arch_kwargs)
    run_id = wandb_resume_id(_resume_checkpoint(config))
    for args in targets:
        if args.get("project") is None and not os.environ.get("WANDB_PROJECT"):
            args["project"] = names["project"]
        if args.get("group") is None and not os.environ.get("WANDB_RUN_GROUP"):
            args["group"] = names["group"]
        if args.get("tags") is None and not os.environ.get("WANDB_TAGS"):
            args["tags"] = names["tags"]
        if run_id and args.get("id") is None and args.get("version") is None:
            args["id"] = run_id
        # Absolute, because the wandb service may be shared with (and so resolve paths
        # against the working directory of) the process that started it: DDP workers, notebooks.
        for key in ("save_dir", "dir"):
            if args.get(key) is not None:
                args[key] = str(Path(args[key]).resolve())
        # A config value of None would replace WandbLogger's own "allow" default.
        if args.get("resume") is None:
            args["resume"] = "allow"
        if args.get("job_type") is None and subcommand and not run_id:
            args["job_type"] = subcommand  # a resumed run keeps the job type it was created with
    return True
