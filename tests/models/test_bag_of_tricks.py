"""ResNet-C/D (He et al. 2019, "Bag of Tricks") and anti-aliased down-sampling (Zhang 2019).

The published numbers are timm's, from ``results/benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv``
in huggingface/pytorch-image-models (224x224): resnet50 25.56M parameters and 4.11 GMACs,
resnet50d 25.58M and 4.35 GMACs, resnetblur50 (blur_pool) 25.56M and 5.16 GMACs, resnet18d 11.71M. timm's MAC counter also counts a little
outside the convolutions and the head, which torch's FlopCounterMode does not: the networks
come out 0.3-0.6% under it, and the difference D - B (0.24 G) is the same.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnet_lightning import create_model
from resnet_lightning.cli import cli_main
from resnet_lightning.factory import ArchitectureArgumentError
from resnet_lightning.models import count_macs, count_parameters
from resnet_lightning.models.antialias import BlurPool2d
from resnet_lightning.registry import get_block
from tests.project_plugins import project_entries
from tests.test_runs import TINY

# The core's blocks and the example plugins' (those installed). crelu_ll is no ResidualBlock and takes
# **kwargs, so it ignores both options, as the block contract lets it.
BLOCKS = sorted(set(project_entries("block")) - {"crelu_ll"})


def test_resnet50d_has_timms_parameters_macs_and_state_dict_layout() -> None:
    plain = create_model("resnet50")
    d = create_model("resnet50", stem="deep", avg_down=True)
    assert count_parameters(plain) == 25_557_032  # timm 25.56M, torchvision's exact count
    assert count_parameters(d) == 25_576_264  # timm 25.58M: the deep stem's 3x3s add 19,232
    assert count_parameters(create_model("resnet50", avg_down=True)) == 25_557_032  # averaging adds none
    assert count_parameters(create_model("resnet18", stem="deep", avg_down=True)) == 11_708_744  # timm 11.71M
    plain_macs, d_macs = count_macs(plain, (1, 3, 224, 224)), count_macs(d, (1, 3, 224, 224))
    assert plain_macs / 4.11e9 == pytest.approx(1, abs=0.01)
    assert d_macs / 4.35e9 == pytest.approx(1, abs=0.01)
    assert (d_macs - plain_macs) / 0.24e9 == pytest.approx(1, abs=0.01)
    assert count_macs(create_model("resnet50", blur_pool=True), (1, 3, 224, 224)) / 5.16e9 == pytest.approx(1, abs=0.01)
    # timm's layout, so its resnet50d weights load as they are: the stem's convs are conv1.0/.3/.6,
    # the shortcut an average pool (an identity where the stride is 1), then the 1x1 conv and its BN.
    shapes = {name: tuple(t.shape) for name, t in d.state_dict().items()}
    assert shapes["conv1.0.weight"] == (32, 3, 3, 3) and shapes["conv1.6.weight"] == (64, 32, 3, 3)
    assert shapes["bn1.weight"] == (64,) and shapes["layer1.0.downsample.1.weight"] == (256, 64, 1, 1)
    assert shapes["layer2.0.downsample.2.weight"] == (512,)
    assert isinstance(d.layer1[0].downsample[0], nn.Identity)
    assert isinstance(d.layer2[0].downsample[0], nn.AvgPool2d) and d.layer2[0].downsample[1].stride == (1, 1)


def test_blur_pool_is_a_normalised_binomial_blur_that_keeps_the_contracts_shape() -> None:
    pool = BlurPool2d(2, stride=2)
    assert torch.equal(pool(torch.ones(1, 2, 6, 6)), torch.ones(1, 2, 3, 3))  # the filter sums to 1
    assert torch.allclose(pool.filt[0, 0], torch.tensor([1.0, 2, 1]).outer(torch.tensor([1.0, 2, 1])) / 16)
    assert not pool.state_dict()  # non-persistent: blurred networks have the plain network's keys
    for size in (2, 3, 4, 5, 7):
        for stride in (2, 3):
            for side in (1, 2, 7, 8):
                out = BlurPool2d(3, stride, size)(torch.randn(1, 3, side, side))
                assert out.shape[-2:] == (-(-side // stride),) * 2, (size, stride, side)
    # What it is for (Zhang 2019): shifting the input by one pixel moves a blurred subsampling less.
    image = torch.rand(1, 1, 32, 32)
    shifted = torch.roll(image, 1, dims=-1)
    strided = (image[..., ::2, ::2] - shifted[..., ::2, ::2]).norm()
    blurred = (BlurPool2d(1)(image) - BlurPool2d(1)(shifted)).norm()
    assert blurred < 0.7 * strided


@pytest.mark.parametrize("block", BLOCKS)
def test_every_block_takes_the_deep_stem_avg_down_and_blur_pool(block: str) -> None:
    depth = 11 if get_block(block).expansion > 1 else 8  # 9n+2 or 6n+2
    options = dict(block=block, depth=depth, stem="deep", avg_down=True, blur_pool=True, shortcut="B")
    model = create_model("cifar_resnet", **options).eval()  # checks every block's shapes on the meta device
    plain = create_model("cifar_resnet", block=block, depth=depth, shortcut="B")
    def stem(m: nn.Module) -> int:
        return count_parameters(m.conv1) + count_parameters(m.bn1)

    assert count_parameters(model) - count_parameters(plain) == stem(model) - stem(plain) > 0  # only the stem grows
    strided = [b for b in model.blocks() if b.stride > 1]
    assert strided and all(isinstance(b.aa, BlurPool2d) for b in strided)
    assert all(m.stride == (1, 1) for b in strided for m in b.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    assert isinstance(model.maxpool[1], BlurPool2d)
    assert model(torch.randn(2, 3, 9, 9)).shape == (2, 10)


def test_a_block_that_does_not_take_the_option_is_named() -> None:
    class NoOptions(nn.Module):
        def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, norm_layer=None,
                     drop_path_rate: float = 0.0, shortcut: str = "B") -> None:
            super().__init__()
            self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    create_model("cifar_resnet", block=NoOptions, depth=8)  # builds without the options
    with pytest.raises(ArchitectureArgumentError, match=r"NoOptions' does not take blur_pool=True; leave blur_pool off"):
        create_model("cifar_resnet", block=NoOptions, depth=8, blur_pool=True)


def test_fit_with_the_tricks_and_a_misspelt_stem(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    fit = ["fit", *TINY, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]
    cli = cli_main([*fit, "--model.arch_kwargs", "{depth: 8, stem: deep, avg_down: true, blur_pool: true}"])
    assert cli.trainer.global_step == 2 and torch.isfinite(cli.trainer.callback_metrics["train/loss"])
    assert isinstance(cli.model.model.layer2[0].aa, BlurPool2d)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli_main([*fit, "--model.arch_kwargs", "{depth: 8, stem: deeep}"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "unknown stem 'deeep'" in err and "'deep'" in err
