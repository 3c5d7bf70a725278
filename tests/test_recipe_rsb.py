"""configs/recipes/resnet50_rsb_a2.yaml: every value of "ResNet strikes back" A2 (Wightman et al. 2021, Table 1)
that the project has an option for, read back through the real CLI's --print_config; and the recipe's tricks
together in a tiny real fit on digits."""

from __future__ import annotations

import pytest
import torch
import yaml

from resnet_lightning.cli import cli_main
from tests.fixtures_cli import DIGITS, ROOT

RECIPE = str(ROOT / "configs" / "recipes" / "resnet50_rsb_a2.yaml")


def test_print_config_of_the_a2_recipe_has_every_value_of_table_1(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--config", RECIPE, "--print_config"])
    assert exit_info.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    model, data, trainer = config["model"], config["data"]["init_args"], config["trainer"]
    optimizer, scheduler = model["optimizer"], model["lr_scheduler"]
    assert model["arch"] == "resnet50" and model["arch_kwargs"] == {"drop_path_rate": 0.05}  # stochastic depth 0.05
    assert model["block"] is None and model["weights"] is None  # a plain ResNet-50, from scratch
    # LAMB is not in torch: AdamW with LAMB's values (the recipe's header says so).
    assert optimizer["class_path"] == "torch.optim.AdamW"
    assert (optimizer["init_args"]["lr"], optimizer["init_args"]["weight_decay"]) == (5e-3, 0.02)
    assert model["no_weight_decay_on_norm_and_bias"] is True
    assert trainer["max_epochs"] == 300 and model["warmup"] == 5 and model["lr_scheduler_interval"] == "epoch"
    assert scheduler["class_path"] == "torch.optim.lr_scheduler.CosineAnnealingLR"
    assert scheduler["init_args"]["T_max"] == 300 - 5
    assert data["batch_size"] * trainer["devices"] == 2048 and trainer["strategy"] == "ddp"
    assert (model["loss"], model["bce_target_threshold"]) == ("bce", 0.2)
    assert (model["label_smoothing"], model["mixup_alpha"], model["cutmix_alpha"]) == (0.0, 0.1, 1.0)
    assert (model["ema_decay"], model["swa_lrs"], model["distill"]) == (0.0, None, None)  # A2: no EMA, no SWA
    assert data["repeated_augmentation"] == 3
    assert (data["auto_augment"], data["random_erasing"]) == ("randaugment", 0.0)
    assert (data["image_size"], data["train_crop_size"]) == (224, None)  # train at 224
    assert data["eval_crop_size"] == 224 and round(data["eval_crop_size"] / data["eval_resize_size"], 2) == 0.95
    assert trainer["precision"] == "16-mixed"
    assert trainer["gradient_clip_val"] is None


def test_the_recipes_tricks_train_together_on_digits(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = cli_main([
        "fit", "--config", DIGITS, "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8, drop_path_rate: 0.05}",
        "--model.loss", "bce", "--model.bce_target_threshold", "0.2", "--model.mixup_alpha", "0.1",
        "--model.cutmix_alpha", "1.0", "--model.no_weight_decay_on_norm_and_bias", "true",
        "--data.repeated_augmentation", "3", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3",
        "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
    ])
    assert cli.trainer.global_step == 3
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])
    assert type(cli.trainer.train_dataloader.sampler.epochs).__name__ == "RepeatedAugmentationSampler"
