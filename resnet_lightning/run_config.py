"""From a parsed CLI config to a run: which directory, which checkpoint, which logger.

Called by the CLI before anything is instantiated, so that the trainer, the
checkpoint callback and the loggers are all built pointing at one run directory
(:mod:`resnet_lightning.runs` has the layout and the rules). The rules:

* ``fit`` claims a new ``version_<N>``; ``fit --ckpt_path last`` continues the
  newest run of the same name in its own directory (or says there is none and
  starts a new one); ``--ckpt_path PATH`` inside a run continues that run.
* ``test``/``validate``/``predict`` with no ``--ckpt_path``, ``best`` or ``last``
  evaluate the newest run of the same name (``--run`` picks another); with none,
  that is an error, unless ``--ckpt_path untrained`` asks for a fresh network.
* A checkpoint that is incomplete, or whose hyperparameters contradict the
  configured model, is an error naming both (never a silently different model).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.fabric.utilities.rank_zero import _get_rank

from . import runs
from .checkpoint_io import CheckpointError, read_checkpoint, require_complete_checkpoint
from .tracking.wandb_setup import _wandb_logger_args

# Set by rank zero for the DDP worker processes it launches, which parse the same
# command line and must use the run (and checkpoint) rank zero chose, not claim their own.
RUN_ENV = "RESNET_LIGHTNING_RUN"
UNTRAINED = "untrained"  # --ckpt_path untrained: evaluate a freshly initialised network, on purpose
BEST_PREFIX = "best-"
# What decides the network an evaluation computes; fit resumes compare every hyperparameter.
EVALUATION_KEYS = ("arch", "block", "arch_kwargs", "num_classes", "in_channels")
LINKED_KEYS = ("num_classes", "in_channels")  # set from the DataModule when instantiating; checked after


class RunConfigError(ValueError):
    """The command line asks for a run or checkpoint that cannot be used as asked."""


def tell(message: str) -> None:
    """Print ``resnet-lightning: <message>`` to stderr, once (on rank zero)."""
    if not _get_rank():  # rank zero, or no distributed launch
        print(f"resnet-lightning: {message}", file=sys.stderr)


def _name_and_root(config: Namespace) -> tuple[str, Path]:
    model = config.model
    name = runs.run_name(str(config.data.class_path), model.arch, model.block, model.arch_kwargs)
    return name, Path(config.trainer.default_root_dir or ".").resolve()


def _worker_run() -> dict[str, str | None] | None:
    """What rank zero chose, in a DDP worker process it launched; None elsewhere."""
    if _get_rank() in (None, 0) or RUN_ENV not in os.environ:
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
        if run_dir is None and _get_rank():
            # A rank > 0 started by SLURM or torchrun, not by rank zero: it never writes
            # (checkpoint paths and log directories come from rank zero), so it claims nothing.
            run_dir = root / name / f"{runs.VERSION_PREFIX}of-rank-zero"
        elif run_dir is None:
            run_dir = runs.new_run(root, name)
        os.environ[RUN_ENV] = json.dumps({"run_dir": str(run_dir), "ckpt_path": config.ckpt_path})
        tell(f"fit: run directory {run_dir}")
    if not explicit_dirpath:
        config.checkpoint.dirpath = str(runs.checkpoint_dir(run_dir))
    config.trainer.default_root_dir = str(run_dir)
    _use_logger_dir(config, run_dir.parent.parent, name, run_dir.name)
    if config.ckpt_path is not None and not explicit_dirpath and chosen is None:
        _remove_stale_best(Path(config.checkpoint.dirpath), Path(config.ckpt_path))
    return run_dir


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
        run_dir, ckpt_dir = _checkpoint_source(config, root, name)
    except runs.RunNotFoundError as err:
        tell(f"fit --ckpt_path {ckpt_path}: {err}; starting a new run")
        config.ckpt_path = None
        return None
    ckpt_file = _pick_checkpoint(ckpt_dir, ckpt_path)
    require_complete_checkpoint(ckpt_file)
    config.ckpt_path = str(ckpt_file)
    tell(f"fit: continuing {run_dir or ckpt_dir} from {ckpt_file}")
    return run_dir


def _checkpoint_source(config: Namespace, root: Path, name: str) -> tuple[Path | None, Path]:
    """The run and checkpoint directory that ``best``/``last`` refer to."""
    if config.checkpoint.dirpath is not None:  # --checkpoint.dirpath: the user's own place
        ckpt_dir = Path(config.checkpoint.dirpath).resolve()
        if not (ckpt_dir / runs.LAST_CHECKPOINT).is_file():
            raise runs.RunNotFoundError(f"no {runs.LAST_CHECKPOINT} in --checkpoint.dirpath {ckpt_dir}")
        return runs.run_of_checkpoint(ckpt_dir / runs.LAST_CHECKPOINT), ckpt_dir
    if config.get("run") is not None:
        run_dir = runs.select_run(root, name, config.run)
        if not (runs.checkpoint_dir(run_dir) / runs.LAST_CHECKPOINT).is_file():
            raise runs.RunNotFoundError(f"run {run_dir} has no {runs.CHECKPOINT_DIR}/{runs.LAST_CHECKPOINT}")
    else:
        run_dir, skipped = runs.newest_run_with_checkpoint(root, name)
        if skipped:
            tell(f"skipping newer run(s) without a checkpoint: {', '.join(p.name for p in skipped)}")
    return run_dir, runs.checkpoint_dir(run_dir)


def _pick_checkpoint(ckpt_dir: Path, which: str) -> Path:
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
            run_dir, ckpt_dir = _checkpoint_source(config, root, name)
        except runs.RunNotFoundError as err:
            raise runs.RunNotFoundError(
                f"{subcommand}: nothing to evaluate: {err}. Run `resnet-lightning fit` with the same config and "
                f"--trainer.default_root_dir first, pass --ckpt_path PATH/TO/FILE.ckpt, or --ckpt_path {UNTRAINED} "
                "to evaluate an untrained network"
            ) from None
        ckpt_file = _pick_checkpoint(ckpt_dir, ckpt_path or "best")
        tell(f"{subcommand}: run {run_dir or ckpt_dir}, checkpoint {ckpt_file}")
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
    _use_logger_dir(config, log_dir, subcommand, None)
    return run_dir


def _plain(value: Any) -> Any:
    """Config values as plain Python, to compare with what a checkpoint saved."""
    if isinstance(value, Namespace):
        value = value.as_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def reconcile_hyperparameters(
    model: Namespace, defaults: Namespace, saved: dict[str, Any], ckpt_path: str | os.PathLike[str], keys: tuple[str, ...] | None
) -> dict[str, Any]:
    """The checkpoint's hyperparameters for the model options left at their defaults; an error for contradictions.

    Lightning's CLI replaces every ``--model.*`` value with the checkpoint's, so
    ``test --model.arch cifar_resnet56 --ckpt_path <a resnet20>`` silently tests the
    resnet20. Here an option the user set (anything but its default) that the
    checkpoint contradicts is an error naming both; options left at their defaults
    take the checkpoint's values, so ``test --ckpt_path FILE`` alone rebuilds its model.

    Args:
        model: The configured ``model`` section.
        defaults: The parser's defaults for it.
        saved: The checkpoint's hyperparameters (:func:`saved_hyperparameters`).
        ckpt_path: The checkpoint about to be loaded (named in the error).
        keys: The hyperparameters that matter (None: every one the checkpoint saved).

    Returns:
        ``{key: checkpoint value}`` to apply to the model section.

    Raises:
        CheckpointError: Naming each contradiction and the fix.
    """
    adopt, differ = {}, []
    for key in keys or list(saved):
        if key.startswith("_") or key in LINKED_KEYS or key not in saved or key not in model:
            continue
        ours, theirs = _plain(model[key]), _plain(saved[key])
        if ours == theirs:
            continue
        if ours == _plain(defaults.get(key)):
            adopt[key] = theirs
        else:
            differ.append(f"model.{key} is {ours!r} here but {theirs!r} in the checkpoint")
    if differ:
        _refuse(ckpt_path, differ)
    return adopt


def saved_hyperparameters(ckpt_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The hyperparameters a checkpoint was trained with (read memory-mapped, without the weights)."""
    return read_checkpoint(ckpt_path).get("hyper_parameters", {})


