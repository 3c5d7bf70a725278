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
  is not there, and a server that fails after the probe still cannot crash the run
  (:func:`start_wandb_run`, :func:`init_or_offline`). ``WANDB_MODE=online`` asks for
  the server, not for a crash without one: it goes offline for the same reasons.
* **Settings.** A ``WANDB_*`` variable that wandb would reject (``WANDB_MODE=sideways``,
  ``WANDB_BASE_URL='not a url'``) is a one-line error before anything starts, naming
  the variable, its value and what wandb accepts; a mistyped setting is a mistake to
  fix, not a reason to log somewhere the user did not ask for.
"""

from __future__ import annotations

import http.client
import importlib
import json
import netrc
import os
import re
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..cli_errors import UsageError
from ..runs import arch_depth, data_name, run_name

DEFAULT_HOST = "https://api.wandb.ai"
RUN_ID_STATE_KEY = "wandb_run_id"
ONLINE_MODES = ("online", "run", "shared")  # wandb's modes that talk to the server
# Added to wandb's own words about a rejected value.
_SETTING_HINTS = {
    "WANDB_MODE": "unset, the run is online when W&B is reachable and offline otherwise",
    "WANDB_BASE_URL": f"the W&B server's address, e.g. {DEFAULT_HOST} (the default) or http://localhost:8080",
}


class WandbSettingError(UsageError):
    """A W&B setting (a ``WANDB_*`` variable, a logger option) that wandb rejects; the message names it."""


def check_wandb_settings() -> None:
    """Raise :class:`WandbSettingError` for the first ``WANDB_*`` variable wandb's settings reject.

    wandb checks its settings (pydantic) only inside ``wandb.init``, when the fit has
    started, and reports a bad one as a validation traceback. Here they go through the
    same validation before anything starts. ``WANDB_MODE`` is read without regard to
    case or spaces, as wandb's own code compares it; an empty value that wandb rejects
    is taken as unset (``WANDB_MODE= cmd`` in a shell) and removed.

    Raises:
        WandbSettingError: Names the variable, its value (not a secret's) and what is accepted.
    """
    import pydantic
    import wandb
    from wandb.errors import UsageError as WandbUsageError

    mode = os.environ.get("WANDB_MODE")
    if mode is not None and mode != mode.strip().lower():
        os.environ["WANDB_MODE"] = mode.strip().lower()
    for name, value in sorted(os.environ.items()):
        if not name.startswith("WANDB_"):
            continue
        try:
            wandb.Settings().update_from_env_vars({name: value})
        except (pydantic.ValidationError, WandbUsageError) as error:
            if not value.strip():
                del os.environ[name]
                continue
            raise WandbSettingError(_setting_message(name, value, error)) from None


def _setting_message(name: str, value: str, error: Exception) -> str:
    import pydantic

    detail = error.errors()[0]["msg"] if isinstance(error, pydantic.ValidationError) and error.errors() else str(error)
    detail = re.sub(r"^(Value error, |Input should be )", lambda m: "" if m[1].startswith("Value") else "expected ",
                    " ".join(detail.split()))
    shown = "(hidden)" if re.search(r"KEY|TOKEN|SECRET|PASSWORD", name) else repr(value)
    hint = f" ({_SETTING_HINTS[name]})" if name in _SETTING_HINTS else ""
    return f"{name}={shown} is not a valid W&B setting: {detail}{hint}; fix or unset {name}"


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


def init_or_offline(**kwargs: Any) -> Any:
    """``wandb.init(**kwargs)``, or an offline run, with one line saying why, where the online one fails.

    wandb 0.31 has no setting to fall back by itself (``init_timeout`` only bounds the
    wait, then raises ``CommError``). For code that starts a run itself (``analyze``);
    a ``WandbLogger``'s run is started by :func:`start_wandb_run`.
    """
    import wandb

    def init(mode: str | None) -> Any:
        return wandb.init(**kwargs) if mode is None else wandb.init(**{**kwargs, "mode": mode})

    return _start_or_offline(init, kwargs.get("dir"), kwargs.get("mode"))


def start_wandb_runs(trainer: Any) -> None:
    """Start the run of every ``WandbLogger`` of ``trainer`` (:func:`start_wandb_run`).

    Call before ``trainer.fit``/``validate``/``test``/``predict`` (the CLI's ``before_<command>``
    hooks): Lightning itself starts them in ``_call_setup_hook``, where a failure ends the run.
    """
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            start_wandb_run(logger)


def start_wandb_run(logger: Any) -> Any:
    """Start a ``WandbLogger``'s run now, offline with one line saying why where the online one fails.

    Lightning starts the run on first use of ``logger.experiment``; started here, before
    the trainer runs, a server that fails after :func:`resolve_wandb_mode`'s probe (a hang,
    a 5xx, a refused resume) leaves an offline run instead of a crash. Only this logger is
    concerned: ``wandb.init`` itself is left as it is. On a rank other than zero (a DDP
    worker) ``logger.experiment`` is Lightning's dummy and nothing starts.

    Args:
        logger: A ``lightning.pytorch.loggers.WandbLogger`` (or subclass).

    Returns:
        The run (``logger.experiment``).
    """

    def start(mode: str | None) -> Any:
        if mode is not None:
            logger._wandb_init["mode"] = mode  # the keyword arguments WandbLogger passes to wandb.init
        return logger.experiment

    return _start_or_offline(start, logger.save_dir, logger._wandb_init.get("mode"))


def _start_or_offline(start: Callable[[str | None], Any], save_dir: str | None, mode: str | None) -> Any:
    """``start(None)``; where wandb fails online, ``start("offline")`` and say why in one line.

    Raises:
        WandbSettingError: The run cannot start offline either (wandb rejected its settings,
            e.g. a project name with a slash).
    """
    from wandb.errors import Error as WandbError

    mode = (mode or os.environ.get("WANDB_MODE", "")).strip().lower()
    try:
        return start(None)
    except (WandbError, TimeoutError) as error:
        if mode in ("offline", "dryrun", "disabled"):
            raise WandbSettingError(f"W&B could not start the run: {_one_line(error)}; fix the logger's settings") from error
        failure = error
    os.environ["WANDB_MODE"] = "offline"  # and so for whatever starts a run next
    try:
        run = start("offline")
    except (WandbError, TimeoutError) as error:
        raise WandbSettingError(f"W&B could not start the run: {_one_line(error)}; fix the logger's settings") from error
    host = os.environ.get("WANDB_BASE_URL", DEFAULT_HOST)
    _say_offline(f"{host} failed while starting the run ({_one_line(failure)})", save_dir)
    return run


def _one_line(error: BaseException) -> str:
    """wandb's message (which spans lines) on one line, at most 200 characters."""
    message = " ".join(str(error).split()) or type(error).__name__
    return message if len(message) <= 200 else message[:197] + "..."


