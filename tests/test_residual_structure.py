"""The residual structure (branch/shortcut/merge) drives every analysis, for any block that states it.

The outside blocks come from ``tests/plugin_dists/rl-test-structure``, pip-installed for
real (``use_plugins`` in ``conftest.py``): their layers have none of the core's names
(no ``downsample``, no ``drop_path``), and one of them subclasses nothing of the core.
"""

from __future__ import annotations

import re
import warnings

import pytest
import torch

from resnet_lightning import create_model
from resnet_lightning.analysis import lesion_study, residual_ratios, weighted_depth
from resnet_lightning.analysis.lesion import deleted, replacements
from resnet_lightning.models import ResidualStructureWarning, residual_blocks
from resnet_lightning.testing import check_block


@pytest.fixture
def structure_net(use_plugins):
    use_plugins("rl-test-structure")

    def build(**kwargs):
        torch.manual_seed(0)
        return create_model("rl_structure_net", num_classes=4, in_channels=1, **kwargs)

    return build


def _strict():
    context = warnings.catch_warnings()
    context.__enter__()
    warnings.simplefilter("error", ResidualStructureWarning)  # no block may be skipped
    return context


@pytest.mark.parametrize("block", ["rl_body_skip", "rl_duck"])
def test_an_outside_block_gets_residual_ratios_and_a_lesion_curve(structure_net, block: str) -> None:
    net = structure_net(block=block).eval()
    x, labels = torch.randn(8, 1, 8, 8), torch.randint(0, 4, (8,))
    context = _strict()
    try:
        ratios = residual_ratios(net, x)
        result = lesion_study(net, [(x, labels)], label=block, max_removed=3, trials=2)
    finally:
        context.__exit__(None, None, None)
    assert sorted(ratios) == list(range(6)) and all(r > 0 for r in ratios.values())
    # Block 0 by hand, through the block's own layers (other names than the core's).
    first = residual_blocks(net)[0]
    with torch.no_grad():
        h = net.relu(net.bn1(net.conv1(x)))
        branch = first.body(h) if block == "rl_body_skip" else 0.5 * first.residual(h)
        shortcut = first.skip(h) if block == "rl_body_skip" else first.project(h)
    assert ratios[0] == pytest.approx((branch.norm() / shortcut.norm()).item(), rel=1e-4)
    assert result.removable == list(range(6)) and sorted(result.single) == list(range(6))
    assert [len(v) for v in result.random.values()] == [2, 2, 2]


def test_deleting_an_outside_block_merges_a_zero_branch(structure_net) -> None:
    net = structure_net().eval()
    x = torch.randn(4, 1, 8, 8)
    replace = replacements(net, x)
    seen = {}
    block = residual_blocks(net)[3]  # a stage's first block: a projection on the skip path
    handle = block.register_forward_pre_hook(lambda m, inp: seen.setdefault("x", inp[0]))
    with torch.no_grad():
        net(x)
        handle.remove()
        with deleted(net, [3], replace):
            out = replace[3](seen["x"])
        assert torch.allclose(out, torch.relu(block.skip(seen["x"])))  # merge(0, skip(x)) = relu(skip(x))


def test_an_outside_block_gets_stochastic_depth_from_the_base_class(structure_net) -> None:
    net = structure_net(drop_path_rate=0.5).train()
    block = residual_blocks(net)[-1]
    assert block.drop_path.p == pytest.approx(0.5)  # the last block: the full rate (Huang et al. 2016)
    x = torch.randn(64, 32, 2, 2)
    torch.manual_seed(1)
    out = block(x)
    with torch.no_grad():
        dropped = block.merge(torch.zeros_like(block.shortcut(x)), block.shortcut(x))
    same = torch.isclose(out, dropped, atol=1e-6).flatten(1).all(dim=1)
    assert 10 < int(same.sum()) < 54  # about half the samples lose their branch


def test_the_outside_blocks_pass_the_contract_checker_with_their_structure(use_plugins) -> None:
    use_plugins("rl-test-structure")
    context = _strict()
    try:
        check_block("rl_body_skip")
        check_block("rl_duck")
    finally:
        context.__exit__(None, None, None)


def test_a_block_without_the_structure_trains_and_each_analysis_warns_once_naming_it(use_plugins) -> None:
    use_plugins("rl-test-plugin")
    net = create_model("rl_test_net", num_classes=4, in_channels=1)  # ScaledBasicBlock: no branch/shortcut/merge
    x = torch.randn(4, 1, 8, 8)
    named = re.escape("skipping 2 of 2 blocks (rl_test_plugin.blocks.ScaledBasicBlock, block indices 0-1)")
    for analysis, run in [
        ("residual ratio", lambda: residual_ratios(net, x)),
        ("lesion study", lambda: replacements(net, x)),
        ("weighted depth", lambda: weighted_depth(net, (1, 8, 8))),
    ]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run()
        structure = [w for w in caught if issubclass(w.category, ResidualStructureWarning)]
        assert len(structure) == 1 and re.search(f"^{analysis}: {named}", str(structure[0].message)), structure
        assert result in ({}, 1 + 2 * 3 + 1)  # nothing measured or deleted; stem, 3 convs a block (shortcut too), fc
    out = net.train()(x)  # it still trains
    out.sum().backward()
