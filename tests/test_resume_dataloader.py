"""A fit stopped mid-epoch resumes exactly with DataLoaders too (data/resumable.py), with and without workers.

The on_device loader's twin of this is in tests/test_runs.py; its signal machinery is reused here.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from resnet_lightning import ResNetClassifier
from resnet_lightning.data import CIFAR10DataModule, DataConfigError, DigitsDataModule
from resnet_lightning.data.resumable import ResumableDataLoader
from tests.fixtures_cli import RUN_NAME, run_cli
from tests.fixtures_data import assert_continues_after_three_batches, write_cifar10
from tests.test_runs import SIGNALLER, TINY, assert_same_weights, load

# 8 steps an epoch; SIGTERM lands at step 11, mid-epoch 2.
FIT = ["fit", *TINY, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "8",
       "--trainer.limit_val_batches", "2", "--data.on_device", "false"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The last checkpoint of an uninterrupted fit, loading in the main process.

    Order and augmentation do not depend on the number of workers, so fits with workers must equal it too.
    """
    root = tmp_path_factory.mktemp("uninterrupted")
    result = run_cli(*FIT, "--data.num_workers", "0", cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return load(root / RUN_NAME / "version_0" / "checkpoints" / "last.ckpt")


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["0", "2"])
def test_sigterm_mid_epoch_then_resume_is_bit_identical_with_dataloaders(tmp_path, uninterrupted, workers) -> None:
    (tmp_path / "signaller.py").write_text(SIGNALLER)
    (tmp_path / "signal.yaml").write_text(
        "trainer:\n  callbacks:\n    - class_path: signaller.SignalAtStep\n      init_args: {step: 11}\n"
    )
    fit, env = [*FIT, "--data.num_workers", workers], {"PYTHONPATH": str(tmp_path)}
    stopped = run_cli(*fit, "--config", "signal.yaml", cwd=tmp_path, env=env)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    last = tmp_path / RUN_NAME / "version_0" / "checkpoints" / "last.ckpt"
    saved = load(last)
    assert saved["global_step"] == 11
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"epoch": 1, "batches": 3, "batch_size": 64}]

    resumed = run_cli(*fit, "--ckpt_path", "last", cwd=tmp_path, env=env)  # the printed command
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "not resumable" not in resumed.stderr  # Lightning's warning for loaders that cannot save their place
    assert_same_weights(load(last), uninterrupted)


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root)
    return root


def _cifar_loader(root: Path, workers: int, epoch: int) -> ResumableDataLoader:
    dm = CIFAR10DataModule(data_dir=str(root), val_size=100, num_workers=workers, batch_size=100)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader, ResumableDataLoader)
    loader.sampler.set_epoch(epoch)
    return loader


@pytest.mark.parametrize(("before", "after"), [(0, 2), (2, 0)])
def test_the_rest_of_an_epoch_is_augmented_as_it_would_have_been(cifar_root, before: int, after: int) -> None:
    # Random crops and flips made in worker processes (or not): the restored loader's batches are the
    # uninterrupted loader's to the bit, whoever made them.
    whole = list(_cifar_loader(cifar_root, 0, epoch=3))
    loader = _cifar_loader(cifar_root, before, epoch=3)
    iterator = iter(loader)
    for _ in range(3):
        next(iterator)
    state = loader.state_dict()
    assert state == {"epoch": 3, "batches": 3, "batch_size": 100}
    del iterator

    restored = _cifar_loader(cifar_root, after, epoch=0)
    assert_continues_after_three_batches(restored, state, whole)
    restored.sampler.set_epoch(4)
    assert not torch.equal(next(iter(restored))[0], whole[0][0])  # another epoch: another order and augmentation


@pytest.mark.parametrize(
    ("on_device", "workers", "step"),
    [(False, 0, 6), (False, 2, 6), (False, 2, 4), (True, 0, 6), (True, 0, 4)],
    ids=["no-workers-mid-epoch", "workers-mid-epoch", "workers-epoch-end", "on-device-mid-epoch", "on-device-epoch-end"],
)
def test_a_real_trainer_resumed_from_a_checkpoint_ends_with_the_uninterrupted_weights(
    cifar_root: Path, tmp_path: Path, on_device: bool, workers: int, step: int
) -> None:
    # 3 epochs of 4 steps, a checkpoint after every step; CIFAR, so the workers' random crops count too.
    def fit(dirpath: Path, ckpt_path: Path | None = None) -> dict[str, torch.Tensor]:
        L.seed_everything(0, verbose=False)
        dm = CIFAR10DataModule(data_dir=str(cifar_root), val_size=100, num_workers=workers, batch_size=32, on_device=on_device)
        model = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, num_classes=10, in_channels=3)
        every_step = ModelCheckpoint(dirpath=dirpath, filename="{step}", every_n_train_steps=1, save_top_k=-1)
        trainer = L.Trainer(
            max_epochs=3, limit_train_batches=4, limit_val_batches=1, callbacks=[every_step], logger=False,
            enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
        )
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
        assert trainer.global_step == 12
        return model.state_dict()

    uninterrupted = fit(tmp_path / "uninterrupted")
    checkpoint = tmp_path / "uninterrupted" / f"step={step}.ckpt"
    loader_state = torch.load(checkpoint, weights_only=True)["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert loader_state == [{"epoch": (step - 1) // 4, "batches": (step - 1) % 4 + 1, "batch_size": 32}]
    resumed = fit(tmp_path / "resumed", ckpt_path=checkpoint)
    assert uninterrupted.keys() == resumed.keys()
    for name, tensor in uninterrupted.items():
        assert torch.equal(resumed[name], tensor), name


def test_the_order_comes_from_the_seed_and_the_epoch_not_the_global_generator(monkeypatch) -> None:
    def first_labels(seed: str, epoch: int) -> torch.Tensor:
        monkeypatch.setenv("PL_GLOBAL_SEED", seed)
        dm = DigitsDataModule()
        dm.setup("fit")
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        torch.manual_seed(int(torch.randint(1000, ())))  # whatever the global generator is at
        state = torch.get_rng_state()
        labels = next(iter(loader))[1]
        assert torch.equal(torch.get_rng_state(), state)  # the loader drew nothing from it
        return labels

    assert torch.equal(first_labels("0", 1), first_labels("0", 1))
    assert not torch.equal(first_labels("0", 1), first_labels("0", 2))
    assert not torch.equal(first_labels("0", 1), first_labels("1", 1))


def test_another_batch_size_mid_epoch_is_one_clear_error() -> None:
    dm = DigitsDataModule(batch_size=32)
    dm.setup("fit")
    loader = dm.train_dataloader()
    loader.load_state_dict({"epoch": 0, "batches": 5, "batch_size": 64})
    with pytest.raises(DataConfigError, match="batch_size=64, but batch_size is now 32"):
        next(iter(loader))
