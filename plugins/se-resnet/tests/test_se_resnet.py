"""SE-ResNet: the installed entry points, the contract, the paper's parameter count, where SE sits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnet_lightning import count_parameters, create_model, get_block, list_architectures, list_blocks, list_plugins
from resnet_lightning.models import BasicBlock
from resnet_lightning.testing import check_architecture, check_block
from se_resnet import SEBasicBlock, SEBottleneck


def test_installed_entry_points_register_every_name() -> None:
    assert {"se_basic", "se_bottleneck"} <= set(list_blocks())
    assert {"se_resnet18", "se_resnet34", "se_resnet50"} <= set(list_architectures())
    assert get_block("se_basic") is SEBasicBlock and get_block("se_bottleneck") is SEBottleneck
    ours = {"se_basic", "se_bottleneck", "se_resnet18", "se_resnet34", "se_resnet50"}  # not every se_* installed
    assert {s.distribution for s in list_plugins() if s.name in ours} == {"se-resnet"}


@pytest.mark.parametrize("block", ["se_basic", "se_bottleneck"])
def test_blocks_keep_the_block_contract(block: str) -> None:
    check_block(block)
    check_block(block, reduction=4)


@pytest.mark.parametrize("arch", ["se_resnet18", "se_resnet50"])
def test_architectures_keep_the_architecture_contract(arch: str) -> None:
    check_architecture(arch, widths=(16, 16, 32, 32))
    check_architecture(arch, widths=(16, 16, 32, 32), block="bottleneck")


@pytest.mark.parametrize(
    ("arch", "resnet", "params"),
    [
        ("se_resnet18", "resnet18", 11_778_592),
        ("se_resnet34", "resnet34", 21_958_868),
        # Hu et al. 2018 report 28.1M for SE-ResNet-50 (and 25.6M for ResNet-50).
        ("se_resnet50", "resnet50", 28_088_024),
    ],
)
def test_parameter_counts_are_resnet_plus_excitation(arch: str, resnet: str, params: int) -> None:
    model = create_model(arch)
    assert count_parameters(model) == params
    # torchvision's ResNet plus, per block of C output channels, the two 1x1
    # "FC" layers of the excitation: C*(C/16) weights each, C/16 + C biases.
    extra = sum(2 * c * (c // 16) + c // 16 + c for c in (b.se.fc2.out_channels for b in model.blocks()))
    assert params == count_parameters(create_model(resnet)) + extra


def test_se_rescales_the_residual_branch_before_the_addition() -> None:
    torch.manual_seed(0)
    se_block, plain = SEBasicBlock(16, 16).eval(), BasicBlock(16, 16).eval()
    missing, unexpected = plain.load_state_dict(se_block.state_dict(), strict=False)
    assert not missing and all(k.startswith("se.") for k in unexpected)
    x = torch.randn(2, 16, 5, 5)
    with torch.no_grad():
        nn.init.zeros_(se_block.se.fc2.weight)
        nn.init.constant_(se_block.se.fc2.bias, 30.0)  # every gate open (sigmoid(30) = 1)
        assert torch.allclose(se_block(x), plain(x), atol=1e-6)
        nn.init.constant_(se_block.se.fc2.bias, -30.0)  # every gate shut: only the shortcut is left
        assert torch.allclose(se_block(x), torch.relu(x), atol=1e-6)


def test_the_gate_depends_on_the_input() -> None:
    torch.manual_seed(0)
    block = SEBottleneck(64, 64).eval()
    gates = []
    block.se.scale_activation.register_forward_hook(lambda module, args, out: gates.append(out))
    with torch.no_grad():
        block(torch.randn(2, 64, 4, 4))
    (gate,) = gates
    assert gate.shape == (2, 64, 1, 1)  # one gate per sample and channel
    assert ((gate > 0) & (gate < 1)).all() and not torch.allclose(gate[0], gate[1])


def test_reduction_is_checked_and_reaches_every_block() -> None:
    model = create_model("se_resnet18", reduction=8)
    assert {b.se.fc1.out_channels * 8 for b in model.blocks()} == {64, 128, 256, 512}
    with pytest.raises(ValueError, match="reduction must be a positive integer .* got 0"):
        SEBasicBlock(16, 16, reduction=0)
