"""Backbones: ``features_only``, ``out_indices``, ``feature_info``, ``forward_features``, ``forward_head``, ``reset_classifier``."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from resnet_lightning import create_model, register_architecture
from resnet_lightning.models.features import FeatureExtractor, FeaturesError
from resnet_lightning.registry import unregister
from tests.test_export import DEPTH_PRESETS, EXPORT_CASES


def test_resnet50_feature_maps_equal_torchvisions(tmp_path) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.resnet50().eval()
    torch.save(reference.state_dict(), tmp_path / "resnet50.pth")
    ours = create_model("resnet50", weights=tmp_path / "resnet50.pth", features_only=True, out_indices=(0, 1, 2, 3, 4)).eval()
    nodes = {"relu": "stem", "layer1": "1", "layer2": "2", "layer3": "3", "layer4": "4"}
    theirs = create_feature_extractor(reference, return_nodes=nodes).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, found = list(theirs(x).values()), ours(x)
    assert len(found) == 5
    for mine, torchvisions in zip(found, expected):
        assert torch.equal(mine, torchvisions)
    assert ours.feature_info.channels() == [64, 256, 512, 1024, 2048]
    assert ours.feature_info.reduction() == [2, 4, 8, 16, 32]
    assert ours.feature_info.module_name() == ["relu", "layer1", "layer2", "layer3", "layer4"]


@pytest.mark.parametrize("arch", sorted(EXPORT_CASES))
def test_feature_info_says_what_every_architecture_returns(arch: str) -> None:
    model = create_model(arch, num_classes=3, **EXPORT_CASES[arch]).eval()
    backbone = create_model(arch, num_classes=3, features_only=True, **EXPORT_CASES[arch]).eval()
    loaded = backbone.model.load_state_dict(model.state_dict(), strict=False)
    assert not loaded.missing_keys and loaded.unexpected_keys == ["fc.weight", "fc.bias"]  # the backbone holds no head
    channels = 1 if arch == "mnist_resnet" else 3
    x = torch.randn(2, channels, 30, 30)
    with torch.no_grad():
        maps = backbone(x)
        features = model.forward_features(x)
        assert torch.equal(model.forward_head(features), model(x))
        assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)
    assert len(maps) == len(backbone.feature_info) == model.num_stages + 1
    for found, info in zip(maps, backbone.feature_info):  # (N, num_chs, ceil(H / reduction), ceil(W / reduction))
        assert tuple(found.shape) == (2, info["num_chs"], math.ceil(30 / info["reduction"]), math.ceil(30 / info["reduction"]))
    assert torch.equal(maps[-1], features)  # the last map is forward_features' (after a pre-activation net's final BN-ReLU)


@pytest.mark.parametrize("options", [dict(stem="deep", avg_down=True), dict(stem="deep", avg_down=True, blur_pool=True)])
def test_feature_info_holds_for_the_bag_of_tricks_options(options: dict) -> None:
    backbone = create_model("resnet50", widths=(8, 16, 32, 64), features_only=True, **options).eval()
    assert backbone.feature_info.reduction() == [2, 4, 8, 16, 32]  # BlurPool's subsampling counts as the stride it replaces
    with torch.no_grad():
        maps = backbone(torch.randn(1, 3, 30, 30))
    for found, info in zip(maps, backbone.feature_info):
        assert tuple(found.shape[1:]) == (info["num_chs"], math.ceil(30 / info["reduction"]), math.ceil(30 / info["reduction"]))


def test_a_backbone_holds_only_what_its_maps_need_and_all_of_it_trains() -> None:
    backbone = create_model("resnet18", features_only=True, out_indices=(1, 2), widths=(8, 16, 32, 64))
    names = [name for name, _ in backbone.named_parameters()]
    assert not any(name.startswith(("model.layer3", "model.layer4", "model.fc")) for name in names)
    maps = backbone(torch.randn(2, 3, 32, 32))
    assert [m.shape[1] for m in maps] == backbone.feature_info.channels() == [8, 16]
    sum(m.square().mean() for m in maps).backward()
    assert all(p.grad is not None for p in backbone.parameters())  # DDP's find_unused_parameters=False holds


def test_negative_out_indices_count_from_the_end() -> None:
    backbone = create_model("cifar_resnet", depth=8, features_only=True, out_indices=(-1,))
    assert backbone.out_indices == [3] and backbone.feature_info.reduction() == [4]


@pytest.mark.parametrize(
    ("out_indices", "expected"),
    [((1, 5), r"out_indices \(1, 5\) out of range for resnet18: it has 5 feature maps, 0..4 \(0: relu, 1: layer1, .*4: layer4\); "
               r"pass indices among them, e.g. out_indices=\(1, 2, 3, 4\)"),
     ((), r"out_indices \(\) out of range for resnet18"),
     (("1",), r"out_indices \('1',\) out of range")],
)
def test_out_indices_out_of_range_is_one_line_naming_them(out_indices, expected: str) -> None:
    with pytest.raises(FeaturesError, match=expected):
        create_model("resnet18", features_only=True, out_indices=out_indices, widths=(8, 8, 8, 8))


def test_out_indices_without_features_only_says_to_add_it() -> None:
    with pytest.raises(ValueError, match=r"out_indices=\(1, 2\) picks feature maps: pass features_only=True with it"):
        create_model("cifar_resnet", depth=8, out_indices=(1, 2))


def test_reset_classifier_gives_a_new_head_or_none() -> None:
    model = create_model("cifar_resnet", depth=8, num_classes=10)
    old = model.fc.weight.detach().clone()
    model.reset_classifier(4)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 4) and model.fc.weight.shape == (4, 64)
    assert not torch.equal(model.fc.weight[:4], old[:4])
    model.reset_classifier(0)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 64)  # pooled features
    with pytest.raises(ValueError, match=r"num_classes must be a whole number >= 0 \(0: no classifier\), got -1"):
        model.reset_classifier(-1)


@pytest.fixture
def registered() -> Iterator[list[str]]:
    """Architectures a test registers in this process, unregistered after it."""
    names: list[str] = []
    yield names
    for name in names:
        unregister("architecture", name)


class _Tiny(nn.Module):
    """A hand-written network (no ResNet) that offers feature maps through the two members of the contract."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 4, 3, stride=2, padding=1)
        self.stage = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, num_classes)
        self.feature_info = [{"num_chs": 4, "reduction": 2, "module": "stem"}, {"num_chs": 8, "reduction": 4, "module": "stage"}]

    def forward_intermediates(self, x: torch.Tensor, indices: list[int]) -> list[torch.Tensor]:
        stem = self.stem(x).relu()  # (N, 4, H/2, W/2)
        maps = [stem, self.stage(stem).relu()]  # (N, 8, H/4, W/4)
        return [maps[i] for i in indices]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_intermediates(x, [1])[0].mean((2, 3)))


