"""Every built-in block against the block contract, its shortcuts, zero-init and the highway gate."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_lightning import create_model, get_block, list_blocks
from resnet_lightning.models import BasicBlock, Bottleneck, HighwayBlock, PlainBlock, ZeroPadShortcut

BUILTIN_BLOCKS = ["basic", "bottleneck", "preact", "preact_bottleneck", "plain", "highway"]
RESIDUAL_BLOCKS = [b for b in BUILTIN_BLOCKS if b != "plain"]


def test_every_builtin_block_is_registered() -> None:
    assert set(BUILTIN_BLOCKS) <= set(list_blocks())


@pytest.mark.parametrize("channels", [(16, 16), (16, 32)], ids=["16to16", "16to32"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
@pytest.mark.parametrize("name", BUILTIN_BLOCKS)
def test_block_contract_forward_and_backward(name: str, shortcut: str, stride: int, channels: tuple[int, int]) -> None:
    torch.manual_seed(0)
    in_channels, out_channels = channels
    block = get_block(name)(in_channels, out_channels, stride, norm_layer=nn.BatchNorm2d, drop_path_rate=0.0, shortcut=shortcut)
    x = torch.randn(3, in_channels, 7, 7, requires_grad=True)  # odd size: output must be ceil(7 / stride)
    out = block(x)
    side = math.ceil(7 / stride)
    assert out.shape == (3, out_channels, side, side)
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for parameter_name, parameter in block.named_parameters():
        assert parameter.grad is not None, f"{name}: no gradient reaches {parameter_name}"
        assert torch.isfinite(parameter.grad).all(), f"{name}: non-finite gradient in {parameter_name}"


@pytest.mark.parametrize("name", RESIDUAL_BLOCKS)
def test_shortcut_a_cannot_reduce_channels(name: str) -> None:
    with pytest.raises(ValueError, match=r"shortcut 'A' pads channels with zeros and cannot reduce them \(32 -> 16\); use shortcut='B' or 'C'"):
        get_block(name)(32, 16, 1, shortcut="A")


@pytest.mark.parametrize("name", RESIDUAL_BLOCKS)
def test_unknown_shortcut_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"unknown shortcut 'D'; expected one of \['A', 'B', 'C'\]"):
        get_block(name)(16, 32, 2, shortcut="D")


def parameters(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", RESIDUAL_BLOCKS)
def test_shortcut_options(name: str) -> None:
    cls = get_block(name)
    # Same shape: A and B are the identity, C projects anyway (He et al. 2015, Sec. 4.1).
    assert cls(16, 16, 1, shortcut="A").downsample is None
    assert cls(16, 16, 1, shortcut="B").downsample is None
    assert parameters(cls(16, 16, 1, shortcut="C").downsample) >= 16 * 16
    # Shape change: A pads for free, B and C project.
    assert isinstance(cls(16, 32, 2, shortcut="A").downsample, ZeroPadShortcut)
    assert parameters(cls(16, 32, 2, shortcut="A").downsample) == 0
    assert parameters(cls(16, 32, 2, shortcut="B").downsample) >= 16 * 32
    assert parameters(cls(16, 32, 2, shortcut="C").downsample) >= 16 * 32


def test_zero_pad_shortcut_subsamples_and_pads_with_zeros() -> None:
    x = torch.randn(2, 16, 7, 7)
    out = ZeroPadShortcut(16, 32, 2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert torch.equal(out[:, 16:], torch.zeros(2, 16, 4, 4))


@pytest.mark.parametrize("channels", [(16, 32), (32, 16)])
def test_plain_block_ignores_the_shortcut(channels: tuple[int, int]) -> None:
    torch.manual_seed(0)
    blocks = [PlainBlock(*channels, 2, shortcut=s) for s in "ABC"]  # 32 -> 16 with "A" is fine: nothing to pad
    assert all(b.downsample is None for b in blocks)
    assert len({parameters(b) for b in blocks}) == 1
    for b in blocks[1:]:
        b.load_state_dict(blocks[0].state_dict(), strict=True)
    x = torch.randn(2, channels[0], 7, 7)
    outputs = [b.eval()(x) for b in blocks]
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])


def without_branch(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What a built-in block computes when its residual branch is zero."""
    if isinstance(block, HighwayBlock):
        carry = x if block.downsample is None else block.downsample(x)
        return (1 - torch.sigmoid(block.gate(x))) * carry  # y = T*0 + (1-T)*x
    if getattr(block, "preactivation", False):  # x + F(x), the shortcut sees the pre-activated input
        return x if block.downsample is None else block.downsample(F.relu(block.bn1(x)))
    return F.relu(x if block.downsample is None else block.downsample(x))  # relu(F(x) + x)


