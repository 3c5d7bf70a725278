"""The plugin contract checker: the real built-ins pass, each kind of broken plugin fails by name."""

from __future__ import annotations

import re
import warnings
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_lightning import create_model, list_plugins
from resnet_lightning.models import BasicBlock, ResNet, make_shortcut
from resnet_lightning.testing import PluginContractError, check_architecture, check_block

BUILTIN_BLOCKS = [s.name for s in list_plugins("block") if s.distribution == "resnet-lightning"]


def test_the_builtin_blocks_are_found_through_their_entry_points() -> None:
    assert {"basic", "bottleneck", "preact", "preact_bottleneck", "plain", "highway"} <= set(BUILTIN_BLOCKS)


@pytest.mark.parametrize("name", BUILTIN_BLOCKS)
def test_every_builtin_block_passes(name: str) -> None:
    check_block(name)


def test_a_block_class_and_its_options_pass() -> None:
    check_block(BasicBlock, kernel_size=5, bias=True)


@pytest.mark.parametrize(
    ("arch", "kwargs"),
    [
        ("resnet18", dict(widths=(8, 16, 32, 64))),
        ("resnet50", dict(widths=(16, 16, 16, 16), block="preact_bottleneck")),
        ("cifar_resnet", dict(depth=8, block="highway")),
        ("cifar_plain", dict(depth=8)),
        ("preact_resnet", dict(depth=11)),
        ("mnist_resnet", dict(num_blocks=2)),
    ],
)
def test_builtin_architectures_pass(arch: str, kwargs: dict[str, Any]) -> None:
    check_architecture(arch, **kwargs)


def test_the_callers_random_state_is_left_alone() -> None:
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    check_block("basic")
    assert torch.equal(torch.get_rng_state(), state)


def test_contract_errors_are_assertion_errors() -> None:
    assert issubclass(PluginContractError, AssertionError)


# --- broken blocks, each defined here and each failing for its own reason --------------


class _Branch(nn.Module):
    """A correct minimal block; the broken ones below change one thing each."""

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, shortcut: str = "B", **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.downsample = make_shortcut(shortcut, in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(self.bn(self.conv(x)) + identity)


class IgnoresStride(_Branch):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, 1, **kwargs)


class FloorsStride(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Pooling by the stride rounds 7 down to 3: floor(H/stride), not ceil(H/stride).
        return F.avg_pool2d(self.conv(x), self.stride)


class KeepsInChannels(_Branch):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, **kwargs: Any) -> None:
        super().__init__(in_channels, in_channels, stride, **kwargs)


class NoKwargs(_Branch):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, stride)


class PassesKwargsOn(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1, **kwargs)  # rejects norm_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class RejectsForeignOptions(_Branch):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, norm_layer=None, drop_path_rate=0.0, shortcut="B", **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"unexpected options {sorted(kwargs)}")
        super().__init__(in_channels, out_channels, stride, shortcut=shortcut)


class RejectsBias(_Branch):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, bias: bool = False, **kwargs: Any) -> None:
        if bias:  # fine alone, but mnist_resnet builds its blocks with bias=True
            raise ValueError("this block has no bias")
        super().__init__(in_channels, out_channels, stride, **kwargs)


class BadExpansion(_Branch):
    expansion = 0


class UnusedParameter(_Branch):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, stride, **kwargs)
        self.spare = nn.Conv2d(out_channels, out_channels, 1)


class RandomInEval(_Branch):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(super().forward(x), 0.5, training=True)


class ModifiesItsInput(_Branch):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.relu(x, inplace=True))  # the shortcut then sees relu(x), not x


class CountsInEval(_Branch):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, stride, **kwargs)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return super().forward(x)


class ZeroInitDoesNothing(BasicBlock):
    def zero_init_last(self) -> None:
        pass


