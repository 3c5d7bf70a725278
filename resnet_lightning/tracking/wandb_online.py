"""Online when W&B answers, offline with one line saying why when it does not; never a crash.

With no API key, or a W&B server that does not answer (or answers with an error) within
seconds, the run is logged offline with one line saying so; ``wandb sync`` uploads it
later. ``wandb.init`` never waits long on a network that is not there, and a server that
fails after the probe still cannot crash the run: W&B's errors are caught where the code
first touches the run (:func:`start_wandb_run` for a ``WandbLogger``, :func:`init_or_offline`
for code that starts a run itself), never by wrapping ``wandb.init`` for the process.
``WANDB_MODE=online`` asks for the server, not for a crash without one: it goes offline
for the same reasons.
"""

from __future__ import annotations

import http.client
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

from .wandb_settings import DEFAULT_HOST, WandbSettingError, check_wandb_settings

ONLINE_MODES = ("online", "run", "shared")  # wandb's modes that talk to the server


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


_said_offline = False  # this process said why it logs offline, where, and how to upload: no second line about it


def _say_offline(reason: str, save_dir: str | os.PathLike[str] | None) -> None:
    global _said_offline
    _said_offline = True
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
    import wandb

    # The keyword arguments WandbLogger passes to wandb.init. W&B's own switch for its banner and its
    # end-of-run lines, for this run only (a user's settings win): the one line said below replaces them.
    if logger._wandb_init.get("settings") is None:
        logger._wandb_init["settings"] = wandb.Settings(silent=True)
    if logger._wandb_init.get("anonymous") is None:  # WandbLogger passes None, which wandb 0.31 warns "has no effect" about
        logger._wandb_init.pop("anonymous", None)

    def start(mode: str | None) -> Any:
        if mode is not None:
            logger._wandb_init["mode"] = mode
        return logger.experiment

    run = _start_or_offline(start, logger.save_dir, logger._wandb_init.get("mode"))
    _say_where(run)
    return run


def _say_where(run: Any) -> None:
    """One line for the run: its page, or its offline directory and the command that uploads it.

    Nothing for Lightning's stand-in on a rank other than zero, whose attributes are no-op methods.
    """
    from ..console import tell

    url = None if getattr(run, "offline", False) is True else getattr(run, "url", None)
    run_dir = getattr(run, "dir", None)
    if isinstance(url, str) and url:
        tell(f"W&B: {url}")
    elif isinstance(run_dir, str) and run_dir and not _said_offline:
        directory = Path(run_dir).parent  # <save_dir>/wandb/offline-run-<time>-<id>/files
        tell(f"W&B: offline run {directory} (upload it with `wandb sync {directory}`)")


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
