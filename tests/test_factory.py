"""``create_model``: arguments, errors that say what to do, and the block contract at build time."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import nn

from resnet_lightning import create_model, register_architecture, register_block
from resnet_lightning.models import BlockContractError
from resnet_lightning.registry import unregister


@pytest.fixture
def registered() -> Iterator[list[tuple[str, str]]]:
    names: list[tuple[str, str]] = []
    yield names
    for kind, name in names:
        unregister(kind, name)


def test_defaults_are_kept_unless_given() -> None:
    mnist = create_model("mnist_resnet")
    assert (mnist.conv1.in_channels, mnist.fc.out_features) == (1, 10)
    cifar = create_model("cifar_resnet20", num_classes=100, in_channels=1)
    assert (cifar.conv1.in_channels, cifar.fc.out_features) == (1, 100)


def test_an_option_the_architecture_does_not_take_names_it_and_what_it_takes() -> None:
    with pytest.raises(TypeError) as info:
        create_model("resnet18", depth=20)
    message = str(info.value)
    assert message.startswith("architecture 'resnet18' does not accept depth=20")
    accepted = message.split("It accepts: ")[1].split(", ")
    assert {"num_classes", "in_channels", "block", "widths", "shortcut", "drop_path_rate", "zero_init_residual"} <= set(accepted)
    assert "depth" not in accepted and "block_name" not in accepted

    # Through two builders (cifar_resnet56 -> cifar_resnet -> ResNet): still named, with a suggestion.
    with pytest.raises(TypeError, match=r"architecture 'cifar_resnet56' does not accept dept=56\. Did you mean 'depth'\?"):
        create_model("cifar_resnet56", dept=56)


def test_a_strict_architecture_reports_the_same_way(registered: list[tuple[str, str]]) -> None:
    registered.append(("architecture", "rl_strict"))

    @register_architecture("rl_strict")
    def build(*, num_classes: int = 10, in_channels: int = 3, block: Any = None) -> nn.Module:
        return nn.Linear(in_channels, num_classes)

    with pytest.raises(TypeError, match=r"^architecture 'rl_strict' does not accept width=4\. It accepts: num_classes, in_channels, block$"):
        create_model("rl_strict", width=4)


def test_a_blocks_own_type_error_is_not_blamed_on_the_architecture(registered: list[tuple[str, str]]) -> None:
    registered.append(("block", "rl_no_shortcut_kwarg"))

    @register_block("rl_no_shortcut_kwarg")
    class NoShortcutKwarg(nn.Module):  # breaks the contract: no **kwargs, so the framework's shortcut= fails
        def __init__(self, in_channels: int, out_channels: int, stride: int = 1, norm_layer: Any = None,
                     drop_path_rate: float = 0.0) -> None:
            super().__init__()

    with pytest.raises(TypeError, match=r"^.*NoShortcutKwarg.__init__\(\) got an unexpected keyword argument 'shortcut'$"):
        create_model("cifar_resnet", block="rl_no_shortcut_kwarg", shortcut="B")


def test_an_architecture_must_return_a_module(registered: list[tuple[str, str]]) -> None:
    registered.append(("architecture", "rl_returns_dict"))
    register_architecture("rl_returns_dict")(lambda **kwargs: {"fc": nn.Linear(2, 2)})
    with pytest.raises(TypeError, match=r"architecture 'rl_returns_dict' returned dict, not a torch.nn.Module"):
        create_model("rl_returns_dict")


def test_a_plugin_block_that_ignores_its_stride_fails_at_build(use_plugins: Callable[..., None]) -> None:
    use_plugins("rl-test-plugin")
    with pytest.raises(BlockContractError) as info:
        create_model("cifar_resnet", depth=20, block="rl_test_ignores_stride")
    message = str(info.value)
    assert "block 'rl_test_ignores_stride' breaks the block contract" in message
    assert "in_channels=16, out_channels=32, stride=2" in message
    assert re.search(r"must map \[2, 16, 7, 7\] to \[2, 32, 4, 4\] .* but returned \[2, 32, 7, 7\]$", message)
    # Where the stride is 1 everywhere the same block keeps the contract.
    model = create_model("mnist_resnet", num_blocks=2, block="rl_test_ignores_stride")
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_a_block_that_fails_on_its_first_input_is_named(registered: list[tuple[str, str]]) -> None:
    registered.append(("block", "rl_crashes"))

    @register_block("rl_crashes")
    class Crashes(nn.Module):
        def __init__(self, in_channels: int, out_channels: int, stride: int = 1, **kwargs: Any) -> None:
            super().__init__()
            self.conv = nn.Conv2d(in_channels + 1, out_channels, 3, stride, 1)  # wrong input width

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    with pytest.raises(BlockContractError, match=r"block 'rl_crashes' failed on an input of shape \[2, 16, 7, 7\] .*RuntimeError"):
        create_model("cifar_resnet", block="rl_crashes")


def test_a_network_is_built_without_a_forward_pass_and_its_blocks_checked_on_the_meta_device() -> None:
    from resnet_lightning.models import BasicBlock, ResNet

    devices: list[str] = []
    hook = torch.nn.modules.module.register_module_forward_pre_hook(lambda module, args: devices.append(args[0].device.type))
    try:
        ResNet(BasicBlock, [2, 2], widths=(8, 16), stem="cifar")
        assert devices == []  # building runs nothing
        create_model("cifar_resnet20")  # checks the contract once: shapes only, no arithmetic
    finally:
        hook.remove()
    assert devices and set(devices) == {"meta"}


def test_a_bad_value_names_the_architecture_and_the_options() -> None:
    from resnet_lightning.factory import ArchitectureArgumentError

    with pytest.raises(ValueError, match=r"^architecture 'cifar_resnet' cannot be built with block='preact', depth=21: ") as info:
        create_model("cifar_resnet", block="preact", depth=21)
    assert isinstance(info.value, ArchitectureArgumentError) and "try depth=20" in str(info.value)


def test_the_accepted_keywords_come_from_the_signatures_along_the_builders() -> None:
    from resnet_lightning.factory import _accepted
    from resnet_lightning.models import builders

    # cifar_resnet56(**kwargs) -> cifar_resnet(*, depth, ...) -> ResNet(*, widths, ...): all of them.
    accepted = _accepted(builders.cifar_resnet56)
    assert {"depth", "block", "widths", "shortcut", "drop_path_rate", "zero_init_residual"} <= set(accepted)
    assert "block_name" not in accepted and "layers" not in accepted
