"""ImageNet ResNets: exact parameter counts, torchvision state dicts both ways, MACs.

All random init, nothing downloaded. Each of our models is built once for the
module (an ImageNet ResNet takes a second or two to build on a small CPU).
"""

from __future__ import annotations

import functools

import pytest
import torch
import torchvision
from torch import nn

from resnet_lightning import count_macs, count_parameters, create_model

# torchvision's reference models (He et al. 2015, Table 1), 1000 classes.
PARAMETERS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
GMACS_224 = {"resnet18": 1.814, "resnet34": 3.664, "resnet50": 4.089}  # torchvision's documented GFLOPS


@functools.cache
def ours(name: str) -> nn.Module:
    """Our model, 1000 classes. Tests may load weights into it, but nothing else."""
    torch.manual_seed(0)
    return create_model(name)


def scramble_(model: nn.Module, seed: int) -> None:
    """Random BatchNorm statistics and affine parameters, and a random head.

    Freshly initialised BNs are all ones and zeros, so a state dict that put one
    BN's tensors in another's place would go unnoticed; random ones do not.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform_(tensor: torch.Tensor, low: float, high: float) -> None:
        tensor.copy_(low + (high - low) * torch.rand(tensor.shape, generator=generator))

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                uniform_(m.weight, 0.5, 1.5)
                uniform_(m.bias, -0.2, 0.2)
                uniform_(m.running_mean, -0.2, 0.2)
                uniform_(m.running_var, 0.5, 1.5)
            elif isinstance(m, nn.Linear):
                uniform_(m.weight, -0.1, 0.1)
                uniform_(m.bias, -0.1, 0.1)


def assert_same_function(a: nn.Module, b: nn.Module) -> None:
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ya, yb = a.eval()(x), b.eval()(x)
    assert ya.shape == (2, 1000)
    assert torch.isfinite(ya).all()
    assert not torch.allclose(ya[0], ya[1]), "the two images should give different logits"
    torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", PARAMETERS)
def test_exact_parameter_count(name: str) -> None:
    assert count_parameters(ours(name)) == PARAMETERS[name]


@pytest.mark.parametrize("name", PARAMETERS)
def test_loads_a_torchvision_state_dict_and_computes_the_same_function(name: str) -> None:
    reference = getattr(torchvision.models, name)()  # random init, no weights= so nothing downloads
    scramble_(reference, seed=2)
    model = ours(name)
    model.load_state_dict(reference.state_dict(), strict=True)
    assert_same_function(model, reference)


@pytest.mark.parametrize("name", PARAMETERS)
def test_torchvision_loads_our_state_dict_and_computes_the_same_function(name: str) -> None:
    model = ours(name)
    scramble_(model, seed=3)
    with torch.device("meta"):  # no storage, no initialisation: every tensor comes from our state dict
        reference = getattr(torchvision.models, name)()
    reference.load_state_dict(model.state_dict(), strict=True, assign=True)
    assert not any(t.is_meta for t in reference.state_dict().values())
    assert_same_function(reference, model)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_parameters_and_buffers_come_in_torchvision_order(name: str) -> None:
    # An optimizer's state is kept by parameter position, not name: a block that registered its
    # downsample before its branch (ResidualBlock builds both) would hand a resumed momentum to the wrong tensors.
    with torch.device("meta"):
        reference = getattr(torchvision.models, name)()
    assert list(ours(name).state_dict()) == list(reference.state_dict())


@pytest.mark.parametrize("name", GMACS_224)
def test_macs_at_224_match_torchvision(name: str) -> None:
    model = ours(name).train()
    assert count_macs(model, (1, 3, 224, 224)) / 1e9 == pytest.approx(GMACS_224[name], rel=0.01)
    assert model.training, "count_macs must give the model back in the mode it found it"


def test_macs_scale_with_batch_and_reject_a_bad_shape() -> None:
    model = ours("resnet18")
    assert count_macs(model, (2, 3, 64, 64)) == 2 * count_macs(model, (1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"input_size must be a shape like \(1, 3, 224, 224\), got \(3, 0\)"):
        count_macs(model, (3, 0))
