"""The project's own blocks and architectures: the core's entry points and those of the example plugins in ``plugins/``.

A test about "every architecture" means these, read from the installed distributions'
metadata (``importlib.metadata``), never everything installed: a user's own plugin,
installed as docs/writing-a-plugin.md says, must not make the core's tests fail.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from resnet_lightning.registry import ARCHITECTURE_GROUP, BLOCK_GROUP, CORE_DISTRIBUTION

ROOT = Path(__file__).resolve().parents[1]
# The example plugins shipped in plugins/, by the distribution name their pyproject.toml gives.
SHIPPED_PLUGINS = tuple(
    sorted(
        tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"]
        for folder in (ROOT / "plugins").iterdir()
        if (folder / "pyproject.toml").is_file()
    )
)
PROJECT_DISTRIBUTIONS = (CORE_DISTRIBUTION, *SHIPPED_PLUGINS)
_GROUPS = {"block": BLOCK_GROUP, "architecture": ARCHITECTURE_GROUP}


def installed_project_distributions() -> list[str]:
    """The project's distributions that are installed (the core always is; an example plugin may not be)."""
    installed = []
    for name in PROJECT_DISTRIBUTIONS:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        installed.append(name)
    return installed


def project_entries(kind: str) -> dict[str, str]:
    """``{registry name: distribution}`` of the project's installed blocks or architectures (``kind``)."""
    entries = {}
    for name in installed_project_distributions():
        for entry_point in importlib.metadata.distribution(name).entry_points.select(group=_GROUPS[kind]):
            entries[entry_point.name] = name
    return entries
