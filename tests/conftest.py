"""Really installed test plugins (``tests/plugin_dists/``) for the registry and factory tests.

``plugin_sites`` pip-installs each distribution once per session into its own
folder; ``use_plugins(...)`` puts folders on ``sys.path`` for one test and
refreshes the registry, so discovery goes through ``importlib.metadata`` exactly
as for a plugin installed from PyPI.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from resnet_lightning import refresh_plugins
from resnet_lightning.registry import PLUGINS_ENV

# The test models are tiny: one intra-op thread is as fast as two on an idle machine
# and many times faster on a busy one, where OpenMP workers spin waiting for a core.
torch.set_num_threads(1)

PLUGIN_DISTS = Path(__file__).parent / "plugin_dists"
PLUGIN_MODULES = ("rl_test_plugin", "rl_test_duplicate", "rl_test_structure", "rl_test_misbehaving")
PLUGIN_DISTRIBUTIONS = ("rl-test-plugin", "rl-test-duplicate", "rl-test-structure", "rl-test-misbehaving")


@pytest.fixture(scope="session")
def plugin_sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"rl-test-plugin": site, ...}`` for each of :data:`PLUGIN_DISTRIBUTIONS`, a folder holding it installed."""
    root = tmp_path_factory.mktemp("plugins")
    sites, installs = {}, []
    for name in PLUGIN_DISTRIBUTIONS:
        # Build from a copy: an in-tree build leaves build/ and *.egg-info/ behind.
        source = shutil.copytree(PLUGIN_DISTS / name, root / "src" / name)
        sites[name] = root / f"site-{name}"
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                   "--no-input", "--disable-pip-version-check", "--target", str(sites[name]), str(source)]
        installs.append((name, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    for name, process in installs:  # both at once: a couple of seconds instead of twice that
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, f"pip could not install {name}:\n{output}"
    return sites


def _forget_plugin_modules() -> None:
    for module in [m for m in sys.modules if m.split(".")[0] in PLUGIN_MODULES]:
        del sys.modules[module]


@pytest.fixture
def use_plugins(plugin_sites: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``use_plugins("rl-test-plugin", ...)`` makes those distributions installed for this test only."""
    _forget_plugin_modules()  # so that "not imported yet" means what it says
    monkeypatch.delenv(PLUGINS_ENV, raising=False)  # a restriction in the caller's shell would hide them

    def activate(*names: str) -> None:
        for name in names:
            monkeypatch.syspath_prepend(str(plugin_sites[name]))
        refresh_plugins()

    yield activate
    monkeypatch.undo()  # sys.path and the environment back first, then forget what was found
    refresh_plugins()
    _forget_plugin_modules()
