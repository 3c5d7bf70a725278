"""A checkpoint's hyperparameters against the command's model options: adopt, or refuse naming both.

Lightning's CLI replaces every ``--model.*`` value with the checkpoint's; here options the user
left at their defaults take the checkpoint's values and options the user set that the
checkpoint contradicts are an error, so a command never silently evaluates another model.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from typing import Any

from jsonargparse import Namespace

from .. import runs
from ..checkpoint_io import CheckpointError, read_checkpoint

# What decides the network an evaluation computes; fit resumes compare every hyperparameter.
EVALUATION_KEYS = ("arch", "block", "arch_kwargs", "num_classes", "in_channels")
LINKED_KEYS = ("num_classes", "in_channels")  # set from the DataModule when instantiating; checked after


def plain(value: Any) -> Any:
    """Config values as plain Python, to compare with what a checkpoint saved."""
    if isinstance(value, Namespace):
        value = value.as_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
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
        ours, theirs = plain(model[key]), plain(saved[key])
        if ours == theirs:
            continue
        if ours == plain(defaults.get(key)):
            adopt[key] = theirs
        else:
            differ.append(f"model.{key} is {ours!r} here but {theirs!r} in the checkpoint")
    if differ:
        _refuse(ckpt_path, differ)
    for key, value in adopt.items():
        _refuse_untrusted_class_paths(f"model.{key}", value, ckpt_path)
    return adopt


def _refuse_untrusted_class_paths(option: str, value: Any, ckpt_path: str | os.PathLike[str]) -> None:
    """Raise when a checkpoint names a class (``class_path``) whose module is not an installed package.

    jsonargparse imports the module of every class path it is given, and importing runs the
    module. A class path the user typed is theirs; one taken from a checkpoint is the file's:
    it may name a module beside the checkpoint (on ``sys.path`` as the working directory
    under ``python -m``), so only modules already imported or shipped by an installed
    distribution (torch, a plugin) are taken from a file.
    """
    if isinstance(value, dict):
        path = value.get("class_path")
        if isinstance(path, str) and not _importable_from_a_file(path):
            raise CheckpointError(
                f"checkpoint {os.fspath(ckpt_path)} sets {option} to class {path}, whose module is not an installed "
                f"package; refusing to import it from a file. Pass --{option} yourself (e.g. --model.optimizer SGD)"
            )
        for key, item in value.items():
            _refuse_untrusted_class_paths(f"{option}.{key}", item, ckpt_path)
    elif isinstance(value, list):
        for item in value:
            _refuse_untrusted_class_paths(option, item, ckpt_path)


def _importable_from_a_file(class_path: str) -> bool:
    module = class_path.rpartition(".")[0]
    top = module.partition(".")[0]
    return module in sys.modules or top in importlib.metadata.packages_distributions()


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