def block_inputs_and_outputs(model: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    seen = []
    handles = [b.register_forward_hook(lambda m, i, o: seen.append((m, i[0].clone(), o.clone()))) for b in model.blocks()]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return seen


@pytest.mark.parametrize("shortcut", ["A", "C"])
@pytest.mark.parametrize("name", RESIDUAL_BLOCKS)
def test_zero_init_residual_makes_every_block_start_without_its_branch(name: str, shortcut: str) -> None:
    torch.manual_seed(0)
    model = create_model("cifar_resnet", depth=20, block=name, shortcut=shortcut, zero_init_residual=True).eval()
    seen = block_inputs_and_outputs(model, torch.randn(2, 3, 16, 16))
    assert len(seen) == len(list(model.blocks()))
    for block, x, out in seen:
        torch.testing.assert_close(out, without_branch(block, x), rtol=0, atol=1e-6)
        if isinstance(block, (BasicBlock, Bottleneck)) and block.downsample is None:
            assert torch.equal(out, x)  # the input is post-ReLU: exactly the identity

    torch.manual_seed(0)
    control = create_model("cifar_resnet", depth=20, block=name, shortcut=shortcut).eval()
    _, x, out = block_inputs_and_outputs(control, torch.randn(2, 3, 16, 16))[0]
    assert not torch.allclose(out, without_branch(control.layer1[0], x), atol=1e-3), "the check above must be able to fail"


def test_plain_block_has_no_zero_init_and_is_left_alone() -> None:
    assert PlainBlock.zero_init_last is None  # zeroing its last BN would cut the signal
    model = create_model("cifar_plain20", zero_init_residual=True)
    gammas = [m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(g, torch.ones_like(g)) for g in gammas)
    assert model.eval()(torch.randn(2, 3, 16, 16)).abs().sum() > 0


@pytest.mark.parametrize("zero_init_residual", [False, True])
def test_highway_gate_bias_survives_the_network_init(zero_init_residual: bool) -> None:
    # Srivastava et al. 2015: a negative gate bias makes each layer start by carrying its input.
    model = create_model("cifar_resnet", depth=20, block="highway", zero_init_residual=zero_init_residual)
    gates = [b.gate.bias for b in model.blocks()]
    assert len(gates) == 9 and all(torch.equal(g, torch.full_like(g, -2.0)) for g in gates)
    custom = create_model("cifar_resnet", depth=20, block="highway", block_kwargs={"gate_bias": -3.0})
    assert all(torch.equal(b.gate.bias, torch.full_like(b.gate.bias, -3.0)) for b in custom.blocks())
    assert all(b.gate.weight.abs().sum() > 0 for b in model.blocks())  # the weights are still initialised


@pytest.mark.parametrize("name", BUILTIN_BLOCKS)
def test_forward_runs_each_norm_once_and_equals_merge_of_branch_and_shortcut(name: str) -> None:
    # branch(x) and shortcut(x) may share layers (pre-activation's bn1, the highway gate);
    # forward must still run each once: a second BN call in training would update its
    # running statistics twice per step.
    torch.manual_seed(0)
    block = get_block(name)(16, 32, 2, shortcut="B").train()
    block(torch.randn(4, 16, 7, 7))
    counts = {n: int(m.num_batches_tracked) for n, m in block.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert counts and set(counts.values()) == {1}, counts
    block.eval()
    x = torch.randn(4, 16, 7, 7)
    with torch.no_grad():
        assert torch.allclose(block(x), block.merge(block.branch(x), block.shortcut(x)), atol=1e-6)
