"""ResNeXt: the installed entry points, the contract, torchvision's parameter counts and weights."""

from __future__ import annotations

import pytest
import torch
import torchvision

from resnet_lightning import count_parameters, create_model, get_block, list_architectures, list_blocks
from resnet_lightning.testing import check_architecture, check_block
from resnext import ResNeXtBottleneck


def test_installed_entry_points_register_every_name() -> None:
    assert "resnext_bottleneck" in list_blocks() and get_block("resnext_bottleneck") is ResNeXtBottleneck
    assert {"resnext50_32x4d", "resnext101_32x8d"} <= set(list_architectures())


def test_the_block_keeps_the_block_contract() -> None:
    check_block("resnext_bottleneck")
    check_block("resnext_bottleneck", cardinality=4, base_width=16)


def test_the_architecture_keeps_the_architecture_contract() -> None:
    check_architecture("resnext50_32x4d", widths=(16, 16, 32, 32))
    check_architecture("resnext50_32x4d", widths=(16, 16, 32, 32), cardinality=8, block="resnext_bottleneck")


def test_resnext50_is_torchvisions_resnext50_weight_for_weight() -> None:
    ours, theirs = create_model("resnext50_32x4d").eval(), torchvision.models.resnext50_32x4d().eval()
    assert count_parameters(ours) == count_parameters(theirs) == 25_028_904
    ours.load_state_dict(theirs.state_dict(), strict=True)  # torchvision's names, torchvision's shapes
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)


def test_resnext101_32x8d_has_torchvisions_parameter_count() -> None:
    assert count_parameters(create_model("resnext101_32x8d")) == 88_791_336  # torchvision's documented count


def test_the_3x3_convolution_is_grouped_by_cardinality() -> None:
    model = create_model("resnext50_32x4d", num_classes=10)
    # 32 paths of 4 channels in the first stage, twice as wide in each later one.
    assert [(getattr(model, f"layer{i}")[0].conv2.groups, getattr(model, f"layer{i}")[0].conv2.in_channels) for i in (1, 2, 3, 4)] == [
        (32, 128), (32, 256), (32, 512), (32, 1024)
    ]


def test_bad_options_name_the_fix() -> None:
    with pytest.raises(TypeError, match="takes cardinality=..., not groups=8"):
        ResNeXtBottleneck(64, 256, groups=8)
    with pytest.raises(ValueError, match="less than one channel per path .* use out_channels >= 64"):
        ResNeXtBottleneck(16, 32)
