"""Prepare a ``WandbLogger`` from the CLI config before it is instantiated.

Three things happen here, all before ``wandb.init`` can run:

* **Names.** Project, group and tags are derived from the data, architecture,
  block and depth when the user set none, so runs of one setting (different
  seeds) share a group and settings are comparable across a project.
* **Resume.** ``fit --ckpt_path`` continues the W&B run whose id the checkpoint
  carries (:class:`~resnet_lightning.tracking.LoggerSaveConfigCallback` stores it),
  instead of starting a second run for the same training; ``validate``/``test``
  ``--ckpt_path`` add their results to that run too.
* **Offline.** With no API key, or a W&B server that does not answer (or answers
  with an error) within seconds, the run is logged offline with one line saying so;
  ``wandb sync`` uploads it later. ``wandb.init`` never waits long on a network that
  is not there, and a server that fails after the probe still cannot crash the run.
"""

from __future__ import annotations

import functools
import http.client
import importlib
import json
import netrc
import os
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..runs import arch_depth, data_name, run_name

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


# A trivial GraphQL query: every W&B server answers it (data, or 401 without a key);
# a hung server, a 5xx or a web server that is not W&B does not.
PROBE_QUERY = json.dumps({"query": "query Probe { viewer { id } }"}).encode()
# wandb.init's own bound (wandb's default is 90 s, and a hung server then crashes the
# run). 30 s is ten times what a healthy server needs to create or resume a run.
INIT_TIMEOUT = 30.0


def _answers_graphql(body: bytes) -> bool:
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and ("data" in answer or "errors" in answer)


def _server_problem(host: str, timeout: float) -> str | None:
    """What keeps the W&B server at ``host`` from being used, or None when it answers like one.

    One GraphQL POST, what ``wandb.init`` sends first, in a daemon thread joined with
    ``timeout``: urllib's timeout bounds each socket operation, not the lookup of the
    name nor a server that trickles bytes, and the thread bounds them all.
    """
    request = urllib.request.Request(
        host.rstrip("/") + "/graphql", data=PROBE_QUERY, headers={"Content-Type": "application/json"}
    )
    result: list[str | None] = []

    def probe() -> None:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, body = response.status, response.read(1 << 16)
            result.append(None if _answers_graphql(body) else f"answered HTTP {status}, but not as a W&B server")
        except urllib.error.HTTPError as error:
            # 401/403 is a W&B server declining an anonymous query: the credentials are wandb.init's to check.
            result.append(None if error.code in (401, 403) else f"answered HTTP {error.code}")
        except (OSError, ValueError, http.client.HTTPException) as error:
            reason = error.reason if isinstance(error, urllib.error.URLError) else error
            if isinstance(reason, TimeoutError):
                result.append(f"did not answer within {timeout:g} s")
            else:
                result.append(f"is not reachable ({str(reason) or type(reason).__name__})")

    thread = threading.Thread(target=probe, name="wandb-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0] if result else f"did not answer within {timeout:g} s"


def offline_reason(timeout: float = 5.0) -> str | None:
    """Why W&B cannot be used online (no API key, server not answering), or None if it can.

    Args:
        timeout: Seconds the server has to answer one request, name lookup included.
    """
    host = os.environ.get("WANDB_BASE_URL", DEFAULT_HOST)
    if not _api_key_available(host):
        return "no W&B API key (set WANDB_API_KEY or run `wandb login`)"
    problem = _server_problem(host, timeout)
    return None if problem is None else f"{host} {problem}"


def _say_offline(reason: str, save_dir: str | os.PathLike[str] | None) -> None:
    runs = Path(save_dir or ".") / "wandb"
    print(f"wandb: {reason}; logging offline to {runs}/ — upload later with `wandb sync {runs}/offline-run-*`",
          file=sys.stderr)


def _offline_if_init_fails(init: Callable[..., Any]) -> Callable[..., Any]:
    """``wandb.init`` that starts an offline run where the online one fails to reach the server.

    wandb 0.31 has no setting to fall back by itself (``init_timeout`` only bounds the
    wait, then raises ``CommError``), and Lightning calls ``wandb.init`` lazily from
    ``WandbLogger.experiment``, long after the CLI config is prepared. Wrapping the one
    function every caller goes through covers WandbLogger and user code alike and leaves
    the config as the user wrote it. Usage errors (bad arguments) still raise.
    """

    @functools.wraps(init)
    def init_or_offline(*args: Any, **kwargs: Any) -> Any:
        from wandb.errors import CommError

        try:
            return init(*args, **kwargs)
        except (CommError, TimeoutError) as error:
            mode = kwargs.get("mode") or os.environ.get("WANDB_MODE", "")
            if mode.strip().lower() in ("offline", "dryrun", "disabled"):
                raise
            host = os.environ.get("WANDB_BASE_URL", DEFAULT_HOST)
            message = " ".join(str(error).split())  # wandb's messages span lines
            _say_offline(f"{host} failed while starting the run ({message[:200]})", kwargs.get("dir"))
            return init(*args, **{**kwargs, "mode": "offline"})

    init_or_offline.falls_back_offline = True  # type: ignore[attr-defined]
    return init_or_offline


def resolve_wandb_mode(timeout: float = 5.0, save_dir: str | os.PathLike[str] | None = None) -> str:
    """Choose ``online``/``offline``/``disabled`` for wandb and export it as ``WANDB_MODE``.

    An explicit ``WANDB_MODE`` is respected. Otherwise the run goes offline, with
    a one-line message on stderr, when no API key is configured or the server
    (``WANDB_BASE_URL``, default ``https://api.wandb.ai``) does not answer a GraphQL
    query within ``timeout`` seconds (no answer, an HTTP 5xx, not a W&B server). The
    choice is exported so DDP worker processes agree.

    When online, ``wandb.init`` is bounded by ``WANDB_INIT_TIMEOUT`` (30 s unless set)
    and, should the server fail after the probe, starts an offline run instead of
    raising, with the same one-line message.

    Args:
        timeout: Seconds the server has to answer the probe.
        save_dir: Where the runs go (named in the message; default ``.``).

    Returns:
        The mode wandb will use.
    """
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if mode:
        return "offline" if mode == "dryrun" else mode
    reason = offline_reason(timeout)
    if reason is None:
        import wandb

        os.environ.setdefault("WANDB_INIT_TIMEOUT", f"{INIT_TIMEOUT:g}")
        if not getattr(wandb.init, "falls_back_offline", False):
            wandb.init = _offline_if_init_fails(wandb.init)
        return "online"
    os.environ["WANDB_MODE"] = "offline"
    _say_offline(reason, save_dir)
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
