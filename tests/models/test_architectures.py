"""Every built-in architecture takes every built-in block, and any number of input channels."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from resnet_lightning import count_parameters, create_model, get_block, list_architectures
from resnet_lightning.models import PreActBlock

BUILTIN_BLOCKS = ["basic", "bottleneck", "preact", "preact_bottleneck", "plain", "highway"]
# A small instance of each family, and an input size it takes.
SMALL = {
    "resnet18": ({"widths": (8, 16, 32, 64)}, 32),
    "resnet50": ({"widths": (8, 16, 32, 64)}, 32),
    "cifar_resnet": ({"depth": 20}, 16),  # 6n+2 and 9n+2 both: n=3 two-layer or n=2 three-layer blocks
    "cifar_plain": ({"depth": 20}, 16),
    "preact_resnet": ({"depth": 20}, 16),
    "mnist_resnet": ({"num_blocks": 2}, 12),
    "resnet_stages": ({"layers": [1, 2, 1], "widths": [8, 16, 32]}, 16),
}


def test_every_builtin_architecture_is_registered() -> None:
    names = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "cifar_resnet", "cifar_plain",
             "preact_resnet", "mnist_resnet", "resnet_stages"}
    names |= {f"cifar_{kind}{depth}" for kind in ("resnet", "plain") for depth in (20, 32, 44, 56, 110, 1202)}
    assert names <= set(list_architectures())


def check_forward(model: nn.Module, in_channels: int, size: int, num_classes: int) -> None:
    x = torch.randn(2, in_channels, size, size)
    model.train()
    out = model(x)
    assert out.shape == (2, num_classes) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():
        assert torch.isfinite(model.eval()(x)).all()


@pytest.mark.parametrize("block", BUILTIN_BLOCKS)
@pytest.mark.parametrize("arch", SMALL)
def test_every_architecture_takes_every_block(arch: str, block: str) -> None:
    options, size = SMALL[arch]
    torch.manual_seed(0)
    model = create_model(arch, block=block, num_classes=7, **options)
    block_cls = get_block(block)
    assert all(type(b) is block_cls for b in model.blocks())
    # Pre-activation blocks end in a convolution: the network adds the final BN-ReLU (He et al. 2016).
    if getattr(block_cls, "preactivation", False):
        assert isinstance(model.final_norm[0], nn.BatchNorm2d) and isinstance(model.final_norm[1], nn.ReLU)
    else:
        assert isinstance(model.final_norm, nn.Identity)
    check_forward(model, model.conv1.in_channels, size, 7)


@pytest.mark.parametrize("arch", SMALL)
def test_one_input_channel(arch: str) -> None:
    options, size = SMALL[arch]
    model = create_model(arch, in_channels=1, num_classes=3, **options)
    assert model.conv1.in_channels == 1
    check_forward(model, 1, size, 3)


def test_full_size_examples() -> None:
    torch.manual_seed(0)
    preact34 = create_model("resnet34", block="preact", num_classes=10)
    assert sum(1 for _ in preact34.blocks()) == 16 and all(isinstance(b, PreActBlock) for b in preact34.blocks())
    assert isinstance(preact34.final_norm[0], nn.BatchNorm2d)
    check_forward(preact34, 3, 32, 10)

    highway56 = create_model("cifar_resnet", depth=56, block="highway")
    assert sum(1 for _ in highway56.blocks()) == 27
    check_forward(highway56, 3, 16, 10)


def test_block_given_as_a_class_or_a_qualified_name() -> None:
    by_class = create_model("cifar_resnet", depth=20, block=PreActBlock)
    by_name = create_model("resnet-lightning:cifar_resnet20", block="resnet-lightning:preact")
    assert count_parameters(by_class) == count_parameters(by_name)
    assert type(next(by_name.blocks())) is PreActBlock
    with pytest.raises(TypeError, match=r"block must be a registry name, an nn.Module subclass or None, got 3"):
        create_model("cifar_resnet", block=3)


def test_preact_resnet_164() -> None:
    model = create_model("preact_resnet")  # He et al. 2016: 1.7M parameters
    assert 1.65e6 < count_parameters(model) < 1.75e6
    assert len(model.layer1) == 18 and model.fc.in_features == 256


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_classes": 0}, r"num_classes must be a positive integer, got 0"),
        ({"in_channels": True}, r"in_channels must be a positive integer, got True"),
        ({"stem": "cifar10"}, r"unknown stem 'cifar10'; expected one of \['imagenet', 'deep', 'cifar', 'pointwise'\]"),
        ({"drop_path_rate": 1.0}, r"drop_path_rate must be in \[0, 1\), got 1.0"),
    ],
)
def test_bad_network_options_are_refused_by_name(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_model("cifar_resnet", **options)
