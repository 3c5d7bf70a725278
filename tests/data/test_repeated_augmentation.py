"""The repeated-augmentation sampler (data/repeated.py): timm RepeatAugSampler's shares, resumable, from the CLI."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from resnet_lightning.cli import cli_main
from resnet_lightning.data import DataConfigError, DigitsDataModule
from resnet_lightning.data.repeated import RepeatedAugmentationSampler
from resnet_lightning.data.resumable import ResumableDataLoader
from tests.fixtures_cli import run_cli
from tests.fixtures_data import assert_continues_after_three_batches
from tests.test_runs import TINY


def _ranks(num_samples: int, world_size: int, repeats: int = 3, epoch: int = 5) -> list[RepeatedAugmentationSampler]:
    ranks = [
        RepeatedAugmentationSampler(num_samples, repeats=repeats, seed=7, rank=r, world_size=world_size)
        for r in range(world_size)
    ]
    for sampler in ranks:
        sampler.set_epoch(epoch)
    return ranks


def test_each_rank_gets_its_share_and_each_image_its_repeats_on_different_ranks() -> None:
    ranks = _ranks(1000, world_size=4)
    shares = [sampler.indices().tolist() for sampler in ranks]
    # timm / torchvision: each rank keeps floor(1000 // 256 * 256 / 4) = 192 samples, so the epoch
    # lasts as long as it would without repetition on a multiple of 256 images.
    assert [len(share) for share in shares] == [192] * 4 == [len(sampler) for sampler in ranks]
    # Dealt round-robin from [a, a, a, b, b, b, ...]: the ranks together take 768 = 256 * 3 places,
    # so 256 different images, each exactly 3 times, its copies on 3 different ranks.
    counts = Counter(i for share in shares for i in share)
    assert len(counts) == 256 and set(counts.values()) == {3}
    for image in counts:
        assert sum(image in share for share in shares) == 3
    assert len(set(ranks[0].order()[:768:3].tolist())) == 256  # the first 256 images of the permutation
    # The same on every rank (from seed and epoch), another permutation next epoch.
    assert all(torch.equal(sampler.order(), ranks[0].order()) for sampler in ranks)
    assert not torch.equal(_ranks(1000, world_size=4, epoch=6)[0].order(), ranks[0].order())


def test_one_rank_and_a_dataset_smaller_than_the_rounding() -> None:
    (alone,) = _ranks(100, world_size=1, repeats=2)
    assert len(alone.indices()) == 100  # under 256 images: ceil(100 / 1), not timm's 0
    assert set(Counter(alone.indices().tolist()).values()) == {2}  # 50 images, each twice in a row
    assert alone.indices()[0] == alone.indices()[1]
    padded = _ranks(10, world_size=4, repeats=3)  # 30 places padded to 32 with the order's start
    assert [sampler.total_size for sampler in padded] == [32] * 4
    assert torch.equal(padded[0].order()[30:], padded[0].order()[:2])


def _loader(epoch: int) -> ResumableDataLoader:
    dm = DigitsDataModule(batch_size=32, repeated_augmentation=3)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader, ResumableDataLoader) and isinstance(loader.sampler.epochs, RepeatedAugmentationSampler)
    loader.sampler.set_epoch(epoch)
    return loader


def test_a_resumed_epoch_draws_the_same_order_and_augmentation_seeds() -> None:
    whole = list(_loader(epoch=2))
    assert len(whole) == 1024 // 32  # 1,258 training digits: 1024 samples (4 x 256) a rank, 3 copies each
    labels = torch.cat([batch[1] for batch in whole])
    assert labels.bincount().sum() == 1024
    loader = _loader(epoch=2)
    iterator = iter(loader)
    for _ in range(3):
        next(iterator)
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches": 3, "batch_size": 32}
    assert_continues_after_three_batches(_loader(epoch=0), state, whole)
    # Each copy of an image has its own place in the epoch, hence its own augmentation seed.
    sampler = _loader(epoch=2).sampler
    seeds = sampler.seeds()[:6].tolist()
    assert sampler.epochs.indices()[0] == sampler.epochs.indices()[2] and len(set(seeds)) == 6


def test_a_fit_with_repeated_augmentation_and_the_bad_value(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    fit = ["fit", *TINY, "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1", "--data.batch_size", "256"]
    cli = cli_main([*fit, "--data.repeated_augmentation", "3"])
    assert cli.trainer.global_step == 1024 // 256  # 1024 = 4 x 256 samples: 342 digits, about 3 copies each
    assert isinstance(cli.trainer.train_dataloader.sampler.epochs, RepeatedAugmentationSampler)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli_main([*fit, "--data.repeated_augmentation", "0"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "repeated_augmentation=0 must be" in err and "--data.repeated_augmentation 3" in err
    with pytest.raises(DataConfigError, match="repeated_augmentation=True"):
        DigitsDataModule(repeated_augmentation=True)


RECORDER = """
import torch
import lightning as L

class RecordOrder(L.Callback):
    '''Save this rank's training order of the first epoch, as its sampler draws it.'''
    def __init__(self, path: str):
        self.path = path
    def on_train_epoch_start(self, trainer, module):
        epochs = trainer.train_dataloader.sampler.epochs
        torch.save({"rank": epochs.rank, "world_size": epochs.world_size, "indices": epochs.indices()},
                   f"{self.path}/rank{trainer.global_rank}.pt")
"""


@pytest.mark.slow
def test_ddp_ranks_draw_their_share_with_the_copies_spread_over_them(tmp_path) -> None:
    (tmp_path / "recorder.py").write_text(RECORDER)
    (tmp_path / "record.yaml").write_text(
        f"trainer:\n  callbacks:\n    - class_path: recorder.RecordOrder\n      init_args: {{path: {tmp_path}}}\n"
    )
    result = run_cli(
        "fit", *TINY, "--config", "record.yaml", "--trainer.strategy", "ddp", "--trainer.devices", "2",
        "--trainer.accelerator", "cpu", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
        "--trainer.limit_val_batches", "1", "--trainer.logger", "false", "--data.repeated_augmentation", "3",
        cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [(r["rank"], r["world_size"]) for r in ranks] == [(0, 2), (1, 2)]  # the trainer's ranks reached it
    # 1,258 training digits: 1024 // 2 = 512 samples a rank, dealt from [a, a, a, b, b, b, ...] in turn,
    # the order drawn from seed_everything's 0 (configs/digits.yaml) and epoch 0.
    digits = DigitsDataModule()
    digits.setup("fit")
    expected = [RepeatedAugmentationSampler(len(digits.train_set), repeats=3, rank=r, world_size=2) for r in (0, 1)]
    for rank, sampler in zip(ranks, expected):
        assert torch.equal(rank["indices"], sampler.indices()) and len(rank["indices"]) == 512
    counts = Counter(torch.cat([r["indices"] for r in ranks]).tolist())
    assert len(counts) == 342 and max(counts.values()) == 3  # 1024 places: 341 images 3 times, one once
    assert set(ranks[0]["indices"].tolist()) & set(ranks[1]["indices"].tolist())  # copies on both ranks
