"""``on_device=True``: whole datasets on the training device, batched and augmented there.

Real DataModules on real files (``tests/fixtures_data.py``), real Lightning Trainers on
the CPU (the "device" here; the code paths are the same on a GPU).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, DistributedSampler

from resnet_lightning import ResNetClassifier
from resnet_lightning.cli import cli_main
from resnet_lightning.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DataConfigError,
    DeviceBatches,
    DigitsDataModule,
    EpochSampler,
    MNISTDataModule,
    RandomCropFlip,
)
from tests.fixtures_data import TRAIN_SIZE, assert_continues_after_three_batches

TINY = {"arch": "cifar_resnet", "arch_kwargs": {"depth": 8}}
QUIET = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False, "accelerator": "cpu"}


def _datamodule(name: str, roots: dict[str, Path], **kwargs) -> L.LightningDataModule:
    if name == "digits":
        dm = DigitsDataModule(**kwargs)
    else:
        cls = {"mnist": MNISTDataModule, "cifar10": CIFAR10DataModule, "cifar100": CIFAR100DataModule}[name]
        root = roots["mnist" if name == "mnist" else "cifar"]
        dm = cls(data_dir=str(root), **dict(dict(val_size=100, num_workers=0), **kwargs))
    dm.setup("fit")
    return dm


@pytest.fixture
def roots(mnist_root: Path, cifar_root: Path) -> dict[str, Path]:
    return {"mnist": mnist_root, "cifar": cifar_root}


def _epoch(loader: DeviceBatches, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    loader.sampler.set_epoch(epoch)
    batches = list(loader)
    return torch.cat([images for images, _ in batches]), torch.cat([labels for _, labels in batches])


@pytest.mark.parametrize("name", ["digits", "mnist", "cifar10", "cifar100"])
def test_eval_batches_are_the_worker_paths_batches_exactly(roots, name: str) -> None:
    on_device = _datamodule(name, roots, batch_size=48, on_device=True)
    workers = _datamodule(name, roots, batch_size=48)
    for stage in ("val", "test", "predict"):
        ours, theirs = getattr(on_device, f"{stage}_dataloader")(), getattr(workers, f"{stage}_dataloader")()
        assert isinstance(ours, DeviceBatches) and isinstance(theirs, DataLoader)
        assert len(ours) == len(theirs) and len(ours) > 1
        for (images, labels), (expected_images, expected_labels) in zip(ours, theirs, strict=True):
            assert images.dtype == torch.float32 and labels.dtype == torch.int64 and images.device.type == "cpu"
            assert torch.equal(images, expected_images) and torch.equal(labels, expected_labels)


def test_a_training_epoch_is_every_image_once_in_an_order_set_by_seed_and_epoch(roots, monkeypatch) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")
    dm = _datamodule("mnist", roots, batch_size=64, on_device=True)  # MNIST: no augmentation
    loader = dm.train_dataloader()
    n = len(dm.train_set)
    state = torch.get_rng_state()
    images, labels = _epoch(loader, 0)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is neither used nor moved
    assert [len(batch) for batch, _ in loader] == [64] * (n // 64) + [n % 64]  # the last, partial batch is kept
    # Every training image exactly once: the same rows, counted with multiplicity, as the whole set.
    expected = dm.eval_transform(dm.train_set.images)
    rows, counts = torch.cat([images.flatten(1), labels[:, None]], 1).unique(dim=0, return_counts=True)
    expected_rows, expected_counts = torch.cat([expected.flatten(1), dm.train_set.labels[:, None]], 1).unique(
        dim=0, return_counts=True
    )
    assert torch.equal(rows, expected_rows) and torch.equal(counts, expected_counts)
    assert not torch.equal(labels, dm.train_set.labels)  # shuffled

    again = _datamodule("mnist", roots, batch_size=64, on_device=True).train_dataloader()
    assert torch.equal(_epoch(again, 0)[0], images)  # same seed, same epoch: same batches
    assert not torch.equal(_epoch(again, 1)[1], labels)  # another epoch: another order
    monkeypatch.setenv("PL_GLOBAL_SEED", "8")
    assert not torch.equal(_epoch(dm.train_dataloader(), 0)[1], labels)  # another seed: another order


def test_the_order_is_drawn_at_the_first_batch_not_when_the_iterator_is_made(roots) -> None:
    # A resumed Lightning fit creates its train iterator before it calls set_epoch.
    loader = _datamodule("digits", roots, batch_size=32, on_device=True).train_dataloader()
    iterator = iter(loader)
    loader.sampler.set_epoch(3)
    first = next(iterator)
    loader.sampler.set_epoch(3)
    assert torch.equal(first[1], next(iter(loader))[1])
    loader.sampler.set_epoch(0)
    assert not torch.equal(first[1], next(iter(loader))[1])


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_crop_and_flip_read_a_window_of_the_padded_image(mode: str) -> None:
    # Non-square, so that swapped rows and columns would show.
    images = torch.randint(0, 256, (300, 3, 12, 10), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    augment = RandomCropFlip(padding=3, padding_mode=mode)
    params = augment.draw(len(images), torch.Generator().manual_seed(1))
    crops = augment(images, params)
    padded = F.pad(images.float(), (3, 3, 3, 3), mode=mode)  # torchvision's RandomCrop pads with F.pad too
    for crop, image, (top, left, flip) in zip(crops, padded, params.tolist(), strict=True):
        window = image[:, top : top + 12, left : left + 10]
        assert torch.equal(crop.float(), window.flip(-1) if flip else window)
    assert crops.dtype == torch.uint8 and crops.shape == images.shape


def test_crop_offsets_and_flips_are_uniform() -> None:
    params = RandomCropFlip(padding=4).draw(20_000, torch.Generator().manual_seed(0))
    corners = params[:, 0] * 9 + params[:, 1]
    counts = torch.bincount(corners, minlength=81)
    assert len(counts) == 81 and counts.min() > 170 and counts.max() < 330  # 247 expected; sd 16
    assert 0.48 < params[:, 2].float().mean() < 0.52  # sd 0.0035
    no_flip = RandomCropFlip(padding=4, flip=False).draw(100, torch.Generator().manual_seed(0))
    assert not no_flip[:, 2].any()


def test_cifar_training_batches_are_crops_and_flips_of_their_images(roots) -> None:
    dm = _datamodule("cifar10", roots, batch_size=50, on_device=True)
    loader = dm.train_dataloader()
    assert dm.device_augment.padding == 4 and dm.device_augment.padding_mode == "constant"  # as train_transform
    images, labels = next(iter(loader))
    order = loader.sampler.order()[:50]
    assert torch.equal(labels, dm.train_set.labels[order])
    # Every image is one of the 9 x 9 x 2 views of its source (4 zero pixels around it,
    # a 32x32 crop, maybe flipped), normalised; and the batch uses many different views.
    padded = F.pad(dm.train_set.images[order], (4, 4, 4, 4))  # (50, 3, 40, 40)
    views = torch.stack([padded[:, :, i : i + 32, j : j + 32] for i in range(9) for j in range(9)], 1)
    views = dm.eval_transform(torch.cat([views, views.flip(-1)], 1).flatten(0, 1)).view(50, 162, 3, 32, 32)
    matches = (images[:, None] == views).flatten(2).all(-1)  # (50, 162)
    assert matches.any(1).all()
    assert len(set(matches.float().argmax(1).tolist())) > 20


def test_ranks_split_each_epoch_into_equal_shards_as_distributed_samplers_do() -> None:
    shards = [EpochSampler(11, shuffle=True, seed=3, rank=rank, world_size=2) for rank in (0, 1)]
    for sampler in shards:
        sampler.set_epoch(5)
    first, second = (list(sampler) for sampler in shards)
    assert len(first) == len(second) == 6 == len(shards[0])  # padded: both ranks run the same steps
    assert set(first) | set(second) == set(range(11)) and len(set(first) & set(second)) == 1
    for rank in (0, 1):  # unshuffled, the very same shards as torch's and Lightning's samplers
        assert list(EpochSampler(11, shuffle=False, rank=rank, world_size=2)) == list(
            DistributedSampler(range(11), num_replicas=2, rank=rank, shuffle=False)
        )
        assert list(EpochSampler(11, shuffle=False, rank=rank, world_size=2, pad=False)) == list(
            UnrepeatedDistributedSampler(range(11), num_replicas=2, rank=rank, shuffle=False)
        )
    with pytest.raises(ValueError, match="rank=2, world_size=2"):
        EpochSampler(11, shuffle=True, rank=2, world_size=2)


def test_a_samples_augmentation_depends_on_its_place_in_the_epoch_not_on_the_rank(roots) -> None:
    dm = _datamodule("cifar10", roots, on_device=True)
    images, labels = dm.train_set.images, dm.train_set.labels

    def epoch(rank: int, world_size: int) -> torch.Tensor:
        sampler = EpochSampler(len(labels), shuffle=True, seed=1, rank=rank, world_size=world_size)
        loader = DeviceBatches(
            images, labels, batch_size=64, sampler=sampler, augment=dm.device_augment, transform=dm.eval_transform
        )
        return _epoch(loader, 2)[0]

    alone = epoch(0, 1)
    assert len(alone) % 2 == 0  # no padding, so two ranks interleave into one
    assert torch.equal(epoch(0, 2), alone[0::2]) and torch.equal(epoch(1, 2), alone[1::2])


def test_a_restored_loader_continues_its_epoch_where_the_checkpoint_left_it(roots) -> None:
    dm = _datamodule("cifar10", roots, batch_size=100, on_device=True)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(4)
    whole = list(loader)
    iterator = iter(loader)
    next(iterator), next(iterator), next(iterator)
    state = loader.state_dict()
    assert state == {"epoch": 4, "batches": 3, "batch_size": 100}

    restored = _datamodule("cifar10", roots, batch_size=100, on_device=True).train_dataloader()
    assert_continues_after_three_batches(restored, state, whole)

    smaller = _datamodule("cifar10", roots, batch_size=50, on_device=True).train_dataloader()
    smaller.load_state_dict(state)
    smaller.sampler.set_epoch(4)
    with pytest.raises(DataConfigError, match="batch_size=100, but batch_size is now 50"):
        next(iter(smaller))


def test_arrays_move_once_and_worker_settings_are_ignored(roots) -> None:
    # persistent_workers without workers is an error for DataLoaders; here there are none to keep.
    dm = _datamodule("cifar10", roots, on_device=True, num_workers=0, persistent_workers=True, pin_memory=True)
    first, second = dm.train_dataloader(), dm.train_dataloader()
    assert first.images is second.images and first.images.dtype == torch.uint8  # moved once, kept as uint8
    assert dm.predict_dataloader().images is dm.test_dataloader().images
    with pytest.raises(DataConfigError, match="num_workers=0"):
        _datamodule("cifar10", roots, num_workers=0, persistent_workers=True)
    assert _datamodule("cifar10", roots, on_device=True, val_size=0).val_dataloader() == []


@pytest.mark.parametrize("name", ["digits", "cifar10"])
def test_a_real_trainer_fits_tests_and_predicts_on_device(roots, name: str) -> None:
    L.seed_everything(0, verbose=False)
    dm = _datamodule(name, roots, batch_size=32, on_device=True)
    model = ResNetClassifier(**TINY, num_classes=dm.num_classes, in_channels=dm.in_channels)
    trainer = L.Trainer(max_epochs=2, limit_train_batches=3, limit_val_batches=2, enable_checkpointing=False, **QUIET)
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 6 and isinstance(trainer.train_dataloader, DeviceBatches)
    assert trainer.train_dataloader.sampler.epoch == 1  # Lightning called set_epoch
    assert 0 <= trainer.test(model, datamodule=dm, verbose=False)[0]["test/acc"] <= 1
    predictions = trainer.predict(model, datamodule=dm)
    assert sum(len(p) for p in predictions) == len(dm.test_set)


def test_the_cli_takes_on_device(cifar_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = cli_main([
        "fit", "--data", "CIFAR10DataModule", "--data.data_dir", str(cifar_root), "--data.val_size", "100",
        "--data.batch_size", "32", "--data.on_device", "true",
        "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}", "--trainer.fast_dev_run", "1",
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary",
        "false", "--trainer.logger", "false",
    ])
    assert cli.datamodule.on_device is True and cli.datamodule.hparams.on_device is True
    assert isinstance(cli.trainer.train_dataloader, DeviceBatches) and cli.trainer.global_step == 1
    assert len(cli.datamodule.train_set) == TRAIN_SIZE - 100
