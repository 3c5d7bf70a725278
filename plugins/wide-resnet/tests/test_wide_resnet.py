"""Wide ResNet: the installed entry points, the contract, the paper's parameter counts, the layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnet_lightning import count_parameters, create_model, get_block, list_architectures, list_blocks
from resnet_lightning.models import PreActBlock
from resnet_lightning.testing import check_architecture, check_block
from wide_resnet import WideBasicBlock


def reference_parameter_count(depth: int, k: int, num_classes: int, in_channels: int = 3) -> int:
    """WRN-d-k counted layer by layer from the paper's Table 1 and the reference code."""
    n = (depth - 4) // 6
    total = in_channels * 16 * 9  # conv1, no bias, no BN after it
    channels = 16
    for width in (16 * k, 32 * k, 64 * k):
        for i in range(n):
            total += 2 * channels + 9 * channels * width + 2 * width + 9 * width * width  # BN conv BN conv
            if channels != width:
                total += channels * width  # 1x1 projection shortcut
            channels = width
    return total + 2 * channels + channels * num_classes + num_classes  # final BN, linear


def test_installed_entry_points_register_every_name() -> None:
    assert "wide_basic" in list_blocks() and get_block("wide_basic") is WideBasicBlock
    assert {"wide_resnet", "wrn16_8", "wrn28_10", "wrn40_4"} <= set(list_architectures())


def test_the_block_keeps_the_block_contract() -> None:
    check_block("wide_basic")
    check_block("wide_basic", dropout=0.3)


def test_the_architecture_keeps_the_architecture_contract() -> None:
    check_architecture("wide_resnet", depth=10, widen_factor=1)
    check_architecture("wide_resnet", depth=10, widen_factor=2, dropout=0.3, block="wide_basic")
    check_architecture("wide_resnet", depth=10, widen_factor=1, block="basic")  # a post-activation block keeps its stem BN


def test_wrn_28_10_has_the_reference_parameter_count() -> None:
    # 36,479,194 in the reference implementation at 10 classes (36.5M in the paper's Table 4).
    assert count_parameters(create_model("wrn28_10")) == 36_479_194 == reference_parameter_count(28, 10, 10)


@pytest.mark.parametrize(("arch", "depth", "k", "params"), [("wrn16_8", 16, 8, 10_961_370), ("wrn40_4", 40, 4, 8_949_210)])
def test_other_paper_models_have_their_parameter_counts(arch: str, depth: int, k: int, params: int) -> None:
    # The paper's Table 4: WRN-16-8 11.0M, WRN-40-4 8.9M.
    assert count_parameters(create_model(arch, num_classes=100)) == reference_parameter_count(depth, k, 100)
    assert count_parameters(create_model(arch)) == params


def test_layout_is_a_lone_stem_conv_then_three_wide_stages() -> None:
    model = create_model("wide_resnet", depth=16, widen_factor=4, num_classes=100)
    assert isinstance(model.bn1, nn.Identity) and isinstance(model.relu, nn.Identity)
    assert [len(getattr(model, f"layer{i}")) for i in (1, 2, 3)] == [2, 2, 2]
    assert [getattr(model, f"layer{i}")[0].conv2.out_channels for i in (1, 2, 3)] == [64, 128, 256]
    assert model.fc.in_features == 256
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    assert isinstance(create_model("wide_resnet", depth=10, block="basic").bn1, nn.BatchNorm2d)  # post-activation: stem BN kept
    with pytest.raises(ValueError, match="WRN depth must be 6n\\+4 .* got depth=20; try depth=16 or 22"):
        create_model("wide_resnet", depth=20)


def test_without_dropout_it_is_the_pre_activation_block() -> None:
    torch.manual_seed(0)
    wide, preact = WideBasicBlock(16, 32, 2), PreActBlock(16, 32, 2)
    preact.load_state_dict(wide.state_dict(), strict=True)  # the same layers under the same names
    x = torch.randn(2, 16, 8, 8)
    assert torch.allclose(wide(x), preact(x), atol=1e-6)


def test_dropout_acts_in_training_only_and_only_on_the_residual_branch() -> None:
    torch.manual_seed(0)
    block = WideBasicBlock(16, 16, dropout=0.5)
    x = torch.randn(2, 16, 8, 8)
    assert not torch.equal(block(x), block(x))  # train mode: a new mask each pass
    block.eval()
    assert torch.equal(block(x), block(x))
    block.train()
    nn.init.zeros_(block.conv2.weight)  # no residual branch: dropout has nothing left to act on
    assert torch.equal(block(x), x)
    with pytest.raises(ValueError, match="dropout must be in \\[0, 1\\) .* got 1.0"):
        WideBasicBlock(16, 16, dropout=1.0)