def _refuse(ckpt_path: str | os.PathLike[str], differ: list[str]) -> None:
    run_dir = runs.run_of_checkpoint(ckpt_path)
    fix = f"--config {run_dir / 'config.yaml'}" if run_dir and (run_dir / "config.yaml").is_file() else "the fit's options"
    raise CheckpointError(f"{ckpt_path}: {'; '.join(differ)}. Pass {fix}, or drop the contradicting --model options")


def check_linked_hyperparameters(model_hparams: dict[str, Any], saved: dict[str, Any], ckpt_path: str | os.PathLike[str]) -> None:
    """Raise when the DataModule gave the model another shape than the checkpoint's.

    ``num_classes`` and ``in_channels`` are linked from the DataModule when the model
    is instantiated, after :func:`reconcile_hyperparameters` has checked the rest.

    Args:
        model_hparams: The instantiated model's hyperparameters.
        saved: The checkpoint's hyperparameters.
        ckpt_path: The checkpoint about to be loaded (named in the error).

    Raises:
        CheckpointError: Naming each differing value, both ways, and the fix.
    """
    differ = [
        f"model.{key} is {model_hparams[key]!r} for this --data but {saved[key]!r} in the checkpoint"
        for key in LINKED_KEYS
        if key in saved and key in model_hparams and model_hparams[key] != saved[key]
    ]
    if differ:
        _refuse(ckpt_path, differ)
