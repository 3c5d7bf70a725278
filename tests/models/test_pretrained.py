"""Pretrained weights: torchvision state dicts, our checkpoints, torchvision's cache, the plugin hook, fine-tuning."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
import torchvision
from torch import nn

from resnet_lightning import ResNetClassifier, create_model
from resnet_lightning.data import DigitsDataModule
from resnet_lightning.models.pretrained import WeightsError, adapt_input_conv, load_pretrained


@pytest.fixture(scope="module")
def torchvision_resnet18(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, torch.Tensor], str]:
    """torchvision's own resnet18 state dict (random init: no download here), saved as torchvision ships it."""
    torch.manual_seed(0)
    state = torchvision.models.resnet18().state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(state, path)
    return state, str(path)


def test_torchvision_state_dict_with_a_new_head(torchvision_resnet18) -> None:
    state, path = torchvision_resnet18
    model = create_model("resnet18", num_classes=3, weights=path)
    ours = model.state_dict()
    assert set(ours) == set(state)
    for key, value in ours.items():
        if key.startswith("fc."):
            continue
        assert torch.equal(value, state[key]), key
    assert isinstance(model.fc, nn.Linear) and (model.fc.in_features, model.fc.out_features) == (512, 3)
    assert not torch.equal(ours["fc.weight"][:3], state["fc.weight"][:3])  # a fresh head, not a slice of the old
    model.eval()
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3)


def test_legacy_format_file_loads(torchvision_resnet18, tmp_path) -> None:
    state, _ = torchvision_resnet18  # torchvision's older .pth files predate torch.save's zip format
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    model = create_model("resnet18", num_classes=3, weights=str(tmp_path / "legacy.pth"))
    assert torch.equal(model.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_same_number_of_classes_loads_the_head_too(torchvision_resnet18) -> None:
    state, path = torchvision_resnet18
    model = create_model("resnet18", weights=path)  # 1000 classes, as saved
    assert torch.equal(model.fc.weight, state["fc.weight"]) and torch.equal(model.fc.bias, state["fc.bias"])
    x = torch.randn(2, 3, 64, 64)
    reference = torchvision.models.resnet18()
    reference.load_state_dict(state)
    torch.testing.assert_close(model.eval()(x), reference.eval()(x))


def test_stem_adapted_for_one_five_and_six_channels(torchvision_resnet18) -> None:
    state, path = torchvision_resnet18
    grey = create_model("resnet18", num_classes=3, in_channels=1, weights=path)
    torch.testing.assert_close(grey.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))
    rgb = create_model("resnet18", num_classes=3, weights=path)
    g = torch.rand(2, 1, 32, 32)
    # A grey image through the adapted stem equals the same image as (g, g, g) through the RGB one.
    torch.testing.assert_close(grey.conv1(g), rgb.conv1(g.expand(-1, 3, -1, -1)), rtol=1e-5, atol=1e-5)
    five = create_model("resnet18", in_channels=5, weights=path)
    expected = torch.cat([state["conv1.weight"], state["conv1.weight"][:, :2]], dim=1) * (3 / 5)
    torch.testing.assert_close(five.conv1.weight, expected)
    six = create_model("resnet18", in_channels=6, weights=path)
    constant = torch.full((1, 6, 16, 16), 0.5)  # a whole number of repeats: a constant image keeps its response
    torch.testing.assert_close(six.conv1(constant), rgb.conv1(constant[:, :3]), rtol=1e-5, atol=1e-5)
    assert adapt_input_conv(1, torch.ones(4, 3, 3, 3)).shape == (4, 1, 3, 3)


def test_torchvision_name_through_torchvisions_own_cache(torchvision_resnet18, tmp_path, monkeypatch) -> None:
    """IMAGENET1K_V1 resolved by torchvision's weight API; the file is already in its cache, so nothing downloads."""
    state, path = torchvision_resnet18
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    cached = tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(open(path, "rb").read())
    for name in ("IMAGENET1K_V1", "DEFAULT", "ResNet18_Weights.IMAGENET1K_V1"):
        model = create_model("resnet18", num_classes=4, weights=name)
        assert torch.equal(model.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])


