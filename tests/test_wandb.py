"""W&B as the logger, for real and offline: config, metrics, media, artifacts, resume, DDP, dashboard.

Every run here is ``WANDB_MODE=offline`` and is read back from its transaction
log with wandb's own reader (``wandb leet inspect``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import wandb
import yaml

from resnet_lightning import list_plugins
from resnet_lightning.cli import cli_main
from resnet_lightning.cli.lightning import ResNetLightningCLI
from resnet_lightning.tracking import (
    flatten_config,
    read_offline_run,
    resolve_wandb_mode,
    run_names,
    version_info,
    wandb_resume_id,
)
from resnet_lightning.tracking.dashboard import build_workspace, panel_keys

ROOT = Path(__file__).resolve().parents[1]
LOGGER = str(ROOT / "configs" / "wandb" / "logger.yaml")
FAST = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.limit_train_batches", "6", "--trainer.limit_val_batches", "2", "--trainer.log_every_n_steps", "2"]


def wandb_cli(args: list[str], run: bool = True) -> ResNetLightningCLI:
    """The real CLI, which prepares a WandbLogger (names, resume id, mode) and logs the config flat."""
    return cli_main(args, run=run)


def _logger_config(directory: Path) -> Path:
    """configs/wandb/logger.yaml with the diagnostics every 3 steps instead of 50."""
    config = yaml.safe_load(Path(LOGGER).read_text())
    for callback in config["trainer"]["callbacks"]:
        if callback["class_path"].endswith(("GradientFlowMonitor", "ResidualBranchMonitor")):
            callback["init_args"]["every_n_steps"] = 3
    path = directory / "logger.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _cli_args(root: Path, *extra: str) -> list[str]:
    return ["--config", str(_logger_config(root)), "--model.arch", "cifar_resnet20", *FAST, *extra]


def _run_dirs(root: Path) -> list[Path]:
    """Every offline W&B run under ``root``: each in its run directory's ``wandb/``."""
    return sorted(root.glob("**/wandb/offline-run-*"))


