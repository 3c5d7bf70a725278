"""DigitsDataModule: scikit-learn's digits, split by seed, normalised with the training set's statistics."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from resnet_lightning.data import DataConfigError, DataError, DigitsDataModule


def _ready(**kwargs) -> DigitsDataModule:
    dm = DigitsDataModule(**kwargs)
    dm.setup("fit")
    return dm


def _tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    return dataset.tensors


def test_split_covers_all_1797_digits_once_with_every_class_in_every_split() -> None:
    dm = _ready()
    sizes = [len(s) for s in (dm.train_set, dm.val_set, dm.test_set)]
    assert sum(sizes) == 1797
    assert sizes[2] == round(0.2 * 1797) and sizes[1] == round(0.1 * 1797)
    # Undo the normalisation and match every image to the original data: nothing lost or duplicated.
    raw = torch.as_tensor(load_digits().images, dtype=torch.float32)
    together = torch.cat([_tensors(s)[0] for s in (dm.train_set, dm.val_set, dm.test_set)]) * dm.std + dm.mean
    assert torch.allclose(together.reshape(1797, 64).sort(0).values, raw.reshape(1797, 64).sort(0).values, atol=1e-4)
    for dataset in (dm.train_set, dm.val_set, dm.test_set):
        assert set(_tensors(dataset)[1].tolist()) == set(range(10))  # stratified


def test_batches_are_float_images_and_int64_labels() -> None:
    dm = _ready(batch_size=32)
    assert (dm.num_classes, dm.in_channels) == (10, 1) and dm.class_names[7] == "7"
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader(), dm.predict_dataloader()):
        images, labels = next(iter(loader))
        assert images.shape == (32, 1, 8, 8) and images.dtype == torch.float32
        assert labels.shape == (32,) and labels.dtype == torch.int64
        assert 0 <= labels.min() and labels.max() <= 9


def test_training_set_is_standardised_with_its_own_statistics() -> None:
    dm = _ready()
    train = _tensors(dm.train_set)[0]
    assert abs(train.mean().item()) < 1e-5 and abs(train.std().item() - 1) < 1e-4
    assert 4 < dm.mean < 6 and 5 < dm.std < 7  # raw pixel values run 0..16


def test_same_seed_same_split_and_another_seed_another_split() -> None:
    first, again, other = _ready(seed=1), _ready(seed=1), _ready(seed=2)
    assert torch.equal(_tensors(first.test_set)[0], _tensors(again.test_set)[0])
    assert torch.equal(_tensors(first.val_set)[1], _tensors(again.val_set)[1])
    assert not torch.equal(_tensors(first.test_set)[0], _tensors(other.test_set)[0])


@pytest.mark.filterwarnings("ignore:Total length of `list` across ranks is zero")  # the intended "no validation"
def test_no_validation_set_still_trains_with_a_real_trainer() -> None:
    class Linear(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
            self.validation_batches = 0

        def training_step(self, batch, batch_idx):
            images, labels = batch
            return nn.functional.cross_entropy(self.net(images), labels)

        def validation_step(self, batch, batch_idx) -> None:
            self.validation_batches += 1

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = DigitsDataModule(val_fraction=0.0)
    model = Linear()
    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(model, datamodule=dm)
    assert len(dm.val_set) == 0 and len(dm.train_set) + len(dm.test_set) == 1797
    assert model.validation_batches == 0 and trainer.global_step == -(-len(dm.train_set) // dm.batch_size)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "val_fraction=0.5"),
        ({"test_fraction": 0.0}, "test_fraction=0.0"),
        ({"val_fraction": 0.001}, "val_fraction=0.001"),  # 2 images cannot hold 10 classes
        ({"batch_size": 0}, "batch_size=0"),
        ({"num_workers": 0, "persistent_workers": True}, "num_workers=0"),
    ],
)
def test_bad_settings_name_the_value(kwargs: dict, named: str) -> None:
    with pytest.raises(DataConfigError, match=named) as caught:
        _ready(**kwargs)
    assert isinstance(caught.value, ValueError)


def test_asking_for_a_loader_before_setup_says_so() -> None:
    with pytest.raises(DataError, match=r"setup\(\)"):
        DigitsDataModule().train_dataloader()