def test_our_lightning_checkpoint_as_weights(tmp_path) -> None:
    classifier = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, num_classes=10, in_channels=1)
    trainer = L.Trainer(max_steps=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(classifier, DigitsDataModule(batch_size=32))
    trainer.save_checkpoint(tmp_path / "digits.ckpt")
    # Another task: 4 classes, RGB input, from the digits network's weights.
    model = create_model("cifar_resnet", depth=8, num_classes=4, in_channels=3, weights=tmp_path / "digits.ckpt")
    trained = classifier.model.state_dict()
    for key, value in model.state_dict().items():
        if key.startswith("fc."):
            assert value.shape[0] == 4
        elif key == "conv1.weight":
            torch.testing.assert_close(value, trained[key].repeat(1, 3, 1, 1) / 3)
        else:
            assert torch.equal(value, trained[key]), key


def test_plugin_architecture_offers_weights_through_its_hook() -> None:
    source = create_model("cifar_resnet", depth=8, num_classes=10)

    def my_net(*, num_classes: int = 10, in_channels: int = 3, block=None, **kwargs) -> nn.Module:
        return create_model("cifar_resnet", depth=8, num_classes=num_classes, in_channels=in_channels, block=block)

    def pretrained_weights(name: str) -> dict[str, torch.Tensor]:
        if name != "digits_v1":
            raise KeyError(f"unknown weights {name!r}; my_net offers: digits_v1")
        return source.state_dict()

    my_net.pretrained_weights = pretrained_weights
    model = my_net(num_classes=10)
    load_pretrained(model, "digits_v1", builder=my_net, arch="my_net")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), source.state_dict().values()))
    with pytest.raises(WeightsError, match="my_net.*offers: digits_v1"):
        load_pretrained(model, "imagenet", builder=my_net, arch="my_net")


def test_weight_errors_name_the_value_and_the_way_out(torchvision_resnet18, tmp_path) -> None:
    _, path = torchvision_resnet18
    with pytest.raises(WeightsError, match=r"unknown weights 'IMAGENET1K_V3' for resnet18; it offers IMAGENET1K_V1, DEFAULT"):
        create_model("resnet18", weights="IMAGENET1K_V3")
    with pytest.raises(WeightsError, match=r"IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT"):
        create_model("resnet50", weights="V2")
    with pytest.raises(WeightsError, match=r"missing.pth does not exist"):
        create_model("resnet18", weights=str(tmp_path / "missing.pth"))
    (tmp_path / "broken.pth").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(WeightsError, match=r"broken.pth' is incomplete or corrupt .*; copy or save it again"):
        create_model("resnet18", weights=str(tmp_path / "broken.pth"))
    torch.save({"epochs": 3}, tmp_path / "not_weights.pt")
    with pytest.raises(WeightsError, match=r"holds a dict, not a state dict of tensors"):
        create_model("resnet18", weights=str(tmp_path / "not_weights.pt"))
    with pytest.raises(WeightsError, match=r"do not fit resnet34 \(\d+ missing: layer1\.2\.conv1\.weight"):
        create_model("resnet34", weights=path)
    with pytest.raises(WeightsError, match=r"do not fit resnet50 .* another shape"):
        create_model("resnet50", weights=path)
    with pytest.raises(WeightsError, match=r"'cifar_resnet20' offers no named weights"):
        create_model("cifar_resnet20", weights="IMAGENET1K_V1")


class _Snapshots(L.Callback):
    """The backbone and head parameters and the optimizer's groups at the end of each training epoch."""

    def __init__(self) -> None:
        self.epochs: list[dict] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: ResNetClassifier) -> None:
        self.epochs.append(
            {
                "stem": pl_module.model.conv1.weight.detach().clone(),
                "bn": pl_module.model.bn1.running_mean.clone(),
                "head": pl_module.model.fc.weight.detach().clone(),
                "lrs": [group["lr"] for group in trainer.optimizers[0].param_groups],
            }
        )


def test_frozen_backbone_first_then_all_at_a_lower_rate() -> None:
    torch.manual_seed(0)
    classifier = ResNetClassifier(
        arch="cifar_resnet", arch_kwargs={"depth": 8}, num_classes=10, in_channels=1,
        freeze_backbone_epochs=1, backbone_lr_scale=0.1,
    )
    start = {"stem": classifier.model.conv1.weight.detach().clone(), "bn": classifier.model.bn1.running_mean.clone(),
             "head": classifier.model.fc.weight.detach().clone()}
    snapshots = _Snapshots()
    trainer = L.Trainer(max_epochs=2, limit_train_batches=3, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[snapshots])
    trainer.fit(classifier, DigitsDataModule(batch_size=32))
    first, second = snapshots.epochs
    assert torch.equal(first["stem"], start["stem"]) and torch.equal(first["bn"], start["bn"])  # frozen, BN statistics too
    assert not torch.equal(first["head"], start["head"])
    assert first["lrs"] == [0.1]  # the default SGD at 0.1, the head alone
    assert not torch.equal(second["stem"], first["stem"]) and not torch.equal(second["bn"], first["bn"])
    assert second["lrs"] == pytest.approx([0.1, 0.01])  # the backbone joined at 0.1 x the head's rate