@pytest.fixture(scope="module")
def offline_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One fit + test on digits logged offline, then a resumed fit from its last checkpoint."""
    root = tmp_path_factory.mktemp("wandb")
    cwd = os.getcwd()
    env = {k: os.environ.get(k) for k in ("WANDB_MODE", "WANDB_SILENT")}
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true")
    os.chdir(root)
    try:
        fit = wandb_cli(["fit", *_cli_args(root, "--trainer.max_epochs", "1")])
        fit.trainer.test(fit.model, datamodule=fit.datamodule, ckpt_path="best")
        first_id = fit.trainer.logger.version
        wandb.finish()
        last = Path(fit.trainer.checkpoint_callback.dirpath) / "last.ckpt"
        resumed = wandb_cli(["fit", *_cli_args(root, "--trainer.max_epochs", "2"), "--ckpt_path", "last"])
        wandb.finish()
        tested = wandb_cli(["test", *_cli_args(root), "--ckpt_path", "best"])
        wandb.finish()
    finally:
        os.chdir(cwd)
        for key, value in env.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    runs = sorted((read_offline_run(d) for d in _run_dirs(root)), key=lambda r: r.start_time)
    return {"root": root, "first_id": first_id, "last": last, "runs": runs,
            "resumed_id": resumed.trainer.logger.version, "tested_id": tested.trainer.logger.version}


def test_wandb_files_and_the_config_live_in_the_run_directories(offline_runs) -> None:
    root = offline_runs["root"]  # also the working directory of the fits
    assert not (root / "wandb").exists() and not (root / "config.yaml").exists()
    run = Path(offline_runs["last"]).parent.parent
    assert (run / "config.yaml").is_file() and list((run / "wandb").glob("offline-run-*"))


def test_flatten_config_gives_dotted_keys() -> None:
    nested = {"model": {"arch": "r20", "arch_kwargs": {}}, "trainer": {"callbacks": [{"class_path": "X"}]},
              "lr": {"milestones": [1, 2]}}
    assert flatten_config(nested) == {
        "model.arch": "r20", "model.arch_kwargs": {}, "trainer.callbacks.0.class_path": "X", "lr.milestones": [1, 2],
    }


def test_version_info_names_every_plugin_distribution(use_plugins) -> None:
    use_plugins("rl-test-plugin")
    versions = version_info()
    assert {"versions.torch", "versions.lightning", "versions.resnet_lightning"} <= set(versions)
    for spec in list_plugins():
        key = "versions." + spec.distribution.lower().replace("-", "_").replace(".", "_")
        assert versions[key] == spec.version
    assert "versions.rl_test_plugin" in versions


def test_run_names_group_seeds_of_one_setting() -> None:
    names = run_names("resnet_lightning.data.DigitsDataModule", "cifar_resnet", "preact", {"depth": 56})
    assert names == {
        "project": "resnet-lightning-digits",
        "group": "digits-cifar_resnet-preact-d56",
        "tags": ["data:digits", "arch:cifar_resnet", "block:preact", "depth:56"],
    }
    assert run_names("x.CIFAR10DataModule", "cifar_plain56", None, None)["group"] == "cifar10-cifar_plain56"


def test_offline_without_api_key_says_so_in_one_line(monkeypatch, tmp_path, capsys) -> None:
    for key in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    assert resolve_wandb_mode() == "offline"
    assert os.environ["WANDB_MODE"] == "offline"
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "no W&B API key" in message and "wandb sync" in message


def test_unreachable_server_goes_offline_without_hanging(monkeypatch, capsys) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    assert resolve_wandb_mode(timeout=2.0) == "offline"
    assert time.monotonic() - start < 5
    assert f"127.0.0.1:{port} is not reachable" in capsys.readouterr().err


def test_explicit_wandb_mode_is_respected(monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_wandb_mode() == "disabled"


def test_run_has_derived_names_and_the_whole_config_as_flat_keys(offline_runs) -> None:
    run = next(r for r in offline_runs["runs"] if r.run_id == offline_runs["first_id"])
    assert (run.project, run.group) == ("resnet-lightning-digits", "digits-cifar_resnet20")
    assert run.tags == ["data:digits", "arch:cifar_resnet20", "block:default", "depth:20"]
    config = run.config
    assert config["model.arch"] == "cifar_resnet20"
    assert config["data.class_path"] == "resnet_lightning.data.DigitsDataModule"
    assert config["data.init_args.batch_size"] == 64
    assert config["trainer.max_epochs"] == 1
    assert config["trainer.logger.class_path"] == "lightning.pytorch.loggers.WandbLogger"
    assert config["versions.resnet_lightning"] == version_info()["versions.resnet_lightning"]
    assert "versions.torch" in config
    assert "arch" not in config  # the module's own bare-name hparams are not logged twice
    assert config["model_summary.depth"] == 20 and config["model_summary.block"] == "basic"
    assert config["model_summary.arch_plugin"].startswith("resnet-lightning ")
    assert "cli_config.yaml" in run.files


def test_run_has_training_diagnostic_and_test_time_metrics(offline_runs) -> None:
    run = next(r for r in offline_runs["runs"] if r.run_id == offline_runs["first_id"])
    keys = run.metric_keys()
    expected = {
        "train/loss_step", "train/loss_epoch", "train/acc", "val/loss", "val/acc", "val/acc_top5", "epoch",
        "trainer/global_step", "train/error", "val/error", "lr-SGD", "model/parameters", "model/macs",
        "test/acc", "test/loss", "test/confusion_matrix", "test/confusion_matrix_table", "test/misclassified",
        "test/misclassified_grid", "diagnostics/gradient_flow", "diagnostics/residual_ratio",
    }
    assert expected <= keys, expected - keys
    assert {f"grad_norm/block_{i:02d}" for i in range(9)} <= keys
    assert {f"residual_ratio/block_{i:02d}" for i in range(9)} <= keys
    steps = [row["trainer/global_step"] for row in run.history if "grad_norm/block_00" in row]
    assert steps == [0, 3]  # every_n_steps=3 over 6 steps
    table = run.summary["test/confusion_matrix_table"]
    assert (table["_type"], table["nrows"], table["ncols"]) == ("table-file", 100, 3)
    assert run.summary["test/misclassified"]["nrows"] > 0


def test_best_and_last_checkpoints_are_model_artifacts(offline_runs) -> None:
    run = next(r for r in offline_runs["runs"] if r.run_id == offline_runs["first_id"])
    models = [a for a in run.artifacts if a["type"] == "model"]
    assert {a["name"] for a in models} == {f"model-{run.run_id}"}
    filenames = {a["metadata"]["original_filename"]: a["aliases"] for a in models}
    assert "last.ckpt" in filenames
    best = [aliases for name, aliases in filenames.items() if name.startswith("best-")]
    assert best and "best" in best[0]


def test_resumed_fit_continues_the_same_run(offline_runs) -> None:
    assert wandb_resume_id(offline_runs["last"]) == offline_runs["first_id"]
    assert offline_runs["resumed_id"] == offline_runs["first_id"]
    runs = offline_runs["runs"]  # fit, resumed fit, test: three parts of one run
    assert len(runs) == 3 and {r.run_id for r in runs} == {offline_runs["first_id"]}
    first, second, tested = runs
    assert offline_runs["tested_id"] == offline_runs["first_id"]  # `test --ckpt_path best` reports into it too
    assert {"test/acc", "test/confusion_matrix_table"} <= tested.metric_keys()
    last_step = max(row.get("trainer/global_step", 0) for row in first.history)
    resumed_steps = [row["trainer/global_step"] for row in second.history if "train/loss_step" in row]
    assert resumed_steps and min(resumed_steps) > last_step


def test_no_run_id_in_a_checkpoint_without_wandb(tmp_path) -> None:
    assert wandb_resume_id(None) is None
    assert wandb_resume_id(tmp_path / "missing.ckpt") is None


def test_dashboard_panels_read_keys_a_real_run_wrote(offline_runs) -> None:
    pytest.importorskip("wandb_workspaces", reason="the optional dashboard extra (wandb-workspaces) is not installed")
    run = next(r for r in offline_runs["runs"] if r.run_id == offline_runs["first_id"])
    logged = run.metric_keys()
    keys, regexes = panel_keys(build_workspace("offline", run.project))
    assert keys <= logged, keys - logged
    for regex in regexes:
        assert any(re.search(regex, k) for k in logged), regex


def test_dashboard_command_offline_builds_but_does_not_save(monkeypatch, capsys) -> None:
    pytest.importorskip("wandb_workspaces", reason="the optional dashboard extra (wandb-workspaces) is not installed")
    from resnet_lightning.tracking.dashboard import main

    monkeypatch.setenv("WANDB_MODE", "offline")
    main(["--project", "resnet-lightning-digits"])
    out = capsys.readouterr().out
    assert "built but not saved" in out and "Training (" in out and "wandb login" in out


def test_a_dashboard_usage_mistake_is_one_line(capsys) -> None:
    from resnet_lightning.errors import UsageError
    from resnet_lightning.tracking.dashboard import main

    with pytest.raises(SystemExit) as stop:
        cli_main(["dashboard", "--project", "p", "--bogus"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "resnet-lightning: error: dashboard: unrecognized arguments: --bogus; see `resnet-lightning dashboard --help`")
    # The dashboard parser's own error(), not argparse patched for the whole process.
    with pytest.raises(UsageError, match="^dashboard: the following arguments are required: --project"):
        main([])


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_makes_one_run(tmp_path) -> None:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", PYTHONWARNINGS="ignore")
    env.pop("WANDB_SERVICE", None)  # a fresh process, as from a shell: not this test process's wandb service
    result = subprocess.run(
        [sys.executable, "-m", "resnet_lightning", "fit", *_cli_args(tmp_path, "--trainer.max_epochs", "1"),
         "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = _run_dirs(tmp_path)
    assert len(runs) == 1, [r.name for r in runs]
    run = read_offline_run(runs[0])
    assert (str(run.config["trainer.devices"]), run.config["trainer.strategy"]) == ("2", "ddp")
    assert "val/acc" in run.metric_keys()


DEGRADATION_CONFIGS = sorted((ROOT / "configs" / "experiments" / "degradation").glob("*.yaml"))


@pytest.mark.parametrize("experiment", DEGRADATION_CONFIGS, ids=lambda p: p.stem)
def test_degradation_configs_compose_with_the_wandb_logger(experiment, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        wandb_cli(["fit", "--config", LOGGER, "--config", str(experiment), "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["arch"] == "cifar_" + experiment.stem.split("_", 1)[1]
    assert printed["trainer"]["logger"]["class_path"] == "lightning.pytorch.loggers.WandbLogger"
    assert "experiment:degradation" in printed["trainer"]["logger"]["init_args"]["tags"]
    assert any(c["class_path"].endswith("ErrorRateMonitor") for c in printed["trainer"]["callbacks"])
