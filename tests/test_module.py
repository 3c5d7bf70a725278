"""ResNetClassifier: optimisation options, checkpoint round trip, divergence guard."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from resnet_lightning import ResNetClassifier
from resnet_lightning.module import NonFiniteLossError

TINY = dict(arch="cifar_resnet", arch_kwargs={"depth": 8}, num_classes=10, in_channels=1)


def _loader(n: int = 32, fill: float | None = None) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(n, 1, 8, 8, generator=generator)
    if fill is not None:
        images.fill_(fill)
    labels = torch.randint(0, 10, (n,), generator=generator)
    return DataLoader(TensorDataset(images, labels), batch_size=8)


def _trainer(tmp_path, **kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )
    return L.Trainer(**dict(defaults, **kwargs))


def test_default_optimizer_is_the_paper_sgd() -> None:
    optimizer = ResNetClassifier(**TINY).configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.1, 0.9, 1e-4)


def test_norm_and_bias_excluded_from_weight_decay() -> None:
    model = ResNetClassifier(**TINY, no_weight_decay_on_norm_and_bias=True)
    decay, no_decay = model.configure_optimizers().param_groups
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 1e-4
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim <= 1 for p in no_decay["params"])
    bn_weight = model.model.bn1.weight
    assert any(p is bn_weight for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_warmup_then_schedule_steps_per_iteration(tmp_path) -> None:
    model = ResNetClassifier(
        **TINY,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
        lr_scheduler=lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[2], gamma=0.1),
        lr_scheduler_interval="step",
        warmup=4,
    )
    config = model.configure_optimizers()
    assert config["lr_scheduler"]["interval"] == "step"
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(8):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.001)  # warm-up starts at 1% of the learning rate
    assert lrs[1] < lrs[2] < lrs[3] < 0.1
    assert lrs[4:6] == pytest.approx([0.1, 0.1])  # the main schedule starts after warm-up ...
    assert lrs[6:] == pytest.approx([0.01, 0.01])  # ... and its milestones count from there


def test_label_smoothing_out_of_range_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"label_smoothing=1.5 is outside \[0, 1\)"):
        ResNetClassifier(**TINY, label_smoothing=1.5)


def test_arch_kwargs_may_not_set_what_the_model_sets_itself() -> None:
    with pytest.raises(ValueError, match=r"arch_kwargs sets num_classes: 5, .* use --model.num_classes"):
        ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8, "num_classes": 5})


def test_top5_only_with_more_than_five_classes() -> None:
    assert set(ResNetClassifier(**TINY).val_metrics.keys(keep_base=False)) == {"val/acc", "val/acc_top5"}
    assert set(ResNetClassifier(**dict(TINY, num_classes=3)).val_metrics.keys(keep_base=False)) == {"val/acc"}


def test_load_from_checkpoint_needs_no_arguments(tmp_path) -> None:
    model = ResNetClassifier(**dict(TINY, block="preact"), label_smoothing=0.1)
    trainer = _trainer(tmp_path)
    trainer.fit(model, _loader())
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)

    restored = ResNetClassifier.load_from_checkpoint(path)
    assert restored.hparams.block == "preact" and restored.hparams.label_smoothing == 0.1
    restored.eval(), model.eval()
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(restored(x), model(x))


def test_non_finite_loss_stops_with_step_and_cause(tmp_path) -> None:
    model = ResNetClassifier(**TINY)
    with pytest.raises(NonFiniteLossError, match=r"became nan at global step 0 .*learning rate is too high \(lr=0\.1"):
        _trainer(tmp_path).fit(model, _loader(fill=float("nan")))


def test_compile_keeps_state_dict_keys() -> None:
    model = ResNetClassifier(**TINY, compile=True)
    keys = set(model.state_dict())
    model.configure_model()
    assert set(model.state_dict()) == keys


@pytest.mark.slow
def test_compiled_fit_checkpoint_loads_into_an_uncompiled_model(tmp_path) -> None:
    model = ResNetClassifier(**TINY, compile=True)
    trainer = _trainer(tmp_path)
    trainer.fit(model, _loader())  # inductor compiles forward and backward on the CPU
    assert trainer.global_step == 2
    trainer.save_checkpoint(tmp_path / "compiled.ckpt")
    plain = ResNetClassifier.load_from_checkpoint(tmp_path / "compiled.ckpt", compile=False)
    images = next(iter(_loader()))[0]
    model.eval(), plain.eval()
    torch.testing.assert_close(plain(images), model(images), rtol=1e-4, atol=1e-5)


def test_channels_last_trains(tmp_path) -> None:
    model = ResNetClassifier(**TINY, channels_last=True)
    assert model.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    _trainer(tmp_path).fit(model, _loader())
    assert model.trainer.global_step == 2
