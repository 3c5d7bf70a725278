"""safetensors and the Hub layout: save_pretrained / export --format safetensors, from_pretrained, hf-hub:."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from resnet_lightning import create_model, from_pretrained, refresh_plugins, save_pretrained
from resnet_lightning.cli import cli_main
from resnet_lightning.hub import PretrainedError
from resnet_lightning.models.pretrained import WeightsError
from resnet_lightning.registry import PLUGINS_ENV
from tests.fixtures_cli import DIGITS, RUN_NAME
from tests.project_plugins import project_entries
from tests.test_export import DEPTH_PRESETS, EXPORT_CASES

TINY = ["--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}", "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false"]


def _case(arch: str) -> dict:
    return EXPORT_CASES.get(arch) or EXPORT_CASES[DEPTH_PRESETS[arch]]


@pytest.mark.parametrize("arch", sorted(set(project_entries("architecture")) & (set(EXPORT_CASES) | set(DEPTH_PRESETS))))
def test_round_trip_gives_identical_logits(arch: str, tmp_path: Path) -> None:
    model = create_model(arch, num_classes=3, **_case(arch)).eval()
    for module in model.modules():  # running statistics other than the initial ones, so that they must travel too
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    in_channels = model.conv1.in_channels
    save_pretrained(model, tmp_path, arch=arch, arch_kwargs=_case(arch), num_classes=3, in_channels=in_channels)
    loaded = from_pretrained(tmp_path).eval()
    x = torch.randn(2, in_channels, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "config.json", "model.safetensors"]


def test_resnet_d_with_blur_pool_round_trips(tmp_path: Path) -> None:
    options = dict(widths=(8, 16, 32, 64), stem="deep", avg_down=True, blur_pool=True)
    model = create_model("resnet50", num_classes=3, **options).eval()
    save_pretrained(model, tmp_path, arch="resnet50", arch_kwargs=options, num_classes=3, in_channels=3)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(from_pretrained(tmp_path).eval()(x), model(x))


def test_a_plugin_architecture_names_its_package_when_it_is_not_installed(tmp_path: Path, monkeypatch) -> None:
    model = create_model("se_resnet18", num_classes=3, **EXPORT_CASES["se_resnet18"])
    save_pretrained(model, tmp_path, arch="se_resnet18", arch_kwargs=EXPORT_CASES["se_resnet18"], num_classes=3, in_channels=3)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["providers"]["architecture"]["distribution"] == "se-resnet" and "se-resnet" in config["packages"]
    monkeypatch.setenv(PLUGINS_ENV, "wide-resnet")  # se-resnet's entry points are not found, as if it were uninstalled
    refresh_plugins()
    try:
        with pytest.raises(PretrainedError, match=r"names architecture 'se_resnet18', from the package se-resnet \S+, "
                           r"which is not installed here: pip install se-resnet==\S+, then load it again"):
            from_pretrained(tmp_path)
    finally:
        monkeypatch.delenv(PLUGINS_ENV)
        refresh_plugins()


def _saved(tmp_path: Path) -> Path:
    model = create_model("cifar_resnet", depth=8, num_classes=3)
    return save_pretrained(model, tmp_path / "saved", arch="cifar_resnet", arch_kwargs={"depth": 8}, num_classes=3, in_channels=3)


def test_a_directory_without_its_config_is_one_line(tmp_path: Path) -> None:
    directory = _saved(tmp_path)
    (directory / "config.json").unlink()
    with pytest.raises(PretrainedError, match=r"saved has no config.json \(what builds the network\); .* write it again"):
        from_pretrained(directory)


def test_another_architectures_tensors_are_one_line(tmp_path: Path) -> None:
    directory = _saved(tmp_path)
    other = create_model("cifar_resnet", depth=14, num_classes=3)
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, directory / "model.safetensors")
    with pytest.raises(PretrainedError, match=r"model.safetensors does not hold the tensors of the cifar_resnet its config.json "
                       r"describes \(.*unexpected: layer1.1.*the files come from two different models"):
        from_pretrained(directory)


def test_a_new_head_and_channels_as_weights_does(tmp_path: Path) -> None:
    directory = _saved(tmp_path)
    model = from_pretrained(directory, num_classes=5, in_channels=1)
    assert model.fc.out_features == 5 and model.conv1.in_channels == 1
    saved = load_file(directory / "model.safetensors")
    assert torch.equal(model.layer3[0].conv1.weight, saved["layer3.0.conv1.weight"])
    backbone = from_pretrained(directory, features_only=True, out_indices=(2, 3))
    assert backbone.feature_info.channels() == [32, 64]


def test_the_hub_path_without_the_network_is_one_line(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network here: the empty cache answers
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(PretrainedError, match=r"cannot fetch hf-hub:someone/resnet-digits from the Hugging Face Hub"):
        create_model("hf-hub:someone/resnet-digits")


def test_export_safetensors_from_a_fit_reloads_to_the_same_logits(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    cli = cli_main(["fit", "--config", DIGITS, *TINY])
    capsys.readouterr()
    cli_main(["export", "--ckpt_path", "last", "--run", RUN_NAME, "--format", "safetensors"])
    directory = Path(cli.trainer.log_dir) / "export" / "last"
    assert (f"wrote {directory} (model.safetensors, config.json, README.md; cifar_resnet, input [N, 1, 8, 8], 10 classes)"
            in capsys.readouterr().out)
    config = json.loads((directory / "config.json").read_text())
    assert config["arch_kwargs"] == {"depth": 8} and config["label_names"] == [str(d) for d in range(10)]
    assert config["pretrained_cfg"]["input_size"] == [1, 8, 8] and config["pretrained_cfg"]["mean"] is not None
    card = (directory / "README.md").read_text()
    assert "library_name: resnet-lightning" in card and "| best val/acc |" in card and "| optimizer |" in card
    assert f"# {RUN_NAME} (version_0, last.ckpt)" in card and "| class | resnet_lightning.data.DigitsDataModule |" in card
    network = cli.model.model.eval()
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(from_pretrained(directory).eval()(x), network(x))
    (tmp_path / "taken").write_text("")
    with pytest.raises(SystemExit) as exited:
        cli_main(["export", "--ckpt_path", "last", "--run", RUN_NAME, "--format", "safetensors", "--output", "taken"])
    assert exited.value.code == 1
    assert capsys.readouterr().err.strip() == (
        "resnet-lightning: error: export: --output taken is a file; --format safetensors writes a directory: name a new one"
    )


def test_weights_from_a_hub_directory_or_a_safetensors_file(tmp_path: Path) -> None:
    directory = _saved(tmp_path)
    saved = load_file(directory / "model.safetensors")
    for weights in (directory, directory / "model.safetensors"):  # --model.weights DIR fine-tunes from it
        model = create_model("cifar_resnet", depth=8, num_classes=5, weights=weights)
        assert torch.equal(model.layer3[0].conv2.weight, saved["layer3.0.conv2.weight"]) and model.fc.out_features == 5
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(WeightsError, match=r"weights file .*broken.safetensors is not a safetensors file"):
        create_model("cifar_resnet", depth=8, weights=tmp_path / "broken.safetensors")
