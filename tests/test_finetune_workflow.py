"""The README's fine-tuning walk-through through the real CLI: weights -> folder -> fit -> predict -> export."""

from __future__ import annotations

import ast
import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image

from resnet_lightning.cli import cli_main
from resnet_lightning.data import ImageFolderDataModule
from resnet_lightning.data.digit_images import make_digits
from resnet_lightning.export import read_metadata
from tests.fixtures_data import SAME_AS_SOURCE, UNREADABLE, write_mixed_images

RUN_NAME = "imagefolder-resnet18"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
DATA = ["--data", "ImageFolderDataModule", "--data.data_dir", "digits/labelled", "--data.image_size", "16",
        "--data.batch_size", "16", "--data.num_workers", "0"]
MODEL = ["--model.arch", "resnet18"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with digits/ (3 classes x 20 PNGs, 11 unlabelled) and a 2-epoch fine-tuned resnet18 run."""
    root = tmp_path_factory.mktemp("workflow")
    make_digits(root / "digits", classes=3, size=16, per_class=20, unlabelled=11)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), root / "resnet18.pth")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        cli_main(["fit", *DATA, *MODEL, "--model.weights", "resnet18.pth", "--model.freeze_backbone_epochs", "1",
                  "--model.backbone_lr_scale", "0.1", "--model.optimizer", "Adam", "--model.optimizer.lr", "0.003",
                  "--trainer.max_epochs", "2", *QUIET])
    finally:
        os.chdir(cwd)
    return root


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_fit_starts_from_the_weights_and_saves_the_class_names(fitted) -> None:
    checkpoint = torch.load(fitted / RUN_NAME / "version_0" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["ImageFolderDataModule"]["class_names"] == ["one", "two", "zero"]
    assert checkpoint["data_spec"]["input_shape"] == [3, 16, 16]
    weights = torch.load(fitted / "resnet18.pth", weights_only=True)
    state = checkpoint["state_dict"]
    # The fit trained from torchvision's tensors (the backbone moved, at a tenth of the head's rate, for one epoch).
    for key in ("conv1.weight", "layer4.1.conv2.weight"):
        assert (state[f"model.{key}"] - weights[key]).abs().max() < 0.1 * weights[key].abs().max()
    assert state["model.fc.weight"].shape == (3, 512)


def test_predict_writes_one_labelled_row_per_image(fitted, monkeypatch, capsys) -> None:
    monkeypatch.chdir(fitted)
    cli_main(["predict", *DATA, *MODEL, "--data.predict_path", "digits/unlabelled", *QUIET])
    written = fitted / RUN_NAME / "version_0" / "predict" / "version_0" / "predictions.csv"
    assert f"predictions written to {written}" in capsys.readouterr().err
    table = rows(written)
    images = sorted((fitted / "digits" / "unlabelled").iterdir())
    assert [Path(row["path"]).name for row in table] == [p.name for p in images]  # one row each, in order
    assert list(table[0]) == ["path", "label", "class_1", "prob_1", "class_2", "prob_2", "class_3", "prob_3", "error"]
    for row in table:
        assert row["label"] == "" and row["error"] == ""  # new images: no true class; all readable
        assert {row["class_1"], row["class_2"], row["class_3"]} == {"zero", "one", "two"}
        probs = [float(row[f"prob_{k}"]) for k in (1, 2, 3)]
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1, abs=1e-5)


def test_predicting_the_test_set_writes_the_true_class_too(fitted, monkeypatch, capsys) -> None:
    monkeypatch.chdir(fitted)
    cli_main(["predict", *DATA, *MODEL, *QUIET])  # no --data.predict_path: the test split
    written = Path(capsys.readouterr().err.split("predictions written to ")[-1].split()[0])
    table = rows(written)
    assert len(table) == 3 * 4  # of each class's 20: 2 for validation (0.1), 4 of the other 18 for testing (0.2)
    assert all(row["label"] == Path(row["path"]).parent.name for row in table)


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_export_matches_the_written_predictions(fitted, monkeypatch, capsys, fmt) -> None:
    monkeypatch.chdir(fitted)
    cli_main(["export", "--ckpt_path", "best", "--run", RUN_NAME, "--format", fmt, "--output", f"model.{fmt}"])
    message = capsys.readouterr().out
    assert f"wrote model.{fmt} ({fmt}, input [N, 3, 16, 16], 3 classes)" in message
    assert "max abs diff vs eager" in message
    metadata = read_metadata(fitted / f"model.{fmt}")
    checkpoint = torch.load(metadata["checkpoint"], map_location="cpu", weights_only=True)
    assert metadata["class_names"] == ["one", "two", "zero"] and metadata["input_shape"] == [3, 16, 16]
    assert metadata["mean"] == checkpoint["ImageFolderDataModule"]["mean"]
    # A user's own preprocessing from the metadata alone, then the exported model: the probabilities predict wrote.
    image = sorted((fitted / "digits" / "unlabelled").iterdir())[0]
    dm = ImageFolderDataModule(data_dir="digits/labelled", image_size=16, mean=metadata["mean"], std=metadata["std"])
    x = dm.eval_transform(Image.open(image).convert("RGB"))[None]  # (1, 3, 16, 16)
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(f"model.{fmt}", providers=["CPUExecutionProvider"])
        logits = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
    else:
        with torch.no_grad():
            logits = torch.export.load(f"model.{fmt}").module()(x)
    probs = logits.softmax(-1)[0]
    predictions = rows(next((fitted / RUN_NAME / "version_0" / "predict").glob("version_*/predictions.csv")))
    row = next(r for r in predictions if Path(r["path"]).name == image.name)
    assert metadata["class_names"][int(probs.argmax())] == row["class_1"]
    assert float(probs.max()) == pytest.approx(float(row["prob_1"]), abs=1e-5)


def predict_mixed(fitted: Path, capsys) -> tuple[Path, list[dict[str, str]], str]:
    """Predict ``mixed/`` (write_mixed_images: formats, modes, a corrupt and a text file) through the CLI."""
    mixed = fitted / "mixed"
    if not mixed.is_dir():
        write_mixed_images(mixed, min((fitted / "digits" / "unlabelled").iterdir()))
    cli_main(["predict", *DATA, *MODEL, "--data.predict_path", "mixed", *QUIET])
    err = capsys.readouterr().err
    written = Path(re.search(r"rows written to (\S+predictions\.csv)", err).group(1))
    return mixed, rows(written), err


def test_predict_gives_every_file_one_row_and_reads_every_mode_as_training(fitted, monkeypatch, capsys) -> None:
    monkeypatch.chdir(fitted)
    mixed, table, err = predict_mixed(fitted, capsys)
    assert [row["path"] for row in table] == [f"mixed/{p.name}" for p in sorted(mixed.iterdir())]  # one row per file
    by_name = {Path(row["path"]).name: row for row in table}
    for name in UNREADABLE:  # a row that says why, no classes
        assert by_name[name]["error"] and not by_name[name]["class_1"] and not by_name[name]["prob_1"]
    assert by_name["notes.txt"]["error"] == "not an image file PIL can read"
    assert by_name["truncated.png"]["error"].startswith("truncated or corrupt")
    last = err.strip().splitlines()[-1]
    assert f"{len(table)} rows written to" in last and f"{len(table) - 2} predictions and 2 file(s) that could not be read" in last
    assert "mixed/notes.txt: not an image file PIL can read" in last and "their error column says why" in last
    probabilities = lambda row: {row[f"class_{k}"]: float(row[f"prob_{k}"]) for k in (1, 2, 3)}
    for name in SAME_AS_SOURCE:  # the same pixels once read: the same probabilities
        assert probabilities(by_name[name]) == pytest.approx(probabilities(by_name["source.png"]), abs=2e-6), name
    for name in ("large.jpg", "one_bit.png"):
        assert by_name[name]["error"] == "" and sum(probabilities(by_name[name]).values()) == pytest.approx(1, abs=1e-5)


def readme_onnx_snippet() -> str:
    """The README's ONNX example: the Python block after the export command of 'Fine-tune on your own images'."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Fine-tune on your own images", 1)[1].split("\n## ", 1)[0]
    return section.split("resnet-lightning export --ckpt_path best", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_onnx_example_reproduces_predict(fitted, monkeypatch, capsys, tmp_path) -> None:
    """The README's code, run as it is on an export, gives predictions.csv's probabilities for files of every mode."""
    monkeypatch.chdir(fitted)
    mixed, table, _ = predict_mixed(fitted, capsys)
    cli_main(["export", "--ckpt_path", "best", "--run", RUN_NAME])  # where the README's code looks: the run's export/
    capsys.readouterr()
    metadata = read_metadata(next((fitted / RUN_NAME / "version_0" / "export").glob("*.onnx")))
    assert {k: metadata["preprocess"][k] for k in ("mode", "resize", "crop", "interpolation")} == {
        "mode": "RGB", "resize": 18, "crop": 16, "interpolation": "bilinear (PIL Image.resize with Image.BILINEAR, which antialiases)"
    }  # image_size 16: the shorter side to round(16 * 256 / 224), the centre 16 x 16
    assert metadata["preprocess"]["mean"] == metadata["mean"]
    # The README's paths, with digits/unlabelled/ holding the readable files of mixed/.
    (tmp_path / "digits" / "unlabelled").mkdir(parents=True)
    for path in mixed.iterdir():
        if path.name not in UNREADABLE:
            shutil.copy(path, tmp_path / "digits" / "unlabelled" / path.name)
    (tmp_path / RUN_NAME / "version_0").mkdir(parents=True)
    os.symlink(fitted / RUN_NAME / "version_0" / "export", tmp_path / RUN_NAME / "version_0" / "export")
    result = subprocess.run([sys.executable, "-c", readme_onnx_snippet()], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = {}
    for line in result.stdout.strip().splitlines():
        file, top, probs = line.split(" ", 2)
        printed[Path(file).name] = (top, dict(zip(metadata["class_names"], ast.literal_eval(probs))))
    expected = {Path(r["path"]).name: r for r in table if not r["error"]}
    assert sorted(printed) == sorted(expected)
    worst = 0.0
    for name, (top, probs) in printed.items():
        row = expected[name]
        assert top == row["class_1"], name
        for k in (1, 2, 3):
            worst = max(worst, abs(probs[row[f"class_{k}"]] - float(row[f"prob_{k}"])))
    assert worst < 1e-4, worst


def test_export_user_errors_are_one_line(fitted, monkeypatch, capsys) -> None:
    monkeypatch.chdir(fitted)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["export", "--ckpt_path", "missing.ckpt"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "missing.ckpt" in err and "\n" not in err
    (fitted / "other-run" / "version_0" / "checkpoints").mkdir(parents=True)
    (fitted / "other-run" / "version_0" / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit):
        cli_main(["export", "--ckpt_path", "best"])
    err = capsys.readouterr().err.strip()
    assert "needs --run" in err and RUN_NAME in err and "other-run" in err and "\n" not in err
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["export", "--ckpt_path", "best", "--run", RUN_NAME, "--format", "tflite"])
    assert exit_info.value.code == 2 and "invalid choice: 'tflite' (choose from 'onnx', 'pt2', 'safetensors')" in capsys.readouterr().err


def test_fit_with_unknown_weights_is_one_line(fitted, monkeypatch, capsys) -> None:
    monkeypatch.chdir(fitted)
    with pytest.raises(SystemExit):
        cli_main(["fit", *DATA, *MODEL, "--model.weights", "IMAGENET1K_V7", "--trainer.max_epochs", "1", *QUIET])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "unknown weights 'IMAGENET1K_V7' for resnet18; it offers IMAGENET1K_V1, DEFAULT" in err


@pytest.mark.slow
def test_ddp_predict_writes_each_image_once(fitted) -> None:
    """Two gloo processes split the 11 images 6/5; rank zero merges their parts into one file."""
    result = subprocess.run(
        [sys.executable, "-m", "resnet_lightning", "predict", *DATA, *MODEL, "--data.predict_path", "digits/unlabelled",
         "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp", *QUIET,
         "--verbose"],  # Lightning's "MEMBER: 2/2" notice, hidden by default
        cwd=fitted, capture_output=True, text=True, timeout=300, env=dict(os.environ, WANDB_MODE="offline"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = sorted((fitted / RUN_NAME / "version_0" / "predict").glob("version_*/predictions.csv"))[-1]
    assert "MEMBER: 2/2" in result.stderr + result.stdout
    table = rows(written)
    assert sorted(Path(r["path"]).name for r in table) == sorted(p.name for p in (fitted / "digits" / "unlabelled").iterdir())
    assert [r["path"] for r in table] == sorted(r["path"] for r in table)  # merged in dataset order
    assert {r["class_1"] for r in table} <= {"zero", "one", "two"}
    assert not list(written.parent.glob("predictions.rank*.csv"))  # the parts are merged away
