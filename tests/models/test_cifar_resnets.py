"""CIFAR ResNets and plain nets (He et al. 2015, Sec. 4.2) and the seed slides' MNIST ResNet."""

from __future__ import annotations

import pytest
import torch

from resnet_lightning import count_parameters, create_model
from resnet_lightning.models import PlainBlock, ZeroPadShortcut

# He et al. 2015, Table 6, at 10 classes.
CIFAR_PARAMETERS = {
    20: 269_722,
    32: 464_154,
    44: 658_586,
    56: 853_018,
    110: 1_727_962,
    1202: 19_421_274,
}


@pytest.mark.parametrize("depth", CIFAR_PARAMETERS)
def test_cifar_resnet_parameter_count_by_depth_and_by_name(depth: int) -> None:
    by_depth = create_model("cifar_resnet", depth=depth)
    by_name = create_model(f"cifar_resnet{depth}")
    assert count_parameters(by_depth) == count_parameters(by_name) == CIFAR_PARAMETERS[depth]
    n = (depth - 2) // 6
    assert [len(by_name.layer1), len(by_name.layer2), len(by_name.layer3)] == [n, n, n]
    # Option A where the shape changes (first block of stages 2 and 3), identity elsewhere.
    pads = [m for m in by_name.modules() if isinstance(m, ZeroPadShortcut)]
    assert len(pads) == 2 and by_name.layer2[0].downsample is pads[0]


@pytest.mark.parametrize("depth", CIFAR_PARAMETERS)
def test_cifar_plain_has_the_same_parameters_because_option_a_shortcuts_have_none(depth: int) -> None:
    by_depth = create_model("cifar_plain", depth=depth)
    by_name = create_model(f"cifar_plain{depth}")
    assert count_parameters(by_depth) == count_parameters(by_name) == CIFAR_PARAMETERS[depth]
    assert all(isinstance(b, PlainBlock) and b.downsample is None for b in by_name.blocks())
    assert len(list(by_name.blocks())) == (depth - 2) // 2


def test_named_variants_keep_user_arguments() -> None:
    model = create_model("cifar_resnet20", num_classes=100, shortcut="B")
    assert model.fc.out_features == 100
    assert not any(isinstance(m, ZeroPadShortcut) for m in model.modules())
    assert count_parameters(model) > CIFAR_PARAMETERS[20]  # projections and a larger head


def test_cifar_depth_must_fit_the_block() -> None:
    with pytest.raises(ValueError, match=r"depth=21 is not 6n\+2 for block 'basic'.*try depth=20"):
        create_model("cifar_resnet", depth=21)
    with pytest.raises(ValueError, match=r"depth=26 is not 9n\+2 for block 'bottleneck'.*try depth=20"):
        create_model("cifar_resnet", depth=26, block="bottleneck")  # 6n+2, but bottlenecks have 3 layers


def test_cifar_resnet_forward_on_cifar_sized_images() -> None:
    model = create_model("cifar_resnet20").eval()
    features = model.forward_features(torch.randn(2, 3, 32, 32))
    assert features.shape == (2, 64, 8, 8)  # 32x32 -> 16x16 -> 8x8 maps, widths 16/32/64
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_mnist_resnet_defaults() -> None:
    model = create_model("mnist_resnet")
    assert count_parameters(model) == 117_802
    assert (model.conv1.kernel_size, model.conv1.in_channels, model.conv1.out_channels) == ((1, 1), 1, 16)
    assert model.conv1.bias is not None
    blocks = list(model.blocks())
    assert len(blocks) == 25 and all(b.conv1.bias is not None and b.conv2.bias is not None for b in blocks)
    assert model.eval()(torch.randn(2, 1, 28, 28)).shape == (2, 10)
