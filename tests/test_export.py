"""Every architecture, built-in and example plugin, exports to ONNX and runs there as it does eagerly."""

from __future__ import annotations

import pytest
import torch

from resnet_lightning import create_model
from resnet_lightning.export import export, read_metadata
from resnet_lightning.testing import PluginContractError, check_export
from tests.project_plugins import project_entries

SMALL = dict(widths=(8, 16, 32, 64))  # ImageNet layouts at a fraction of the width: the same graph, faster
# One small instance of every architecture (fixed depths as they are; variable ones shallow).
EXPORT_CASES = {
    "resnet18": SMALL, "resnet34": SMALL, "resnet50": SMALL, "resnet101": SMALL, "resnet152": SMALL,
    "cifar_resnet": dict(depth=8), "cifar_plain": dict(depth=8), "preact_resnet": dict(depth=11),
    "mnist_resnet": dict(num_blocks=2),
    "resnet_stages": dict(layers=[1, 2, 1], widths=[8, 16, 32], blocks=["basic", "preact", "highway"]),
    # plugins/
    "se_resnet18": dict(SMALL, reduction=4), "se_resnet34": dict(SMALL, reduction=4), "se_resnet50": dict(SMALL, reduction=4),
    "resnext50_32x4d": dict(cardinality=4, base_width=4), "resnext101_32x8d": dict(cardinality=4, base_width=4),
    "wide_resnet": dict(depth=10, widen_factor=1), "crelu_ll_net": dict(depth=8),
}
# Depth presets of a family above: the same builder with another default depth.
DEPTH_PRESETS = {
    **{f"cifar_resnet{d}": "cifar_resnet" for d in (20, 32, 44, 56, 110, 1202)},
    **{f"cifar_plain{d}": "cifar_plain" for d in (20, 32, 44, 56, 110, 1202)},
    **{name: "wide_resnet" for name in ("wrn16_8", "wrn28_10", "wrn40_4")},
}


def test_every_installed_architecture_is_covered() -> None:
    """A new architecture (here or in plugins/) must be added to EXPORT_CASES or DEPTH_PRESETS.

    The project's own: a user's plugin installed beside them is not this project's to cover.
    """
    assert set(project_entries("architecture")) <= set(EXPORT_CASES) | set(DEPTH_PRESETS)
    for preset, family in DEPTH_PRESETS.items():  # a preset is its family at another depth, nothing more
        kwargs = EXPORT_CASES[family]
        preset_model, family_model = create_model(preset, **kwargs), create_model(family, **kwargs)
        assert [(k, v.shape) for k, v in preset_model.state_dict().items()] == [
            (k, v.shape) for k, v in family_model.state_dict().items()
        ]


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(EXPORT_CASES))
def test_onnx_export_matches_eager_at_batch_1_and_4(arch: str) -> None:
    # Raises PluginContractError when a logit differs by more than 1e-4 (relative to the largest, if above 1).
    difference = check_export(arch, input_size=32, num_classes=3, tolerance=1e-4, **EXPORT_CASES[arch])
    print(f"{arch}: max abs diff {difference:.2e}")


def test_pt2_export_with_dynamic_batch_and_metadata(tmp_path) -> None:
    model = create_model("cifar_resnet", depth=8, num_classes=3).eval()
    metadata = {"class_names": ["cat", "dog", "eel"], "mean": [0.5] * 3, "std": [0.25] * 3, "input_shape": [3, 16, 16]}
    difference, scale = export(model, tmp_path / "m.pt2", "pt2", (3, 16, 16), metadata)
    assert difference == 0.0 and scale > 0
    assert read_metadata(tmp_path / "m.pt2") == metadata
    program = torch.export.load(str(tmp_path / "m.pt2")).module()
    x = torch.randn(7, 3, 16, 16)  # a batch size never seen while exporting
    torch.testing.assert_close(program(x), model(x))


def test_a_network_that_does_not_export_fails_the_check_naming_it() -> None:
    def branchy(*, num_classes: int = 3, in_channels: int = 3, block=None, **kwargs) -> torch.nn.Module:
        class Branchy(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.fc = torch.nn.Linear(in_channels, num_classes)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                pooled = x.mean((2, 3))  # (N, C)
                if pooled.sum() > 0:  # data-dependent Python control flow: torch.export cannot trace it
                    return self.fc(pooled)
                return -self.fc(pooled)

        return Branchy()

    expected = r"architecture .*branchy.* does not export to onnx \(GuardOnDataDependentSymNode: .*no Python branches"
    with pytest.raises(PluginContractError, match=expected):
        check_export(branchy, input_size=8)
