"""``resnet_stages``: depth, width and block chosen per stage, plugin blocks as built-ins."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnet_lightning import create_model
from resnet_lightning.errors import UserError
from resnet_lightning.models.blocks import BasicBlock, HighwayBlock, PreActBlock
from resnet_lightning.models.resnet import ResNet
from resnet_lightning.registry import get_block


def stage_types(model: ResNet) -> list[set[type]]:
    return [{type(b) for b in getattr(model, f"layer{s}")} for s in range(1, model.num_stages + 1)]


def test_each_stage_is_built_from_its_own_block_a_plugin_block_included() -> None:
    se_basic = get_block("se_basic")  # plugins/se-resnet, found through its entry point
    model = create_model(
        "resnet_stages", block="preact", layers=[1, 2, 1], widths=[8, 16, 24],
        blocks=["se_basic", "highway", None], in_channels=1, num_classes=10,
    )
    assert stage_types(model) == [{se_basic}, {HighwayBlock}, {PreActBlock}]  # None: the module's block
    assert [len(getattr(model, f"layer{s}")) for s in (1, 2, 3)] == [1, 2, 1]
    assert [shape[1] for shape in model.block_shapes] == [8, 16, 16, 24]
    assert model.block_name == "se_basic/highway/preact"
    assert isinstance(model.final_norm, nn.Sequential)  # the last stage is pre-activation: BN-ReLU before the pool

    # It trains: one SGD step on a batch of digits-sized images lowers nothing to NaN and moves every stage.
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))  # (N, C, H, W)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    for stage in ("layer1", "layer2", "layer3"):
        assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n.startswith(stage)), stage


def test_a_stage_of_bottlenecks_widens_its_output_and_the_next_stage_takes_it() -> None:
    model = create_model("resnet_stages", layers=[1, 1], widths=[8, 16], blocks=["bottleneck", "basic"], in_channels=1)
    assert model.block_shapes == [(8, 32, 1), (32, 16, 2)]  # 8 * expansion 4, then back to 16
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_one_block_for_every_stage_builds_the_same_network_as_a_list_of_it() -> None:
    torch.manual_seed(0)
    one = ResNet(BasicBlock, [2, 2, 2, 2], block_name="basic")
    torch.manual_seed(0)
    listed = ResNet([BasicBlock] * 4, [2, 2, 2, 2], block_name="basic")
    assert one.block_name == listed.block_name == "basic"
    for (name, a), (other, b) in zip(one.state_dict().items(), listed.state_dict().items(), strict=True):
        assert name == other and torch.equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layers": [1, 1, 1], "widths": [8, 16, 32, 64]}, "layers 3 long, widths 4 long"),
        ({"layers": [1, 1], "widths": [8, 16], "blocks": ["basic"]}, "blocks 1 long"),
    ],
)
def test_per_stage_lists_of_different_lengths_are_refused_naming_them(kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        create_model("resnet_stages", **kwargs)


def test_an_unknown_block_in_a_stage_names_the_known_ones() -> None:
    with pytest.raises(UserError, match="se_basik.*se_basic"):
        create_model("resnet_stages", layers=[1, 1], widths=[8, 16], blocks=["basic", "se_basik"])
