"""From a parsed CLI config to a run: which directory, which checkpoint, which logger.

Called by the CLI before anything is instantiated, so that the trainer, the
checkpoint callback and the loggers are all built pointing at one run directory
(:mod:`resnet_lightning.runs` has the layout and the rules). The rules:

* ``fit`` claims a new ``version_<N>``; ``fit --ckpt_path last`` continues the
  newest run of the same name and model in its own directory (or says there is
  none and starts a new one); ``--ckpt_path PATH`` inside a run continues that run.
  A fit is its run's only writer: a second fit of a run refuses, naming the
  process that writes it (:func:`resnet_lightning.runs.lock_run`).
* ``test``/``validate``/``predict`` with no ``--ckpt_path``, ``best`` or ``last``
  evaluate the newest run of the same name whose saved model configuration is the
  command's (``--run`` picks another); with none, that is an error, unless
  ``--ckpt_path untrained`` asks for a fresh network.
* A checkpoint that is incomplete, or whose hyperparameters contradict the
  configured model, is an error naming both (never a silently different model).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace

from .. import runs
from ..checkpoint_io import CheckpointError, read_checkpoint, require_complete_checkpoint
from ..console import rank, tell
from ..errors import UserError
from ..tracking.wandb_setup import _wandb_logger_args
from .checkpoint_options import LINKED_KEYS, plain

# Set by rank zero for the DDP worker processes it launches, which parse the same
# command line and must use the run (and checkpoint) rank zero chose, not claim their own.
RUN_ENV = "RESNET_LIGHTNING_RUN"
UNTRAINED = "untrained"  # --ckpt_path untrained: evaluate a freshly initialised network, on purpose
BEST_PREFIX = "best-"
# The options that build the network: runs of one name that differ in them are different models.
NETWORK_KEYS = ("arch", "block", "arch_kwargs")
CONFIG_FILE = "config.yaml"  # the resolved configuration a fit saves in its run
MAX_CONFIG_BYTES = 1 << 20  # a run's config.yaml is a few kB; anything far larger is not one


class RunConfigError(UserError, ValueError):
    """The command line asks for a run or checkpoint that cannot be used as asked."""


def _name_and_root(config: Namespace) -> tuple[str, Path]:
    model = config.model
    name = runs.run_name(str(config.data.class_path), model.arch, model.block, model.arch_kwargs)
    return name, Path(config.trainer.default_root_dir or ".").resolve()


def _worker_run() -> dict[str, str | None] | None:
    """What rank zero chose, in a DDP worker process it launched; None elsewhere."""
    if rank() == 0 or RUN_ENV not in os.environ:
        return None
    return json.loads(os.environ[RUN_ENV])


def _use_logger_dir(config: Namespace, save_dir: Path, name: str, version: str | None) -> None:
    """Point the default logger (and a WandbLogger without a ``save_dir``) at the run."""
    if config.trainer.logger in (None, True):
        config.trainer.logger = Namespace(
            class_path="resnet_lightning.tracking.RunCSVLogger",
            init_args=Namespace(save_dir=str(save_dir), name=name, version=version),
        )
    for args in _wandb_logger_args(config):
        # "." is WandbLogger's own default, which the parser fills in: not a choice the user made.
        if args.get("save_dir") in (None, ".") and args.get("dir") is None:
            args["save_dir"] = str(save_dir if version is None else save_dir / name / version)


def prepare_fit_run(config: Namespace) -> Path:
    """Choose (or continue) the run directory of a ``fit`` and point the config at it.

    Sets ``trainer.default_root_dir`` (Lightning's SLURM auto-requeue saves there and
    resumes from there), ``checkpoint.dirpath`` unless given, the default logger and
    ``ckpt_path`` (``last`` becomes the file).

    Returns:
        The run directory.
    """
    if config.get("run") is not None and config.get("ckpt_path") is None:
        raise RunConfigError(
            f"--run {config.run}: fit starts a new run; to continue run {config.run}, add --ckpt_path last"
        )
    name, root = _name_and_root(config)
    explicit_dirpath = config.checkpoint.dirpath is not None
    chosen = _worker_run()
    if chosen is not None:
        run_dir, config.ckpt_path = Path(chosen["run_dir"]), chosen["ckpt_path"]
    else:
        run_dir = _fit_checkpoint(config, root, name) or runs.requeued_run(root, name)
        if run_dir is None and rank():
            # A rank > 0 started by SLURM or torchrun, not by rank zero: it never writes
            # (checkpoint paths and log directories come from rank zero), so it claims nothing.
            run_dir = root / name / f"{runs.VERSION_PREFIX}of-rank-zero"
        elif run_dir is None:
            run_dir = runs.new_run(root, name)  # new, and locked for this process
        else:
            _lock(run_dir)  # before anything in it is touched (stale best checkpoints, config.yaml)
        os.environ[RUN_ENV] = json.dumps({"run_dir": str(run_dir), "ckpt_path": config.ckpt_path})
        tell(f"fit: run directory {run_dir}")
    if not explicit_dirpath:
        config.checkpoint.dirpath = str(runs.checkpoint_dir(run_dir))
    config.trainer.default_root_dir = str(run_dir)
    # By the run's own name: a run continued from its checkpoint's path may be named otherwise than this command would.
    _use_logger_dir(config, run_dir.parent.parent, run_dir.parent.name, run_dir.name)
    if config.ckpt_path is not None and not explicit_dirpath and chosen is None:
        _remove_stale_best(Path(config.checkpoint.dirpath), Path(config.ckpt_path))
    return run_dir


def _lock(run_dir: Path) -> None:
    try:
        runs.lock_run(run_dir)
    except runs.RunInUseError as err:
        raise RunConfigError(f"fit: {err}") from None


def _fit_checkpoint(config: Namespace, root: Path, name: str) -> Path | None:
    """Resolve ``fit --ckpt_path``; returns the run it continues (None: a new run)."""
    ckpt_path = config.get("ckpt_path")
    if ckpt_path is None or ckpt_path == "hpc":
        return None  # "hpc": Lightning's SLURM checkpoint, found in the requeued run
    if ckpt_path not in ("last", "best"):
        require_complete_checkpoint(ckpt_path)
        config.ckpt_path = str(Path(ckpt_path).resolve())
        return runs.run_of_checkpoint(ckpt_path)
    try:
        run_dir, ckpt_dir, why = _checkpoint_source(config, root, name)
    except runs.RunNotFoundError as err:
        tell(f"fit --ckpt_path {ckpt_path}: {err}; starting a new run")
        config.ckpt_path = None
        return None
    ckpt_file = pick_checkpoint(ckpt_dir, ckpt_path)
    require_complete_checkpoint(ckpt_file)
    config.ckpt_path = str(ckpt_file)
    tell(f"fit: continuing {run_dir or ckpt_dir} ({why}) from {ckpt_file}")
    return run_dir


def _checkpoint_source(config: Namespace, root: Path, name: str) -> tuple[Path | None, Path, str]:
    """The run and checkpoint directory that ``best``/``last`` refer to, and why that run (said to the user)."""
    if config.checkpoint.dirpath is not None:  # --checkpoint.dirpath: the user's own place
        ckpt_dir = Path(config.checkpoint.dirpath).resolve()
        if not (ckpt_dir / runs.LAST_CHECKPOINT).is_file():
            raise runs.RunNotFoundError(f"no {runs.LAST_CHECKPOINT} in --checkpoint.dirpath {ckpt_dir}")
        return runs.run_of_checkpoint(ckpt_dir / runs.LAST_CHECKPOINT), ckpt_dir, "--checkpoint.dirpath"
    if config.get("run") is not None:
        run_dir = runs.select_run(root, name, config.run)
        if not (runs.checkpoint_dir(run_dir) / runs.LAST_CHECKPOINT).is_file():
            raise runs.RunNotFoundError(f"run {run_dir} has no {runs.CHECKPOINT_DIR}/{runs.LAST_CHECKPOINT}")
        return run_dir, runs.checkpoint_dir(run_dir), f"--run {config.run}"
    run_dir, why = _matching_run(config.model, root, name)
    return run_dir, runs.checkpoint_dir(run_dir), why


def _matching_run(model: Namespace, root: Path, name: str) -> tuple[Path, str]:
    """The newest run of ``name`` trained with the command's model configuration, and why it (said to the user).

    The run name leaves options out (``drop_path_rate``, the optimizer), so runs of one
    name can be different models: the newest whose saved ``model`` section (its
    ``config.yaml``) equals the command's is taken. If none does, the newest that builds
    the same network (:data:`NETWORK_KEYS`) is, saying which other options differ (the
    checkpoint's are used, or contradict the command's and stop it). Runs whose network
    differs are never taken by default (``--run`` still picks any).

    Raises:
        RunNotFoundError: No run of that name with a checkpoint builds this network; the
            message lists each run and how its model differs.
    """
    ours = _comparable(model)
    try:
        run_dir, skipped = runs.newest_run_with_checkpoint(root, name, lambda run: _model_difference(run, ours))
        why = f"the newest run of {name!r} with this model configuration"
    except runs.RunNotFoundError:
        run_dir, skipped = runs.newest_run_with_checkpoint(
            root, name, lambda run: _model_difference(run, ours, NETWORK_KEYS)
        )
        why = (
            f"the newest run of {name!r} with this network; its other model options differ: "
            f"{_model_difference(run_dir, ours)}"
        )
    if skipped:
        why += "; skipped newer " + ", ".join(f"{run.name} ({reason})" for run, reason in skipped)
    return run_dir, why


def _comparable(value: Any) -> Any:
    """Config values as JSON would hold them (tuples as lists, paths as strings), to compare a saved config with."""
    return json.loads(json.dumps(plain(value), default=str))


def _saved_model(run_dir: Path) -> dict[str, Any] | None:
    """The ``model`` section of the configuration a run was trained with (its ``config.yaml``); None if unreadable.

    The file may come from someone else: it is read only if small, and without YAML
    aliases (a few lines of nested aliases expand to billions of nodes when compared).
    """
    path = run_dir / CONFIG_FILE
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            return None
        saved = yaml.load(path.read_text(encoding="utf-8"), Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader)
    except (OSError, ValueError, yaml.YAMLError, RecursionError):
        return None
    model = saved.get("model") if isinstance(saved, dict) else None
    return model if isinstance(model, dict) else None


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases (a configuration the CLI saved has none)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("a YAML alias in a run's config.yaml")
        return super().compose_node(parent, index)


def _model_difference(run_dir: Path, ours: dict[str, Any], keys: tuple[str, ...] | None = None) -> str | None:
    """How ``run_dir``'s saved model section differs from ``ours`` (in ``keys``; all but the linked ones if None).

    None when it does not, or when the run has no readable ``config.yaml`` to compare with
    (the checkpoint's hyperparameters are then checked against the options as usual).
    """
    saved = _saved_model(run_dir)
    if saved is None:
        return None
    theirs = _comparable(saved)
    differences = []
    for key in keys or sorted(set(ours) | set(theirs)):
        # An option only one side knows comes from another version of the program: nothing to compare.
        if key in LINKED_KEYS or key.startswith("_") or key not in ours or key not in theirs:
            continue
        differences += _differences(f"model.{key}", theirs[key], ours[key])
    if not differences:
        return None
    shown = "; ".join(differences[:3])
    return shown + (f"; {len(differences) - 3} more" if len(differences) > 3 else "")


_UNSET = object()


def _differences(path: str, theirs: Any, ours: Any) -> list[str]:
    """``["model.arch_kwargs.drop_path_rate is 0.1 there, unset here", ...]``: each differing leaf."""
    if theirs == ours:
        return []
    if isinstance(theirs, dict) and isinstance(ours, dict):
        if "class_path" in theirs and theirs.get("class_path") != ours.get("class_path"):
            return _differences(f"{path}.class_path", theirs.get("class_path", _UNSET), ours.get("class_path", _UNSET))
        return [
            line
            for key in sorted(set(theirs) | set(ours), key=str)
            for line in _differences(f"{path}.{key}", theirs.get(key, _UNSET), ours.get(key, _UNSET))
        ]
    shown = ["unset" if value is _UNSET else repr(value) for value in (theirs, ours)]
    return [f"{path} is {shown[0]} there, {shown[1]} here"]


def pick_checkpoint(ckpt_dir: Path, which: str) -> Path:
    """``last`` -> ``last.ckpt``; ``best`` -> the best checkpoint that ``last.ckpt`` records."""
    last = ckpt_dir / runs.LAST_CHECKPOINT
    if which == "last":
        return last
    require_complete_checkpoint(last)
    best = _checkpoint_state(last).get("best_model_path")
    if not best:
        tell(f"{last} records no best checkpoint (the monitored metric was never logged); using it instead")
        return last
    best_file = ckpt_dir / Path(best).name  # by name: the run directory may have been moved
    if not best_file.is_file():
        raise CheckpointError(
            f"{last} names {best_file} as the best checkpoint, but it does not exist; "
            "pass --ckpt_path last, or another checkpoint of the run"
        )
    return best_file


def _checkpoint_state(path: Path) -> dict[str, Any]:
    """The ModelCheckpoint callback's state saved in a checkpoint (read memory-mapped)."""
    state = read_checkpoint(path)
    return next(
        (s for k, s in state.get("callbacks", {}).items() if k.startswith("ModelCheckpoint") or k.startswith("RunCheckpoint")),
        {},
    )


def _remove_stale_best(ckpt_dir: Path, resumed_from: Path) -> None:
    """Delete best checkpoints that the state being resumed does not list (left by a kill)."""
    if not resumed_from.is_file() or resumed_from.parent != ckpt_dir:
        return
    keep = {Path(p).name for p in _checkpoint_state(resumed_from).get("best_k_models", {})}
    for stale in runs.stale_checkpoints(ckpt_dir, keep | {resumed_from.name}, BEST_PREFIX):
        tell(f"removing {stale}: written after the checkpoint being resumed, by the run that was stopped")
        stale.unlink()


def prepare_evaluation_run(config: Namespace, subcommand: str) -> Path | None:
    """Resolve the checkpoint of ``validate``/``test``/``predict`` and where their logs go.

    Returns:
        The run directory evaluated (None for an untrained network or a checkpoint
        outside any run).

    Raises:
        RunNotFoundError: Nothing to evaluate; the message says how to fix it.
    """
    name, root = _name_and_root(config)
    ckpt_path = config.get("ckpt_path")
    if ckpt_path == UNTRAINED:
        tell(f"{subcommand}: --ckpt_path {UNTRAINED}: evaluating a freshly initialised network, as asked")
        config.ckpt_path, run_dir = None, None
    elif ckpt_path in (None, "best", "last"):
        try:
            run_dir, ckpt_dir, why = _checkpoint_source(config, root, name)
        except runs.RunNotFoundError as err:
            raise runs.RunNotFoundError(
                f"{subcommand}: nothing to evaluate: {err}. Run `resnet-lightning fit` with the same config and "
                f"--trainer.default_root_dir first, pass --run N to evaluate a run whose model differs, "
                f"--ckpt_path PATH/TO/FILE.ckpt, or --ckpt_path {UNTRAINED} to evaluate an untrained network"
            ) from None
        ckpt_file = pick_checkpoint(ckpt_dir, ckpt_path or "best")
        tell(f"{subcommand}: run {run_dir or ckpt_dir} ({why}), checkpoint {ckpt_file}")
        config.ckpt_path = str(ckpt_file)
    else:
        config.ckpt_path = str(Path(ckpt_path).resolve())
        run_dir = runs.run_of_checkpoint(ckpt_path)
    if config.ckpt_path is not None:
        require_complete_checkpoint(config.ckpt_path)
        if config.checkpoint.dirpath is None:  # so the checkpoint's callback state matches, and Lightning stays quiet
            config.checkpoint.dirpath = str(Path(config.ckpt_path).parent)
    log_dir = run_dir if run_dir is not None else root / name
    config.trainer.default_root_dir = str(log_dir / subcommand)
    runs.watch_for_leftovers(log_dir / subcommand)  # a failed evaluation leaves no empty version_<K>
    _use_logger_dir(config, log_dir, subcommand, None)
    return run_dir