class ZeroInitHitsTheShortcut(BasicBlock):
    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)
        if self.downsample is not None:
            nn.init.zeros_(self.downsample[1].weight)  # the projection's BN: cuts the identity path too


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (IgnoresStride, "stride=2, norm_layer=BatchNorm2d, drop_path_rate=0.0, shortcut='A')) maps [2, 16, 7, 7] to [2, 32, 7, 7] in train mode; expected [2, 32, 4, 4]"),
        (FloorsStride, "maps [2, 16, 7, 7] to [2, 32, 3, 3] in train mode; expected [2, 32, 4, 4]"),
        (KeepsInChannels, "KeepsInChannels(16, 32, stride=1, norm_layer=BatchNorm2d, drop_path_rate=0.0, shortcut='A')) maps [2, 16, 7, 7] to [2, 16, 7, 7] in train mode; expected [2, 32, 7, 7]"),
        (NoKwargs, "takes no **kwargs"),
        (PassesKwargsOn, "unexpected keyword argument 'norm_layer'; every block must accept norm_layer, drop_path_rate, shortcut"),
        (RejectsForeignOptions, "option_for_another_block=True): TypeError: unexpected options ['option_for_another_block']; every block must accept"),
        (RejectsBias, "inside architecture 'mnist_resnet' (num_blocks=2, channels=16) failed to build: ValueError: this block has no bias"),
        (BadExpansion, "has expansion=0; expected a positive int"),
        (UnusedParameter, "parameter 'spare.weight' received no gradient"),
        (RandomInEval, "is not deterministic in eval mode"),
        (ModifiesItsInput, "modified its input in place in train mode"),
        (CountsInEval, "a forward pass in eval mode changed ['calls']"),
        (ZeroInitDoesNothing, "after zero_init_last() branch(x) is not zero"),
        (ZeroInitHitsTheShortcut, "stride=2, shortcut='B', drop_path_rate=0.0)): zero_init_last() changed shortcut(x)"),
    ],
)
def test_a_broken_block_fails_naming_the_block_and_the_fault(block: type, message: str) -> None:
    with pytest.raises(PluginContractError, match=re.escape(message)) as info:
        check_block(block)
    assert f"block '{block.__module__}.{block.__qualname__}'" in str(info.value)


class KeepsAPlainTensor(_Branch):
    """Keeps a tensor outside its parameters and buffers: it cannot run on the meta device, but it works."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, stride, **kwargs)
        self.scale = torch.ones(1, out_channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.scale


@pytest.mark.parametrize("meta", [False, True])
def test_the_build_time_shape_check_says_the_same_on_either_device(meta: bool) -> None:
    from resnet_lightning.models import BlockContractError
    from resnet_lightning.testing import check_block_shape

    expected = "block 'x' breaks the block contract: with in_channels=16, out_channels=32, stride=2 it must map [2, 16, 7, 7] to [2, 32, 4, 4]"
    with pytest.raises(BlockContractError, match=re.escape(expected)):
        check_block_shape(IgnoresStride(16, 32, 2), "x", 16, 32, 2, meta=meta)
    with pytest.raises(BlockContractError, match=r"block 'x' failed on an input of shape \[2, 15, 7, 7\] .*RuntimeError"):
        check_block_shape(_Branch(16, 32, 2), "x", 15, 32, 2, meta=meta)
    check_block_shape(KeepsAPlainTensor(16, 32, 2), "x", 16, 32, 2, meta=meta)  # where meta cannot run, the real run decides
    check_block_shape(BasicBlock(16, 32, 2), "x", 16, 32, 2, meta=meta)


# --- broken architectures ------------------------------------------------------------


def no_in_channels(*, num_classes: int = 10, block: Any = None) -> nn.Module:
    return ResNet(BasicBlock, [1], widths=(8,), stem="cifar", num_classes=num_classes)


def ignores_num_classes(*, num_classes: int = 10, in_channels: int = 3, block: Any = None, **kwargs: Any) -> nn.Module:
    return ResNet(BasicBlock, [1], widths=(8,), stem="cifar", in_channels=in_channels, num_classes=10)


def ignores_in_channels(*, num_classes: int = 10, in_channels: int = 3, block: Any = None, **kwargs: Any) -> nn.Module:
    return ResNet(BasicBlock, [1], widths=(8,), stem="cifar", num_classes=num_classes)


def returns_a_function(*, num_classes: int = 10, in_channels: int = 3, block: Any = None, **kwargs: Any) -> Any:
    return lambda x: x


def ignores_block_names(*, num_classes: int = 10, in_channels: int = 3, block: Any = None, **kwargs: Any) -> nn.Module:
    block_cls = block if isinstance(block, type) else BasicBlock
    return ResNet(block_cls, [1], widths=(8,), stem="cifar", in_channels=in_channels, num_classes=num_classes)


class _NormalisedLogits(nn.Module):
    """Logits divided by their norm, which is zero for the zero-initialised head: 0/0 in backward only."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        nn.init.zeros_(net.fc.weight)
        nn.init.zeros_(net.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)  # (N, num_classes), all zero at initialisation
        return logits + torch.sqrt(logits.pow(2).sum(dim=1, keepdim=True))  # finite forward, NaN gradient