def resolve_wandb_mode(timeout: float = 5.0, save_dir: str | os.PathLike[str] | None = None) -> str:
    """Check wandb's settings, choose ``online``/``offline``/``disabled`` and export it as ``WANDB_MODE``.

    The ``WANDB_*`` variables are checked first (:func:`check_wandb_settings`). An
    explicit offline or disabled ``WANDB_MODE`` is respected. Otherwise (unset, or an
    online mode) the run goes offline, with a one-line message on stderr, when no API
    key is configured or the server (``WANDB_BASE_URL``, default ``https://api.wandb.ai``)
    does not answer a GraphQL query within ``timeout`` seconds (no answer, an HTTP 5xx,
    not a W&B server). The choice is exported so DDP worker processes agree.

    When online, ``wandb.init`` is bounded by ``WANDB_INIT_TIMEOUT`` (30 s unless set);
    should the server fail after the probe, :func:`start_wandb_run` starts an offline
    run instead, with the same one-line message.

    Args:
        timeout: Seconds the server has to answer the probe.
        save_dir: Where the runs go (named in the message; default ``.``).

    Returns:
        The mode wandb will use.

    Raises:
        WandbSettingError: A ``WANDB_*`` variable that wandb rejects.
    """
    check_wandb_settings()
    mode = os.environ.get("WANDB_MODE", "")
    if mode and mode not in ONLINE_MODES:
        return "offline" if mode == "dryrun" else mode
    reason = offline_reason(timeout)
    if reason is None:
        os.environ.setdefault("WANDB_INIT_TIMEOUT", f"{INIT_TIMEOUT:g}")
        return mode or "online"
    os.environ["WANDB_MODE"] = "offline"
    _say_offline(f"WANDB_MODE={mode}, but {reason}" if mode else reason, save_dir)
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
