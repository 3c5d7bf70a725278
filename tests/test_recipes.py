"""The modern recipe's model-side tricks: MixUp/CutMix, EMA of the weights, flip TTA, and the recipe configs.

Real fits through the real CLI on scikit-learn's digits, tiny and on the CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from resnet_lightning.cli import cli_main
from resnet_lightning.data import DigitsDataModule
from resnet_lightning.data.augment import BatchMix
from resnet_lightning.module import ResNetClassifier
from tests.fixtures_cli import DIGITS, ROOT, RUN_NAME, run_cli

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--trainer.logger", "false"]
TINY = ["--config", DIGITS, "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}", *QUIET]


def _start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "resnet_lightning", *args],
        cwd=cwd, env=dict(os.environ, **(env or {})), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


# --- MixUp / CutMix -------------------------------------------------------------------------------


@pytest.mark.parametrize(("mixup", "cutmix"), [(0.2, 0.0), (0.0, 1.0), (0.2, 1.0)])
def test_mixed_targets_are_distributions_over_the_classes(mixup: float, cutmix: float) -> None:
    images, labels = torch.rand(16, 3, 12, 12), torch.arange(16) % 10
    mix = BatchMix(10, mixup, cutmix)
    mixed, targets = mix(images, labels, (3, 0, 0))
    assert mixed.shape == images.shape and targets.shape == (16, 10)
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(16))
    assert (targets >= 0).all() and not torch.equal(mixed, images)
    # Each row mixes the sample's own label with its neighbour's (torchvision rolls the batch by one).
    assert (targets.gather(1, labels[:, None]) > 0).all()


def test_mixing_draws_from_the_step_not_from_the_global_generator() -> None:
    images, labels = torch.rand(8, 1, 8, 8), torch.arange(8)
    mix = BatchMix(10, 0.2, 1.0)
    torch.manual_seed(1)
    before = torch.get_rng_state()
    first = mix(images, labels, (0, 2, 5))
    assert torch.equal(torch.get_rng_state(), before)  # the global generator is left where it was
    torch.manual_seed(999)  # whatever else drew in between, the same step mixes the same way
    again = mix(images, labels, (0, 2, 5))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    others = [mix(images, labels, (0, 2, b))[1] for b in range(6, 10)]
    assert not all(torch.equal(first[1], other) for other in others)


def test_fit_with_mixup_and_cutmix_finishes_on_digits(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = cli_main(["fit", *TINY, "--model.mixup_alpha", "0.2", "--model.cutmix_alpha", "1.0", "--model.label_smoothing",
                    "0.1", "--trainer.max_epochs", "2"])
    metrics = cli.trainer.callback_metrics
    assert cli.trainer.global_step == 2 * cli.trainer.num_training_batches
    assert torch.isfinite(metrics["train/loss"]) and 0 <= metrics["train/acc"] <= 1
    assert metrics["val/acc"] > 0.3  # it learns through the mixing (chance is 0.1)


def test_negative_alpha_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *TINY, "--model.cutmix_alpha", "-1", "--trainer.fast_dev_run", "true"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "error: cutmix_alpha=-1.0 must be >= 0" in err and "--model.cutmix_alpha" in err
    assert "Traceback" not in err


# --- EMA ------------------------------------------------------------------------------------------


def _accuracy(model: ResNetClassifier, state: dict, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        return (model(images).argmax(-1) == labels).float().mean().item()


def test_ema_weights_differ_from_the_raw_ones_and_are_the_ones_validated(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    cli = cli_main(["fit", *TINY, "--model.ema_decay", "0.9", "--trainer.max_epochs", "2"])
    assert "val/acc, checkpoints, test and export use the averaged weights" in capsys.readouterr().err
    last = load(tmp_path / RUN_NAME / "version_0" / "checkpoints" / "last.ckpt")
    averaged, raw = last["state_dict"], last["current_model_state"]
    assert last["averaging_state"]["n_averaged"] == cli.trainer.global_step
    assert not torch.equal(averaged["model.fc.weight"], raw["model.fc.weight"])
    # After the fit the model holds the average: what test and export get.
    torch.testing.assert_close(cli.model.state_dict()["model.fc.weight"], averaged["model.fc.weight"], rtol=0, atol=0)

    digits = DigitsDataModule()
    digits.setup("fit")
    images, labels = digits.val_set.tensors
    model = ResNetClassifier.load_from_checkpoint(tmp_path / RUN_NAME / "version_0" / "checkpoints" / "last.ckpt")
    metrics = cli.trainer.callback_metrics
    assert metrics["val/acc"].item() == pytest.approx(_accuracy(model, averaged, images, labels), abs=1e-6)
    assert metrics["val/acc_raw"].item() == pytest.approx(_accuracy(model, raw, images, labels), abs=1e-6)

    test = cli_main(["test", *TINY, "--ckpt_path", "last"])
    assert "test: evaluating the checkpoint's EMA (averaged) weights" in capsys.readouterr().err
    torch.testing.assert_close(test.model.state_dict()["model.fc.weight"], averaged["model.fc.weight"], rtol=0, atol=0)


SIGNALLER = """
import os
import lightning as L

