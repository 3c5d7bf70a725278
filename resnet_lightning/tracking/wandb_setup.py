"""Prepare a ``WandbLogger`` from the CLI config before it is instantiated.

Three things happen here, all before ``wandb.init`` can run:

* **Names.** Project, group and tags are derived from the data, architecture,
  block and depth when the user set none, so runs of one setting (different
  seeds) share a group and settings are comparable across a project.
* **Resume.** ``fit --ckpt_path`` continues the W&B run whose id the checkpoint
  carries (:class:`~resnet_lightning.tracking.LoggerSaveConfigCallback` stores it),
  instead of starting a second run for the same training; ``validate``/``test``
  ``--ckpt_path`` add their results to that run too.
* **Offline.** With no API key, or no route to the W&B server, the run is logged
  offline with one line saying so; ``wandb sync`` uploads it later. ``wandb.init``
  never waits on a network that is not there.
"""

from __future__ import annotations

import importlib
import netrc
import os
import re
import socket
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

DEFAULT_HOST = "https://api.wandb.ai"
RUN_ID_STATE_KEY = "wandb_run_id"


def _api_key_available(host: str) -> bool:
    """Whether wandb would find credentials without asking: env, identity token or netrc."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    hostname = urlparse(host).hostname or host
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return path.is_file() and netrc.netrc(path).authenticators(hostname) is not None
    except (netrc.NetrcParseError, OSError):
        return False


def _reachable(host: str, timeout: float) -> bool:
    """TCP connect to the W&B server, in a thread so a hanging DNS lookup cannot block us."""
    parsed = urlparse(host)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((parsed.hostname or host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])


def offline_reason(timeout: float = 3.0) -> str | None:
    """Why W&B cannot be used online (no API key, server unreachable), or None if it can.

    Args:
        timeout: Seconds to wait for a TCP connection to the server.
    """
    host = os.environ.get("WANDB_BASE_URL", DEFAULT_HOST)
    if not _api_key_available(host):
        return "no W&B API key (set WANDB_API_KEY or run `wandb login`)"
    if not _reachable(host, timeout):
        return f"{host} is not reachable"
    return None


def resolve_wandb_mode(timeout: float = 3.0, save_dir: str | os.PathLike[str] | None = None) -> str:
    """Choose ``online``/``offline``/``disabled`` for wandb and export it as ``WANDB_MODE``.

    An explicit ``WANDB_MODE`` is respected. Otherwise the run goes offline, with
    a one-line message on stderr, when no API key is configured or the server
    (``WANDB_BASE_URL``, default ``https://api.wandb.ai``) cannot be reached within
    ``timeout`` seconds. The choice is exported so DDP worker processes agree.

    Args:
        timeout: Seconds to wait for a TCP connection to the server.
        save_dir: Where the runs go (named in the message; default ``.``).

    Returns:
        The mode wandb will use.
    """
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode:
        return "offline" if mode == "dryrun" else mode
    reason = offline_reason(timeout)
    if reason is None:
        return "online"
    os.environ["WANDB_MODE"] = "offline"
    runs = Path(save_dir or ".") / "wandb"
    print(f"wandb: {reason}; logging offline to {runs}/ — upload later with `wandb sync {runs}/offline-run-*`",
          file=sys.stderr)
    return "offline"


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
    # Lightning checkpoints hold hyperparameter objects, so weights_only=False, as
    # Lightning itself loads them; mmap avoids reading the tensors.
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False, mmap=True)
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


def arch_depth(arch: str, arch_kwargs: dict[str, Any] | None) -> int | None:
    """The depth an architecture was asked for: ``arch_kwargs["depth"]``, else the name's number."""
    if arch_kwargs and isinstance(arch_kwargs.get("depth"), int):
        return arch_kwargs["depth"]
    match = re.search(r"(\d+)$", arch)  # cifar_resnet56 -> 56, resnet50 -> 50
    return int(match.group(1)) if match else None


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
    data = data_class_path.rsplit(".", 1)[-1].removesuffix("DataModule").lower()
    depth = arch_depth(arch, arch_kwargs)
    group = "-".join(str(p) for p in (data, arch, block) if p)
    if depth is not None and not arch.endswith(str(depth)):
        group += f"-d{depth}"
    tags = [f"data:{data}", f"arch:{arch}", f"block:{block or 'default'}"]
    if depth is not None:
        tags.append(f"depth:{depth}")
    return {"project": f"resnet-lightning-{data}", "group": group.replace(":", "_"), "tags": tags}


def _resume_checkpoint(config: Any) -> Path | None:
    ckpt_path = config.get("ckpt_path")
    if ckpt_path is None:
        return None
    if ckpt_path in ("last", "best", "hpc") and config.get("checkpoint") and config.checkpoint.dirpath:
        # `best` is a checkpoint of the same run as `last`, which always exists beside it.
        return Path(config.checkpoint.dirpath) / "last.ckpt"
    return Path(ckpt_path)


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
