"""Stochastic depth (Huang et al. 2016): linear decay of the drop rate, per-sample drops, exact eval."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_lightning import create_model
from resnet_lightning.models import BasicBlock


class RecordingBlock(nn.Module):
    """Keeps the contract and remembers the keyword arguments the network gave it."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, **kwargs: Any) -> None:
        super().__init__()
        self.kwargs = kwargs
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.parametrize(("arch", "options", "count"), [
    ("cifar_resnet", {"depth": 56}, 27),
    ("resnet50", {"widths": (8, 8, 8, 8)}, 16),
])
def test_rates_decay_linearly_to_the_last_block(arch: str, options: dict[str, Any], count: int) -> None:
    # Huang et al. 2016, Eq. 4: block l of L is dropped with probability l/L * p_L.
    model = create_model(arch, block=RecordingBlock, drop_path_rate=0.2, **options)
    rates = [b.kwargs["drop_path_rate"] for b in model.blocks()]
    assert rates == pytest.approx([0.2 * l / count for l in range(1, count + 1)])
    assert rates[-1] == 0.2


def test_builtin_blocks_use_the_rate_they_are_given() -> None:
    model = create_model("cifar_resnet", depth=20, drop_path_rate=0.45)
    assert [b.drop_path.p for b in model.blocks()] == pytest.approx([0.05 * l for l in range(1, 10)])


def test_training_drops_the_branch_of_some_samples() -> None:
    torch.manual_seed(0)
    block = BasicBlock(16, 16, drop_path_rate=0.5).train()
    x = torch.randn(64, 16, 5, 5)
    out = block(x)
    # A dropped sample's output is relu(0 + x); a kept one adds its (rescaled) branch.
    dropped = [torch.allclose(out[i], F.relu(x[i])) for i in range(len(x))]
    assert 10 <= sum(dropped) <= 54, f"{sum(dropped)} of 64 dropped at rate 0.5"


def test_eval_is_deterministic_and_equals_the_network_without_stochastic_depth() -> None:
    torch.manual_seed(0)
    stochastic = create_model("cifar_resnet", depth=20, drop_path_rate=0.5)
    x = torch.randn(8, 3, 16, 16)
    with torch.no_grad():
        first, second = stochastic.train()(x), stochastic(x)  # also gives BN non-trivial running statistics
    assert not torch.allclose(first, second), "training-mode passes should drop different branches"

    plain = create_model("cifar_resnet", depth=20, drop_path_rate=0.0)
    plain.load_state_dict(stochastic.state_dict(), strict=True)
    with torch.no_grad():
        out = stochastic.eval()(x)
        assert torch.equal(out, stochastic(x))
        assert torch.equal(out, plain.eval()(x))