def test_a_hand_written_architecture_following_the_contract_gets_features_only(registered) -> None:
    registered.append("rl_tiny_features")
    register_architecture("rl_tiny_features", override=True)(
        lambda *, num_classes=3, in_channels=3, block=None, **kwargs: _Tiny(num_classes, in_channels)
    )
    backbone = create_model("rl_tiny_features", features_only=True, out_indices=(1,))
    assert isinstance(backbone, FeatureExtractor) and backbone.feature_info.channels() == [8]
    assert backbone(torch.randn(2, 3, 16, 16))[0].shape == (2, 8, 4, 4)


def test_an_architecture_without_feature_maps_is_one_line_naming_it(registered) -> None:
    registered.append("rl_no_features")
    register_architecture("rl_no_features", override=True)(
        lambda *, num_classes=3, in_channels=3, block=None, **kwargs: nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
    )
    with pytest.raises(FeaturesError, match=r"architecture 'rl_no_features' \(Sequential\) offers no feature maps: .*docs/writing-a-plugin.md"):
        create_model("rl_no_features", features_only=True)


def test_depth_presets_have_the_feature_maps_of_their_family() -> None:
    for preset, family in DEPTH_PRESETS.items():
        kwargs = EXPORT_CASES[family]
        assert create_model(preset, **kwargs).feature_info == create_model(family, **kwargs).feature_info