class SignalAtStep(L.Callback):
    def __init__(self, step: int):
        self.step = step
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), 15)
"""


@pytest.mark.slow
def test_stopped_and_resumed_fit_with_ema_and_mixing_is_bit_identical(tmp_path) -> None:
    """SIGTERM mid-epoch (on_device data resumes at the exact batch), continue, compare with an uninterrupted fit."""
    fit = ["fit", *TINY, "--trainer.max_epochs", "2", "--data.on_device", "true", "--model.ema_decay", "0.9",
           "--model.mixup_alpha", "0.2", "--model.cutmix_alpha", "1.0"]
    (tmp_path / "signaller.py").write_text(SIGNALLER)
    (tmp_path / "signal.yaml").write_text(
        "trainer:\n  callbacks:\n    - class_path: signaller.SignalAtStep\n      init_args: {step: 27}\n"
    )
    env = {"PYTHONPATH": str(tmp_path)}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # The uninterrupted and the stopped fit side by side (two processes, one core each).
    reference = _start(*fit, cwd=tmp_path / "a")
    stopped = _start(*fit, "--config", str(tmp_path / "signal.yaml"), cwd=tmp_path / "b", env=env)
    assert reference.wait(timeout=300) == 0, reference.stderr.read()[-3000:]
    assert stopped.wait(timeout=300) == 143, stopped.stderr.read()[-3000:]
    last = tmp_path / "b" / RUN_NAME / "version_0" / "checkpoints" / "last.ckpt"
    assert load(last)["global_step"] == 27  # mid-epoch 2
    resumed = run_cli(*fit, "--ckpt_path", "last", cwd=tmp_path / "b", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    expected = load(tmp_path / "a" / RUN_NAME / "version_0" / "checkpoints" / "last.ckpt")
    actual = load(last)
    assert actual["global_step"] == expected["global_step"] == 40
    assert actual["averaging_state"]["n_averaged"] == expected["averaging_state"]["n_averaged"]
    for key in ("state_dict", "current_model_state"):  # the average and the raw weights
        for name, tensor in expected[key].items():
            torch.testing.assert_close(actual[key][name], tensor, rtol=0, atol=0, msg=f"{key}: {name}")


# --- TTA ------------------------------------------------------------------------------------------


def test_flip_tta_averages_the_probabilities_of_the_image_and_its_mirror() -> None:
    torch.manual_seed(0)
    model = ResNetClassifier(arch="cifar_resnet", arch_kwargs={"depth": 8}, in_channels=1, tta_flip=True).eval()
    images = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        expected = (model(images).softmax(-1) + model(images.flip(-1)).softmax(-1)) / 2
        torch.testing.assert_close(model._evaluate(images).exp(), expected)
        torch.testing.assert_close(model.predict_step(images, 0), expected)
        symmetric = images + images.flip(-1)  # a mirror-symmetric image: TTA changes nothing
        torch.testing.assert_close(model._evaluate(symmetric).softmax(-1), model(symmetric).softmax(-1))


# --- Recipes as configs ---------------------------------------------------------------------------


def _printed_config(capsys, *args: str) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", *args, "--print_config"])
    assert exit_info.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_print_config_of_the_v2_recipe_shows_torchvisions_command(capsys) -> None:
    config = _printed_config(capsys, "--config", str(ROOT / "configs" / "recipes" / "resnet50_tv_v2.yaml"))
    model, data, trainer = config["model"], config["data"]["init_args"], config["trainer"]
    assert model["arch"] == "resnet50"
    assert model["optimizer"]["class_path"] == "torch.optim.SGD"
    assert model["optimizer"]["init_args"]["lr"] == 0.5 and model["optimizer"]["init_args"]["weight_decay"] == 2e-5
    assert model["no_weight_decay_on_norm_and_bias"] is True
    assert trainer["max_epochs"] == 600 and model["warmup"] == 5 and model["lr_scheduler_interval"] == "epoch"
    assert model["lr_scheduler"]["class_path"] == "torch.optim.lr_scheduler.CosineAnnealingLR"
    assert model["lr_scheduler"]["init_args"]["T_max"] == 595  # cosine over the epochs after warm-up
    assert (model["label_smoothing"], model["mixup_alpha"], model["cutmix_alpha"]) == (0.1, 0.2, 1.0)
    assert model["ema_decay"] > 0 and model["ema_every_n_steps"] == 32 and model["ema_start_epoch"] == 5
    assert config["data"]["class_path"] == "resnet_lightning.data.ImageNetDataModule"
    assert (data["auto_augment"], data["random_erasing"]) == ("trivialaugment", 0.1)
    assert (data["train_crop_size"], data["eval_resize_size"], data["eval_crop_size"]) == (176, 232, 224)
    assert data["batch_size"] * trainer["devices"] == 1024
    assert data["repeated_augmentation"] == 4  # --ra-sampler --ra-reps 4


def test_the_cifar_recipe_parses_with_its_tricks(capsys) -> None:
    config = _printed_config(capsys, "--config", str(ROOT / "configs" / "recipes" / "cifar10_modern.yaml"))
    assert config["data"]["init_args"]["auto_augment"] == "trivialaugment" and config["data"]["init_args"]["on_device"]
    assert config["model"]["ema_decay"] > 0 and config["model"]["mixup_alpha"] > 0
