"""The loader options every DataModule passes to ``BaseDataModule`` through ``**kwargs``.

They are declared once, in ``BaseDataModule.__init__``; jsonargparse follows
``super().__init__(**kwargs)`` to find them, so the command line, its help and the
saved hyperparameters must still have each of them, with the right class's default.
"""

from __future__ import annotations

import pytest

from resnet_lightning.cli import cli_main
from resnet_lightning.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DigitsDataModule,
    ImageNetDataModule,
    MNISTDataModule,
)

LOADER = ("batch_size", "num_workers", "pin_memory", "persistent_workers")
ARRAY = ("data_dir", "download", "val_size", "seed")


def _data_help(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--data.help", name])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def _entry(text: str, option: str) -> str:
    """The help of ``--data.OPTION`` in ``text`` (whitespace collapsed), up to the next option."""
    after = text.split(f"--data.{option} {option.upper()} ", 1)[1] if option.upper() in text else ""
    if not after:
        after = text.split(f"--data.{option} {{true,false,null}} ", 1)[1]
    return after.split(" --data.", 1)[0].strip()


@pytest.mark.parametrize(
    ("name", "own", "batch_size", "num_workers", "on_device"),
    [
        ("CIFAR10DataModule", ARRAY, 128, 4, True),
        ("CIFAR100DataModule", ARRAY, 128, 4, True),
        ("MNISTDataModule", ARRAY, 128, 4, True),
        ("DigitsDataModule", ("val_fraction", "test_fraction", "seed"), 64, 0, True),
        ("ImageNetDataModule", ("data_dir", "image_size", "num_classes"), 32, 8, False),
        ("ImageFolderDataModule", ("data_dir", "val_fraction", "test_fraction", "seed", "image_size", "auto_augment"),
         128, 4, True),
    ],
)
def test_help_lists_the_options_passed_on_through_kwargs(
    name: str, own: tuple[str, ...], batch_size: int, num_workers: int, on_device: bool, capsys
) -> None:
    text = " ".join(_data_help(name, capsys).split())  # argparse wraps the help text
    for option in (*own, *LOADER):
        assert f"--data.{option} " in text, f"--data.{option} missing from {name}'s help"
    # The defaults are the subclass's where it names the option, the base class's
    # otherwise, and each option has its docstring help (BaseDataModule's, or the subclass's).
    assert _entry(text, "batch_size").startswith("Samples per batch, per device")
    assert _entry(text, "batch_size").endswith(f"(type: int, default: {batch_size})")
    assert _entry(text, "num_workers").startswith("Loader worker processes")
    assert _entry(text, "num_workers").endswith(f"(type: int, default: {num_workers})")
    assert _entry(text, "persistent_workers").startswith("Keep workers alive between epochs")
    # ImageNet passes on_device=False itself, so jsonargparse must not offer it.
    assert ("--data.on_device" in text) is on_device


def test_a_named_image_folder_starts_from_its_own_defaults(capsys) -> None:
    # ImageFolderDataModule's split options share their names with DigitsDataModule's (the default
    # --data): the CLI starts a named class from its own defaults (jsonargparse#460), so its defaults
    # need not copy Digits'. Its loader options differ from Digits' and show which class's were used.
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--data", "ImageFolderDataModule", "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "class_path: resnet_lightning.data.ImageFolderDataModule" in printed
    for line in ("data_dir: data/images", "val_fraction: 0.1", "test_fraction: 0.2", "seed: 42",
                 "batch_size: 128", "num_workers: 4"):
        assert f"    {line}\n" in printed, line


def test_command_line_values_reach_the_base_class_and_the_hyperparameters(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    # on_device and pin_memory reach BaseDataModule only through DigitsDataModule's **kwargs.
    cli = cli_main(
        ["fit", "--data.batch_size", "7", "--data.on_device", "true", "--data.pin_memory", "false",
         "--data.val_fraction", "0.2", "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}",
         "--trainer.fast_dev_run", "1", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
         "--trainer.enable_model_summary", "false"]
    )
    data = cli.datamodule
    assert isinstance(data, DigitsDataModule)
    assert (data.batch_size, data.on_device, data.pin_memory, data.val_fraction) == (7, True, False, 0.2)
    assert {k: data.hparams[k] for k in ("batch_size", "on_device", "pin_memory", "num_workers")} == {
        "batch_size": 7, "on_device": True, "pin_memory": False, "num_workers": 0,
    }
    assert cli.trainer.train_dataloader.batch_size == 7  # DeviceBatches, as on_device asks


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (CIFAR10DataModule, {"data_dir": "data", "val_size": 5000, "seed": 42, "batch_size": 128, "num_workers": 4}),
        (CIFAR100DataModule, {"data_dir": "data", "val_size": 5000, "batch_size": 128, "on_device": False}),
        (MNISTDataModule, {"download": False, "batch_size": 128, "pin_memory": None, "persistent_workers": None}),
        (DigitsDataModule, {"val_fraction": 0.1, "test_fraction": 0.2, "batch_size": 64, "num_workers": 0}),
    ],
)
def test_hyperparameters_record_every_option_with_its_default(cls: type, expected: dict) -> None:
    # Built from Python with no arguments: the options a subclass passes on unseen in
    # **kwargs are still recorded, with the defaults they took.
    hparams = dict(cls().hparams)
    assert {key: hparams.get(key, "<missing>") for key in expected} == expected
    assert set(LOADER) | {"on_device"} <= set(hparams)


def test_imagenet_records_its_own_defaults_and_no_on_device(tmp_path) -> None:
    hparams = dict(ImageNetDataModule(data_dir=str(tmp_path), pin_memory=False).hparams)
    assert hparams["batch_size"] == 32 and hparams["num_workers"] == 8 and hparams["pin_memory"] is False
    assert "kwargs" not in hparams
    with pytest.raises(TypeError, match="on_device"):
        ImageNetDataModule(data_dir=str(tmp_path), on_device=True)


def test_a_logger_gets_the_models_hyperparameters_and_not_the_datamodules(tmp_path) -> None:
    # save_hyperparameters(logger=False): the CLI logs the whole config itself, and a
    # merge with the model's would fail on a key both have with other values.
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from resnet_lightning import ResNetClassifier

    model = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, num_classes=10, in_channels=1)
    trainer = L.Trainer(
        max_steps=1, limit_val_batches=0, logger=CSVLogger(tmp_path), enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False,
    )
    trainer.fit(model, datamodule=DigitsDataModule(batch_size=13))
    logged = (tmp_path / "lightning_logs" / "version_0" / "hparams.yaml").read_text()
    assert "arch: cifar_resnet" in logged
    assert "batch_size" not in logged and "val_fraction" not in logged
