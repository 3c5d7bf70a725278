"""CReLU with LL initialisation: linear at initialisation, exactly, and only there."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from crelu_ll import CReLULLBlock, LLConv2d, crelu
from resnet_lightning import create_model, get_block, list_architectures, list_blocks
from resnet_lightning.testing import check_architecture, check_block


def superposition_error(f, x1: torch.Tensor, x2: torch.Tensor, a: float = 2.0, b: float = -3.0) -> float:
    """``max |f(a x1 + b x2) - (a f(x1) + b f(x2))|``, zero for a linear ``f``."""
    with torch.no_grad():
        return (f(a * x1 + b * x2) - (a * f(x1) + b * f(x2))).abs().max().item()


def test_installed_entry_points_register_every_name() -> None:
    assert "crelu_ll" in list_blocks() and get_block("crelu_ll") is CReLULLBlock
    assert "crelu_ll_net" in list_architectures()


def test_the_block_keeps_the_block_contract() -> None:
    check_block("crelu_ll")
    check_block("crelu_ll", looks_linear=False)


def test_the_architecture_keeps_the_architecture_contract() -> None:
    check_architecture("crelu_ll_net", depth=8)
    check_architecture("crelu_ll_net", depth=8, norm=False, block="crelu_ll")


def test_crelu_concatenates_both_halves() -> None:
    x = torch.tensor([[[[1.5]], [[-2.0]]]])  # (1, 2, 1, 1)
    assert crelu(x).flatten().tolist() == [1.5, 0.0, 0.0, 2.0]


def test_an_ll_convolution_is_the_linear_convolution_of_its_first_half() -> None:
    torch.manual_seed(0)
    conv = LLConv2d(4, 6, stride=2)
    half = conv.weight[:, :4]
    assert torch.equal(conv.weight[:, 4:], -half)  # the mirror: W = [W~, -W~]
    x = torch.randn(2, 4, 7, 7)
    assert torch.allclose(conv(x), F.conv2d(x, half, stride=2, padding=1), atol=1e-6)


@pytest.mark.parametrize("norm_layer", [nn.BatchNorm2d, nn.Identity])
def test_the_block_is_linear_at_initialisation(norm_layer: type[nn.Module]) -> None:
    torch.manual_seed(0)
    # BatchNorm is a linear map in eval mode with its initial running statistics;
    # with no norm the block is linear in train mode as well.
    block = CReLULLBlock(8, 16, 2, norm_layer=norm_layer).train(norm_layer is nn.Identity)
    x1, x2 = torch.randn(4, 8, 7, 7), torch.randn(4, 8, 7, 7)
    assert superposition_error(block, x1, x2) < 1e-5
    control = CReLULLBlock(8, 16, 2, norm_layer=norm_layer, looks_linear=False).train(norm_layer is nn.Identity)
    assert superposition_error(control, x1, x2) > 1e-2  # CReLU without LL is a rectifier net like any other


@pytest.mark.parametrize("norm", [True, False])
def test_the_network_is_exactly_one_linear_map_at_initialisation(norm: bool) -> None:
    torch.manual_seed(0)
    net = create_model("crelu_ll_net", depth=14, in_channels=1, num_classes=10, norm=norm).eval()
    # The matrix of the map, column by column: the network's output on each basis image.
    basis = torch.eye(64).reshape(64, 1, 8, 8)
    with torch.no_grad():
        matrix = net(basis).T  # (10, 64)
        x = torch.randn(16, 1, 8, 8)
        out = net(x)
    assert out.abs().max() > 1e-2  # not trivially zero
    assert torch.allclose(out, x.flatten(1) @ matrix.T, atol=1e-5)
    assert superposition_error(net, x, torch.randn(16, 1, 8, 8)) < 1e-5
    if not norm:  # nothing depends on the batch: linear in train mode too
        assert superposition_error(net.train(), x, torch.randn(16, 1, 8, 8)) < 1e-5


def test_training_makes_it_nonlinear() -> None:
    torch.manual_seed(0)
    net = create_model("crelu_ll_net", depth=8, in_channels=1, num_classes=10, norm=False)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        F.cross_entropy(net(x), y).backward()
        optimizer.step()
    weight = net.layer1[0].conv1.weight
    assert not torch.allclose(weight[:, 1:], -weight[:, :1])  # the halves are free parameters
    assert superposition_error(net, x, torch.randn(32, 1, 8, 8)) > 1e-4


def test_no_signal_goes_around_a_block() -> None:
    torch.manual_seed(0)
    net = create_model("crelu_ll_net", depth=14, norm=False).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert net(x).abs().max() > 0
        nn.init.zeros_(net.layer2[1].conv2.weight)  # a residual network would carry on through its shortcut
        assert torch.equal(net(x), torch.zeros(2, 10))


def test_layout_matches_the_cifar_resnet_of_the_same_depth() -> None:
    net, resnet = create_model("crelu_ll_net", depth=20), create_model("cifar_resnet", depth=20)
    for stage in (1, 2, 3):
        ours, theirs = getattr(net, f"layer{stage}"), getattr(resnet, f"layer{stage}")
        assert len(ours) == len(theirs) == 3
        assert ours[0].conv2.weight.shape[0] == theirs[0].conv2.out_channels
    assert isinstance(net.relu, nn.Identity) and torch.equal(net.fc.bias, torch.zeros(10))
    with pytest.raises(ValueError, match="depth must be 6n\\+2 .* got depth=12; try depth=8 or 14"):
        create_model("crelu_ll_net", depth=12)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        LLConv2d(4, 4, kernel_size=2)
