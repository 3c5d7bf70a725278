"""The run's configuration as flat keys, plus the versions that produced it.

Experiment trackers filter, group and compare runs by config keys. A nested
config logged as one YAML string cannot be filtered; flat dotted keys
(``model.arch``, ``data.init_args.batch_size``, ``versions.torch``) can, in W&B's
runs table and in TensorBoard's HPARAMS tab alike.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ..registry import list_plugins

_CORE_PACKAGES = ("torch", "torchvision", "lightning", "torchmetrics", "wandb")


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted keys; lists of mappings are indexed.

    ``{"model": {"arch": "r20"}, "trainer": {"callbacks": [{"class_path": "X"}]}}``
    becomes ``{"model.arch": "r20", "trainer.callbacks.0.class_path": "X"}``.
    Lists of plain values (``milestones: [32000, 48000]``) stay lists.

    Args:
        config: A (nested) mapping, e.g. a LightningCLI config dumped to plain data.
        prefix: Key prefix used by the recursion.
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if value:
                flat.update(flatten_config(value, f"{name}."))
            else:
                flat[name] = {}
        elif isinstance(value, (list, tuple)) and any(isinstance(v, Mapping) for v in value):
            flat.update(flatten_config({str(i): v for i, v in enumerate(value)}, f"{name}."))
        else:
            flat[name] = value
    return flat


def _key(distribution: str) -> str:
    # "resnet-lightning" -> "resnet_lightning": one spelling per package, whatever its metadata says.
    return distribution.lower().replace("-", "_").replace(".", "_")


def version_info() -> dict[str, str]:
    """``versions.<package>`` of Python, the core libraries and every plugin distribution.

    Plugin distributions come from :func:`resnet_lightning.list_plugins` (metadata
    only, nothing imported), so a run records exactly which plugin releases built it.
    """
    versions = {"versions.python": platform.python_version()}
    for package in _CORE_PACKAGES:
        try:
            versions[f"versions.{package}"] = version(package)
        except PackageNotFoundError:
            continue
    for spec in list_plugins():
        if spec.version:  # plugins registered in process have no distribution
            versions[f"versions.{_key(spec.distribution)}"] = spec.version
    return versions