def nan_gradient(*, num_classes: int = 10, in_channels: int = 3, block: Any = None, **kwargs: Any) -> nn.Module:
    return _NormalisedLogits(ResNet(BasicBlock, [1], widths=(8,), stem="cifar", in_channels=in_channels, num_classes=num_classes))


@pytest.mark.parametrize(
    ("arch", "kwargs", "message"),
    [
        (no_in_channels, {}, "which rejects num_classes=..., in_channels=..., block=None: got an unexpected keyword argument 'in_channels'"),
        (ignores_num_classes, {}, "maps an input of shape [2, 1, 15, 15] to [2, 10] in train mode; expected logits of shape [2, 3]"),
        (ignores_in_channels, {}, "raised RuntimeError in train mode on an input of shape [2, 1, 15, 15]"),
        (returns_a_function, {}, "returned function, not a torch.nn.Module"),
        (ignores_block_names, dict(block="bottleneck"), "builds a different network for block='bottleneck' than for block=Bottleneck"),
        (nan_gradient, {}, "(block=None, num_classes=3, in_channels=1): parameter 'net.conv1.weight' has a non-finite gradient in eval mode"),
    ],
)
def test_a_broken_architecture_fails_naming_it_and_the_fault(arch: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(PluginContractError, match=re.escape(message)) as info:
        check_architecture(arch, **kwargs)
    assert f"architecture '{arch.__module__}.{arch.__qualname__}'" in str(info.value)


# --- through the entry points of a really installed third-party distribution ----------


def test_a_deep_untrained_network_passes_though_its_train_mode_gradient_overflows() -> None:
    # Two 15x15 images leave resnet101 two values per channel in its last stages; the gradient
    # through batch statistics is then inf (the 1202-layer plain network's at any size; both are in
    # the plugins --check test). That is depth, not a broken plugin: the finite-gradient check is in eval mode.
    torch.manual_seed(0)
    model = create_model("resnet101", num_classes=3, in_channels=1).train()
    out = model(torch.randn(2, 1, 15, 15))
    (out * torch.randn_like(out)).sum().backward()
    assert not torch.isfinite(model.conv1.weight.grad).all()  # the overflow is real...
    check_architecture("resnet101")  # ...and not the plugin's fault


def test_an_installed_plugin_is_checked_by_its_registry_name(use_plugins) -> None:
    use_plugins("rl-test-plugin")  # tests/plugin_dists/rl-test-plugin, pip-installed by conftest.py
    check_block("rl_test_block")
    check_architecture("rl_test_net")
    with pytest.raises(PluginContractError, match=re.escape("block 'rl_test_ignores_stride' (IgnoresStrideBlock(16, 32, stride=2")):
        check_block("rl_test_ignores_stride")


# --- the residual structure: forward == merge(branch(x), shortcut(x)) ----------------


class MergeForgetsTheReLU(BasicBlock):
    def merge(self, branch_out: torch.Tensor, shortcut_out: torch.Tensor | None) -> torch.Tensor:
        return branch_out + shortcut_out  # forward applies relu(...) after the addition; this does not

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.branch(x) + self.shortcut(x))


class BranchOnly(_Branch):
    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def test_a_merge_that_disagrees_with_forward_fails() -> None:
    with pytest.raises(PluginContractError, match=re.escape("forward(x) differs from merge(branch(x), shortcut(x)) in eval mode")):
        check_block(MergeForgetsTheReLU)


def test_half_a_structure_fails_naming_the_missing_methods() -> None:
    with pytest.raises(PluginContractError, match=re.escape("defines branch but not shortcut, merge")):
        check_block(BranchOnly)


def test_a_block_without_the_structure_passes_with_a_warning_naming_it() -> None:
    from resnet_lightning.models import ResidualStructureWarning

    with pytest.warns(ResidualStructureWarning, match=re.escape(f"block '{__name__}._Branch' ({__name__}._Branch) does not define branch(x)")):
        check_block(_Branch)


class IgnoresDropPath(BasicBlock):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, **kwargs: Any) -> None:
        kwargs.pop("drop_path_rate", None)
        super().__init__(in_channels, out_channels, stride, **kwargs)


def test_a_residual_block_ignoring_drop_path_rate_gets_a_warning() -> None:
    with pytest.warns(UserWarning, match=re.escape(f"block '{__name__}.IgnoresDropPath' ignores drop_path_rate")):
        check_block(IgnoresDropPath)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_block("basic")  # applies it: no warning
