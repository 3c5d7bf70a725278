"""The entry-point registry, on the really installed built-ins and on test plugins
pip-installed for real (``tests/plugin_dists/``, see ``tests/conftest.py``)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import nn

import resnet_lightning
from resnet_lightning import (
    DuplicatePluginError,
    PluginError,
    PluginLoadError,
    UnknownPluginError,
    create_model,
    get_architecture,
    get_block,
    list_architectures,
    list_blocks,
    list_plugins,
    refresh_plugins,
    register_architecture,
    register_block,
)
from resnet_lightning.models import BasicBlock
from resnet_lightning.registry import PLUGINS_ENV, unregister

BUILTIN_BLOCKS = {"basic", "bottleneck", "preact", "preact_bottleneck", "plain", "highway"}
Use = Callable[..., None]


def imported(package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in sys.modules)


# --- the built-ins ---------------------------------------------------------------


def test_builtins_are_listed_with_their_distribution_version_and_target() -> None:
    assert BUILTIN_BLOCKS <= set(list_blocks())
    assert {"resnet18", "cifar_resnet56", "mnist_resnet"} <= set(list_architectures())
    specs = {(s.kind, s.name): s for s in list_plugins() if s.distribution == "resnet-lightning"}
    basic = specs[("block", "basic")]
    assert (basic.version, basic.target) == (resnet_lightning.__version__, "resnet_lightning.models.blocks:BasicBlock")
    assert basic.qualified_name == "resnet-lightning:basic"
    assert specs[("architecture", "resnet50")].target == "resnet_lightning.models.builders:resnet50"
    assert {s.kind for s in list_plugins("block")} == {"block"}
    assert get_block("basic") is BasicBlock is get_block("resnet-lightning:basic")


def test_listing_in_a_fresh_interpreter() -> None:
    env = {k: v for k, v in os.environ.items() if k != PLUGINS_ENV}
    code = "import sys, resnet_lightning; print(resnet_lightning.list_blocks()); print('lightning' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    listed, lightning_imported = result.stdout.strip().splitlines()
    assert BUILTIN_BLOCKS <= set(ast.literal_eval(listed))
    assert lightning_imported == "False", "importing resnet_lightning must not import Lightning"


def test_unknown_names_suggest_the_closest_and_list_the_rest() -> None:
    with pytest.raises(UnknownPluginError) as info:
        get_block("prect")
    message = str(info.value)
    assert message.startswith("unknown block 'prect'; did you mean 'preact'? Available blocks: ")
    assert all(name in message for name in BUILTIN_BLOCKS)
    assert isinstance(info.value, KeyError) and isinstance(info.value, PluginError)
    with pytest.raises(UnknownPluginError, match=r"unknown architecture 'mnist_resnt'; did you mean 'mnist_resnet'\?"):
        create_model("mnist_resnt")
    with pytest.raises(UnknownPluginError, match=r"unknown block 'no-such-dist:basic'"):
        get_block("no-such-dist:basic")
    with pytest.raises(TypeError, match=r"block name must be a string, got int 3"):
        get_block(3)
    with pytest.raises(ValueError, match=r"unknown plugin kind 'blocks'; expected one of"):
        list_plugins("blocks")


# --- in-process registration ---------------------------------------------------------


@pytest.fixture
def registered() -> Iterator[list[tuple[str, str]]]:
    """Names this test registers in process, as (kind, name); unregistered afterwards."""
    names: list[tuple[str, str]] = []
    yield names
    for kind, name in names:
        unregister(kind, name)


class DoubledBasicBlock(BasicBlock):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


def test_register_block_in_process(registered: list[tuple[str, str]]) -> None:
    registered.append(("block", "rl_doubled"))
    assert register_block("rl_doubled")(DoubledBasicBlock) is DoubledBasicBlock
    assert get_block("rl_doubled") is DoubledBasicBlock and "rl_doubled" in list_blocks()
    spec = next(s for s in list_plugins("block") if s.name == "rl_doubled")
    assert spec.distribution == "<registered in process>"
    assert spec.target == f"{__name__}:DoubledBasicBlock"
    model = create_model("cifar_resnet", depth=20, block="rl_doubled")
    assert type(next(model.blocks())) is DoubledBasicBlock

    with pytest.raises(DuplicatePluginError, match=r"block 'rl_doubled' is already registered; .* override=True"):
        register_block("rl_doubled")(BasicBlock)
    with pytest.raises(DuplicatePluginError, match=r"block 'basic' is already registered"):
        register_block("basic")(DoubledBasicBlock)  # an entry point's name is taken too
    register_block("rl_doubled", override=True)(BasicBlock)
    assert get_block("rl_doubled") is BasicBlock
    refresh_plugins()  # forgets discovered entry points, keeps in-process registrations
    assert get_block("rl_doubled") is BasicBlock


def test_register_architecture_takes_the_function_name(registered: list[tuple[str, str]]) -> None:
    registered.append(("architecture", "rl_tiny_net"))

    @register_architecture()
    def rl_tiny_net(*, num_classes: int = 10, in_channels: int = 3, block: Any = None) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))

    assert get_architecture("rl_tiny_net") is rl_tiny_net
    assert create_model("rl_tiny_net", num_classes=4)(torch.randn(2, 1, 3, 3)).shape == (2, 4)


# --- real installed plugins -----------------------------------------------------------


def test_installed_plugin_is_listed_with_its_distribution_without_being_imported(use_plugins: Use) -> None:
    use_plugins("rl-test-plugin")
    blocks, architectures = list_blocks(), list_architectures()
    assert {"rl_test_block", "rl_test_broken", "rl_test_ignores_stride"} <= set(blocks)
    assert BUILTIN_BLOCKS <= set(blocks) and "rl_test_net" in architectures
    specs = {s.name: s for s in list_plugins() if s.distribution == "rl-test-plugin"}
    assert set(specs) == {"rl_test_block", "rl_test_broken", "rl_test_ignores_stride", "rl_test_net"}
    assert {s.version for s in specs.values()} == {"0.3.1"}
    assert specs["rl_test_block"].target == "rl_test_plugin.blocks:ScaledBasicBlock"
    assert specs["rl_test_net"].kind == "architecture"
    assert not imported("rl_test_plugin"), "listing must read metadata only"

    block = get_block("rl_test_block")
    assert imported("rl_test_plugin.blocks") and not imported("rl_test_plugin.broken")
    assert block.__module__ == "rl_test_plugin.blocks" and get_block("rl-test-plugin:rl_test_block") is block


def test_installed_plugin_builds_and_runs(use_plugins: Use) -> None:
    use_plugins("rl-test-plugin")
    x = torch.randn(2, 3, 16, 16)
    model = create_model("cifar_resnet", depth=20, block="rl_test_block", shortcut="B")
    assert type(next(model.blocks())).__name__ == "ScaledBasicBlock"
    assert model(x).shape == (2, 10)
    net = create_model("rl_test_net", num_classes=3, width=4)  # the plugin's own architecture and option
    assert net(x).shape == (2, 3) and net.layer2[0].conv1.out_channels == 8
    assert create_model("rl_test_net", block="preact", in_channels=1)(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_a_broken_plugin_is_reported_and_breaks_nothing_else(use_plugins: Use) -> None:
    use_plugins("rl-test-plugin")
    assert "rl_test_broken" in list_blocks()  # listing does not import it
    with pytest.raises(PluginLoadError) as info:
        get_block("rl_test_broken")
    message = str(info.value)
    assert "block plugin 'rl_test_broken' from distribution rl-test-plugin 0.3.1" in message
    assert "(entry point 'rl_test_plugin.broken:BrokenBlock')" in message
    assert "RuntimeError: rl_test_plugin.broken fails to import on purpose" in message
    assert f"exclude it with {PLUGINS_ENV}" in message
    assert isinstance(info.value.__cause__, RuntimeError) and isinstance(info.value, ImportError)
    with pytest.raises(PluginLoadError, match="rl_test_broken"):
        create_model("cifar_resnet", block="rl_test_broken")

    assert get_block("rl_test_block").__name__ == "ScaledBasicBlock"  # same distribution, still fine
    assert create_model("rl_test_net")(torch.randn(1, 3, 8, 8)).shape == (1, 10)
    assert get_block("basic") is BasicBlock


def test_two_distributions_claiming_one_name(use_plugins: Use) -> None:
    use_plugins("rl-test-plugin", "rl-test-duplicate")
    with pytest.raises(DuplicatePluginError) as info:
        get_block("rl_test_block")
    message = str(info.value)
    assert "block 'rl_test_block' is registered by more than one distribution" in message
    assert "rl-test-plugin 0.3.1 (rl_test_plugin.blocks:ScaledBasicBlock)" in message
    assert "rl-test-duplicate 0.0.2 (rl_test_duplicate.blocks:OtherBlock)" in message
    assert "'rl-test-plugin:rl_test_block'" in message and "'rl-test-duplicate:rl_test_block'" in message
    assert not imported("rl_test_plugin") and not imported("rl_test_duplicate"), "neither was picked by import order"

    assert get_block("rl-test-plugin:rl_test_block").__name__ == "ScaledBasicBlock"
    assert get_block("rl-test-duplicate:rl_test_block").__name__ == "OtherBlock"
    assert get_block("RL_Test.Duplicate:rl_test_block").__name__ == "OtherBlock"  # PEP 503 names
    model = create_model("cifar_resnet", depth=20, block="rl-test-duplicate:rl_test_block")
    assert type(next(model.blocks())).__name__ == "OtherBlock"

    with pytest.warns(UserWarning, match=r"block 'rl_test_block' is registered by both") as warned:
        assert "rl_test_block" in list_blocks()
    text = str(warned[0].message)
    assert "rl-test-plugin" in text and "rl-test-duplicate" in text
    assert sum(s.name == "rl_test_block" for s in list_plugins("block")) == 2


@pytest.mark.parametrize("value", ["none", "NONE", "off"])
def test_plugins_switched_off_keeps_the_builtins(use_plugins: Use, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(PLUGINS_ENV, value)
    use_plugins("rl-test-plugin")
    assert BUILTIN_BLOCKS <= set(list_blocks())
    assert not any(s.distribution != "resnet-lightning" for s in list_plugins())
    with pytest.raises(UnknownPluginError, match=r"unknown block 'rl_test_block'"):
        get_block("rl_test_block")
    assert create_model("cifar_resnet20")(torch.randn(1, 3, 8, 8)).shape == (1, 10)


@pytest.mark.parametrize("value", ["rl-test-plugin", " RL_Test_Plugin , some-other-dist"])
def test_plugins_restricted_to_named_distributions(use_plugins: Use, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(PLUGINS_ENV, value)
    use_plugins("rl-test-plugin", "rl-test-duplicate")
    assert {s.distribution for s in list_plugins()} == {"resnet-lightning", "rl-test-plugin"}
    assert get_block("rl_test_block").__name__ == "ScaledBasicBlock"  # the duplicate is excluded: no conflict
    assert BUILTIN_BLOCKS <= set(list_blocks())


def test_refresh_forgets_uninstalled_plugins(use_plugins: Use, monkeypatch: pytest.MonkeyPatch) -> None:
    use_plugins("rl-test-plugin")
    assert "rl_test_net" in list_architectures()
    monkeypatch.undo()  # the plugin's folder leaves sys.path
    assert "rl_test_net" in list_architectures()  # discovery is cached...
    refresh_plugins()
    assert "rl_test_net" not in list_architectures()  # ...until refreshed