def test_lower_backbone_rate_without_freezing() -> None:
    classifier = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, backbone_lr_scale=0.25,
                                  no_weight_decay_on_norm_and_bias=True)
    optimizer = classifier.configure_optimizers()
    head = {id(p) for p in classifier.model.fc.parameters()}
    for group in optimizer.param_groups:
        in_head = {id(p) in head for p in group["params"]}
        assert len(in_head) == 1  # a group is all head or all backbone
        assert group["lr"] == pytest.approx(0.1 if in_head == {True} else 0.025)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(classifier.parameters()))


def test_weights_load_when_a_fit_starts_and_are_not_needed_afterwards(tmp_path) -> None:
    from resnet_lightning.module import ModelConfigError

    source = create_model("cifar_resnet", depth=8, num_classes=10, in_channels=1)
    torch.save(source.state_dict(), tmp_path / "start.pth")
    classifier = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, in_channels=1, weights=str(tmp_path / "start.pth"))
    assert not torch.equal(classifier.model.conv1.weight, source.conv1.weight)  # not yet: at the start of a fit
    trainer = L.Trainer(max_steps=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(classifier, DigitsDataModule(batch_size=32))
    assert (classifier.model.conv1.weight - source.conv1.weight).abs().max() < 0.05  # one SGD step from the weights
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    (tmp_path / "start.pth").unlink()
    reloaded = ResNetClassifier.load_from_checkpoint(tmp_path / "run.ckpt")  # the start file is gone: not needed
    assert torch.equal(reloaded.model.conv1.weight, classifier.model.conv1.weight)
    resumed = L.Trainer(max_steps=2, limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    resumed.fit(reloaded, DigitsDataModule(batch_size=32), ckpt_path=tmp_path / "run.ckpt")  # resuming: not needed either
    assert resumed.global_step == 2
    with pytest.raises(ModelConfigError, match=r"--model.weights: weights file .*start.pth does not exist"):
        L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False).fit(
            ResNetClassifier.load_from_checkpoint(tmp_path / "run.ckpt"), DigitsDataModule(batch_size=32)
        )  # a new fit from it does need them
    with pytest.raises(ModelConfigError, match=r"--model.weights: unknown weights 'IMAGENET1K_V2' for resnet18"):
        ResNetClassifier(arch="resnet18", weights="IMAGENET1K_V2")  # refused when built, before any fit


@pytest.mark.parametrize(
    "scheduler",
    [
        lambda optimizer: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=4),  # from base_lrs
        lambda optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: (1 + math.cos(math.pi * epoch / 4)) / 2),
    ],
    ids=["CosineAnnealingWarmRestarts", "LambdaLR"],
)
def test_the_schedule_covers_the_backbone_once_it_joins(scheduler) -> None:
    """Schedulers made before the backbone's group existed still step it (they keep per-group lists)."""
    classifier = ResNetClassifier(
        arch="cifar_resnet", arch_kwargs={"depth": 8}, num_classes=10, in_channels=1, freeze_backbone_epochs=1,
        backbone_lr_scale=0.1, lr_scheduler=scheduler,
    )
    snapshots = _Snapshots()
    trainer = L.Trainer(max_epochs=3, limit_train_batches=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[snapshots])
    trainer.fit(classifier, DigitsDataModule(batch_size=32))
    head = [epoch["lrs"][0] for epoch in snapshots.epochs]
    # (read at the end of each epoch, after the epoch-interval scheduler has stepped)
    assert head == pytest.approx([0.1 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(1, 4)])
    for epoch in snapshots.epochs[1:]:  # joined at a tenth of the head's rate, and kept there as both decay
        assert epoch["lrs"][1] == pytest.approx(0.1 * epoch["lrs"][0])
