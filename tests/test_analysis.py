"""The analyses: shattered gradients, lesion study, degradation curves, and their command."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from resnet_lightning import ResNetClassifier, create_model
from resnet_lightning.analysis import lesion_study, residual_blocks, shattered_gradients
from resnet_lightning.analysis.command import main
from resnet_lightning.analysis.degradation import read_curves
from resnet_lightning.analysis.lesion import accuracy, deleted, replacements
from resnet_lightning.analysis.shattered import (
    LineNet,
    autocorrelation,
    input_gradients,
)
from resnet_lightning.callbacks import ErrorRateMonitor, GradientFlowMonitor
from resnet_lightning.cli import cli_main
from resnet_lightning.data import DigitsDataModule
from resnet_lightning.errors import UsageError
from resnet_lightning.tracking import read_offline_run

ROOT = Path(__file__).resolve().parents[1]


def test_autocorrelation_tells_white_from_brown_noise() -> None:
    generator = torch.Generator().manual_seed(0)
    white = torch.randn(4096, generator=generator)
    brown = white.cumsum(0)
    assert abs(autocorrelation(white, 1)[1]) < 0.05
    assert autocorrelation(brown, 1)[1] > 0.95
    assert autocorrelation(white, 3)[0] == pytest.approx(1.0)


def test_input_gradients_are_per_input_and_match_finite_differences() -> None:
    torch.manual_seed(0)
    net = LineNet(depth=4, residual=True, width=32).double()
    x = torch.linspace(-2, 2, 64, dtype=torch.float64).unsqueeze(1)
    grads = input_gradients(net, x)  # leaves the net in eval mode with the batch's BN statistics
    h = 1e-6
    with torch.no_grad():
        finite = ((net(x + h) - net(x - h)) / (2 * h)).flatten()
    # Piecewise linear: equal except where a ReLU kink lies within h of an input.
    assert (torch.isclose(grads, finite, rtol=1e-4, atol=1e-6)).float().mean() > 0.95


def test_gradients_shatter_in_deep_feed_forward_nets_not_in_resnets() -> None:
    # Balduzzi et al. 2017, Fig. 1-2: brown noise when shallow, white noise at depth 24
    # without skip connections, far more correlation with them.
    shallow, feed_forward, residual = shattered_gradients(seeds=6, max_lag=4)
    assert shallow.lag1 > 0.8
    assert abs(feed_forward.lag1) < 0.15
    assert residual.lag1 > feed_forward.lag1 + 0.2
    assert residual.gradients.shape == (6, 256) and residual.correlation.shape == (256, 256)


def test_deleting_blocks_is_undone_and_deletes_exactly_the_branch() -> None:
    # Zero-initialised branches output zero, so deleting any block (identity or zero-padding
    # shortcut, whose input is already non-negative) must leave the outputs exactly unchanged.
    torch.manual_seed(0)
    net = create_model("cifar_resnet", depth=14, num_classes=10, in_channels=1, zero_init_residual=True).eval()
    x = torch.randn(8, 1, 8, 8)
    before = net(x)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    replace = replacements(net, x)
    assert sorted(replace) == list(range(6))
    with deleted(net, range(6), replace):
        assert len(residual_blocks(net)) == 6 and torch.allclose(net(x), before, atol=1e-6)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    torch.nn.init.normal_(residual_blocks(net)[2].bn2.weight)  # block 2's branch is live now
    assert not torch.allclose(net(x), before, atol=1e-4)
    with deleted(net, [2], replace):  # ... and deleting it gives the all-zero-branch network back
        assert torch.allclose(net(x), before, atol=1e-6)


def test_plain_nets_keep_their_shape_changing_blocks() -> None:
    plain = create_model("cifar_plain20", num_classes=10, in_channels=1)
    assert sorted(replacements(plain, torch.randn(2, 1, 8, 8))) == [0, 1, 2, 4, 5, 7, 8]
    with pytest.raises(ValueError, match="no blocks\\(\\) method"):
        replacements(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), torch.randn(2, 1, 8, 8))


def _fit_digits(tmp_path, arch: str, epochs: int, **trainer_kwargs) -> ModelCheckpoint:
    L.seed_everything(0, verbose=False)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / arch, save_last=True)
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=epochs, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[checkpoint, ErrorRateMonitor(), GradientFlowMonitor(every_n_steps=10)],
        logger=CSVLogger(tmp_path / "logs", name=arch), log_every_n_steps=5, **trainer_kwargs,
    )
    model = ResNetClassifier(arch=arch, arch_kwargs={"depth": 14}, num_classes=10, in_channels=1)
    trainer.fit(model, DigitsDataModule())
    return checkpoint


@pytest.fixture(scope="module")
def digits_checkpoints(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("lesion")
    return {arch: _fit_digits(root, arch, epochs=6) for arch in ("cifar_resnet", "cifar_plain")} | {"root": root}


@pytest.mark.slow
def test_lesion_degrades_resnets_smoothly_and_breaks_plain_nets(digits_checkpoints) -> None:
    # Veit et al. 2016, Sec. 4: deleting one block of a ResNet costs little on average;
    # deleting one layer of a plain net drops it to about chance.
    datamodule = DigitsDataModule()
    datamodule.setup("test")
    batches = list(datamodule.test_dataloader())
    results = {}
    for arch in ("cifar_resnet", "cifar_plain"):
        module = ResNetClassifier.load_from_checkpoint(digits_checkpoints[arch].last_model_path)
        results[arch] = lesion_study(module.model, batches, arch, max_removed=3, trials=3)
        assert results[arch].baseline == pytest.approx(accuracy(module.model, batches))
    resnet, plain = results["cifar_resnet"], results["cifar_plain"]
    assert resnet.baseline > 0.9 and plain.baseline > 0.8, (resnet.baseline, plain.baseline)
    mean = lambda values: sum(values) / len(values)
    assert mean(list(resnet.single.values())) > resnet.baseline - 0.25
    assert mean(list(plain.single.values())) < 0.4
    assert mean(resnet.random[1]) > mean(resnet.random[3])  # more deleted, lower accuracy


@pytest.mark.slow
def test_analyze_command_writes_png_csv_json(digits_checkpoints, tmp_path, capsys) -> None:
    paths = [str(digits_checkpoints[a].last_model_path) for a in ("cifar_resnet", "cifar_plain")]
    main(["lesion", "--ckpt_path", *paths, "--max_removed", "2", "--trials", "2", "--output_dir", str(tmp_path / "l")])
    summary = json.loads((tmp_path / "l" / "lesion.json").read_text())
    assert set(summary) == {"cifar_resnet", "cifar_plain"}
    with open(tmp_path / "l" / "lesion.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    removable = sum(len(s["removable_blocks"]) for s in summary.values())
    assert len(rows) == 2 * (1 + 2 * 2) + removable  # baselines, k=1..2 x 2 trials, single deletions
    assert (tmp_path / "l" / "lesion.png").stat().st_size > 10_000

    logs = [digits_checkpoints["root"] / "logs" / a / "version_0" for a in ("cifar_resnet", "cifar_plain")]
    main(["degradation", "--runs", *map(str, logs), "--output_dir", str(tmp_path / "d")])
    curves = read_curves(logs[1])
    assert curves.label == "cifar_plain" and not curves.residual and len(curves.val) == 6 and len(curves.train) == 6
    main(["gradient_flow", "--runs", *map(str, logs), "--output_dir", str(tmp_path / "g")])
    for name in ("d/degradation", "g/gradient_flow"):
        assert (tmp_path / f"{name}.png").is_file() and (tmp_path / f"{name}.csv").is_file()
    captured = capsys.readouterr()
    assert "lesion: wrote" in captured.out
    assert re.search(r"^resnet-lightning: lesion cifar_resnet: (\d+)/\1 evaluations \(", captured.err, re.M), captured.err


def test_lesion_command_rejects_data_of_another_shape(digits_checkpoints, tmp_path) -> None:
    path = str(digits_checkpoints["cifar_resnet"].last_model_path)
    with pytest.raises(ValueError, match="1 input channels and 10 classes, but CIFAR10DataModule has 3 and 10"):
        main(["lesion", "--ckpt_path", path, "--data", "CIFAR10DataModule", "--data.data_dir", str(tmp_path),
              "--output_dir", str(tmp_path)])


def test_shattered_command_logs_to_an_offline_wandb_run(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    main(["shattered", "--depth", "6", "--width", "32", "--points", "64", "--seeds", "2", "--max_lag", "4",
          "--output_dir", "out", "--wandb", "true"])
    assert json.loads((tmp_path / "out" / "shattered.json").read_text())["residual, 6 layers"]["depth"] == 6
    (run_dir,) = (tmp_path / "out" / "wandb").glob("offline-run-*")
    run = read_offline_run(run_dir)
    assert run.job_type == "analysis" and run.config["depth"] == 6
    assert {"analysis/shattered", "analysis/shattered_table"} <= run.metric_keys()


SHATTERED = ["shattered", "--depth", "2", "--width", "8", "--points", "16", "--seeds", "20", "--max_lag", "2"]


def test_shattered_shows_progress_in_ten_lines_in_a_log(tmp_path, capsys) -> None:
    main([*SHATTERED, "--output_dir", str(tmp_path)])  # 3 networks x 20 seeds; stderr is not a terminal here
    lines = capsys.readouterr().err.splitlines()
    assert [re.sub(r" \(.*", "", line) for line in lines] == [
        f"resnet-lightning: shattered: {n}/60 networks" for n in range(6, 61, 6)
    ], lines


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_shattered_shows_a_bar_in_a_terminal(tmp_path, monkeypatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    main([*SHATTERED, "--output_dir", str(tmp_path)])
    shown = terminal.getvalue()  # tqdm's refreshes, cleared at the end
    assert "\rshattered:" in shown and "/60 [" in shown and "resnet-lightning: shattered" not in shown, shown


def analyze_error(capsys, *args: str, code: int) -> str:
    """``resnet-lightning analyze ARGS`` through the real CLI: its one error line."""
    with pytest.raises(SystemExit) as stop:
        cli_main(["analyze", *args])
    assert stop.value.code == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("resnet-lightning: error: analyze"), err
    return err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["lesion", "--max_removed", "-3"], ["--max_removed -3", "integer >= 0", "e.g. --max_removed 10"]),
        (["lesion", "--trials", "0"], ["--trials 0", "integer >= 1", "e.g. --trials 10"]),
        (["lesion", "--limit_batches", "0"], ["--limit_batches 0", "integer >= 1", "e.g. --limit_batches 20"]),
        (["lesion", "--trials", "many"], ["--trials 'many' is not an integer", "e.g. --trials 10"]),
        (["shattered", "--depth", "0"], ["--depth 0", "integer >= 1", "e.g. --depth 24"]),
        (["shattered", "--shallow_depth", "-1"], ["--shallow_depth -1", "integer >= 0"]),
        (["shattered", "--width", "-5"], ["--width -5", "integer >= 1"]),
        (["shattered", "--points", "1"], ["--points 1", "integer >= 2"]),
        (["shattered", "--seeds", "0"], ["--seeds 0", "integer >= 1"]),
        (["shattered", "--max_lag", "0"], ["--max_lag 0", "integer >= 1"]),
        (["shattered", "--points", "16", "--max_lag", "16"], ["--max_lag 16", "below --points (16)", "e.g. --max_lag 15"]),
        (["shattered", "--width", "1.5"], ["--width '1.5' is not an integer"]),
        (["shattered", "--wandb", "true", "--wandb_project", "me/analyses"], ["--wandb_project 'me/analyses'", "without /"]),
    ],
)
def test_every_count_option_is_checked_before_anything_runs(tmp_path, capsys, args: list[str], expected: list[str]) -> None:
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"never read: the option is refused first")
    extra = ["--ckpt_path", str(checkpoint)] if args[0] == "lesion" else []
    err = analyze_error(capsys, *args, *extra, "--output_dir", str(tmp_path / "out"), code=2)
    assert all(text in err for text in expected), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--bogus"], ["analyze: unrecognized arguments: --bogus", "see `resnet-lightning analyze --help`"]),
        (["lesion", "--bogus"], ["analyze lesion: unrecognized arguments: --bogus", "`resnet-lightning analyze lesion --help`"]),
        (["lesn"], ["analyze: ", "invalid choice: 'lesn'", "did you mean lesion?"]),
        ([], ["analyze: ", "lesion,shattered,degradation,gradient_flow", "not provided;"]),
        (["lesion"], ["analyze lesion: ", "required: lesion.ckpt_path"]),
        (["shattered", "--wandb", "maybe"], ["analyze shattered: --wandb 'maybe' is not true or false"]),
        (["gradient_flow", "--runs"], ["analyze gradient_flow: argument --runs: expected at least one argument"]),
    ],
)
def test_a_mistake_in_the_analyze_command_line_is_one_usage_line(capsys, args: list[str], expected: list[str]) -> None:
    # The parsers raise UsageError themselves (exit_on_error=False), called directly as through the CLI.
    with pytest.raises(UsageError) as caught:
        main(args)
    assert "\n" not in str(caught.value) and all(text in str(caught.value) for text in expected), caught.value
    err = analyze_error(capsys, *args, code=2)
    assert all(text in err for text in expected), err


def test_files_and_directories_the_analyses_cannot_use(tmp_path, capsys) -> None:
    (tmp_path / "taken").write_text("a file")
    shattered = ["shattered", "--depth", "2", "--width", "4", "--points", "8", "--seeds", "1", "--max_lag", "2"]
    assert "--output_dir" in analyze_error(capsys, *shattered, "--output_dir", str(tmp_path / "taken"), code=2)
    err = analyze_error(capsys, *shattered, "--output_dir", str(tmp_path / "taken" / "sub"), code=2)
    assert "taken is a file" in err
    err = analyze_error(capsys, "lesion", "--ckpt_path", str(tmp_path), code=1)
    assert "--ckpt_path" in err and "a directory" in err
    err = analyze_error(capsys, "degradation", "--runs", str(tmp_path / "*" / "wandb" / "offline-run-*"), code=1)
    assert "no such directory (a shell pattern that matched nothing?)" in err
    assert "neither a W&B run directory" in analyze_error(capsys, "degradation", "--runs", str(tmp_path), code=1)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_text("epoch,val/acc\nlast,0.5\n")
    assert "row 1: epoch 'last'" in analyze_error(capsys, "degradation", "--runs", str(tmp_path / "run"), code=1)
    (tmp_path / "wandb_run").mkdir()
    (tmp_path / "wandb_run" / "run-abc123.wandb").write_bytes(bytes(range(256)))  # not a transaction log
    assert "cannot read this W&B run" in analyze_error(capsys, "degradation", "--runs", str(tmp_path / "wandb_run"), code=1)
    (tmp_path / "run" / "gradient_flow.csv").write_text("step,block_00\n0,not-a-norm\n")
    assert "is not a gradient-flow table" in analyze_error(capsys, "gradient_flow", "--runs", str(tmp_path / "run"), code=1)


def test_degradation_over_the_wandb_glob_reads_fits_and_skips_a_test(tmp_path, monkeypatch, capsys) -> None:
    # The README's flow: fit, then test, each logging to W&B offline in the run directory; the documented
    # glob finds both parts. The test's part has no error curves: skipped, said in one line, not a `null` result.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    args = ["--config", str(ROOT / "configs" / "digits.yaml"), "--config", str(ROOT / "configs" / "wandb" / "logger.yaml"),
            "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.limit_train_batches", "3",
            "--trainer.limit_val_batches", "2", "--trainer.limit_test_batches", "2"]
    import wandb

    for command in (["fit", *args, "--trainer.max_epochs", "1"], ["test", *args]):
        cli_main(command)
        wandb.finish()
    runs = sorted(str(p) for p in tmp_path.glob("*/version_*/wandb/offline-run-*"))
    assert len(runs) == 2
    capsys.readouterr()
    main(["degradation", "--runs", *runs, "--output_dir", str(tmp_path / "d")])
    out, err = capsys.readouterr()
    assert f"degradation: skipped 1 run(s) that are not fits: {runs[1]} (" in err
    summary = json.loads((tmp_path / "d" / "degradation.json").read_text())
    assert list(summary) == ["cifar_resnet"] and summary["cifar_resnet"]["depth"] == 8
    assert 0 <= summary["cifar_resnet"]["final_train_error"] <= 1 and 0 <= summary["cifar_resnet"]["final_val_error"] <= 1
    assert "null" not in out
    # Only the test's part: nothing to plot is an error, not an empty result.
    err = analyze_error(capsys, "degradation", "--runs", runs[1], "--output_dir", str(tmp_path / "e"), code=1)
    assert "none of the 1 --runs is a fit" in err
