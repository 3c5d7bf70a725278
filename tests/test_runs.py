"""Runs you can trust: one directory per fit, the right checkpoint found again, clean stops.

Every test drives the real `resnet-lightning` command in a fresh process (or
``cli_main`` in this one) on tiny CPU fits in a tmp directory.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from resnet_lightning import runs
from resnet_lightning.cli import cli_main
from tests.fixtures_cli import DIGITS, RUN_NAME, run_cli

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
TINY = ["--config", DIGITS, "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}", *QUIET]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def assert_same_weights(actual: dict, expected: dict) -> None:
    assert actual["global_step"] == expected["global_step"]
    for name, tensor in expected["state_dict"].items():
        torch.testing.assert_close(actual["state_dict"][name], tensor, rtol=0, atol=0, msg=name)


def test_each_fit_has_its_own_run_and_test_evaluates_the_newest(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = cli_main(["fit", *TINY, "--trainer.max_epochs", "1"])
    second = cli_main(["fit", *TINY, "--trainer.max_epochs", "2"])
    first_dir, second_dir = (tmp_path / RUN_NAME / f"version_{n}" for n in (0, 1))
    assert Path(first.trainer.checkpoint_callback.dirpath) == first_dir / "checkpoints"
    assert Path(second.trainer.checkpoint_callback.dirpath) == second_dir / "checkpoints"
    for run_dir in (first_dir, second_dir):  # config, logs and checkpoints of one run together
        assert {"config.yaml", "metrics.csv", "run.json", "checkpoints"} <= {p.name for p in run_dir.iterdir()}
    assert not (tmp_path / "lightning_logs").exists() and not (tmp_path / "checkpoints").exists()

    test = cli_main(["test", *TINY])
    assert test.trainer.ckpt_path == second.trainer.checkpoint_callback.best_model_path
    last = cli_main(["test", *TINY, "--ckpt_path", "last"])
    assert Path(last.trainer.ckpt_path) == second_dir / "checkpoints" / "last.ckpt"
    # --run picks an older run; its results are its own.
    older = cli_main(["test", *TINY, "--run", "0"])
    assert older.trainer.ckpt_path == first.trainer.checkpoint_callback.best_model_path
    assert older.trainer.callback_metrics["test/acc"] != test.trainer.callback_metrics["test/acc"]
    assert (second_dir / "test" / "version_0" / "metrics.csv").is_file()  # evaluations log inside the run


def test_last_checkpoint_holds_the_final_epoch(tmp_path) -> None:
    # A learning rate so high that val/acc stops improving early: last.ckpt must still be the final state.
    result = run_cli(
        "fit", *TINY, "--trainer.max_epochs", "4", "--trainer.limit_train_batches", "3",
        "--model.optimizer.init_args.lr", "3.0", "--trainer.default_root_dir", "out", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = tmp_path / "out" / RUN_NAME / "version_0" / "checkpoints"
    last = load(checkpoints / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (3, 12)
    best = [p for p in checkpoints.glob("best-*.ckpt")]
    assert len(best) == 1  # save_top_k=1
    assert f"fit: last checkpoint {checkpoints / 'last.ckpt'}" in result.stderr
    assert f"fit: run directory {checkpoints.parent}" in result.stderr


def test_default_root_dir_holds_everything(tmp_path) -> None:
    cwd, root = tmp_path / "cwd", tmp_path / "elsewhere"
    cwd.mkdir()
    fit = run_cli("fit", *TINY, "--trainer.max_steps", "2", "--trainer.default_root_dir", str(root), cwd=cwd)
    assert fit.returncode == 0, fit.stderr[-3000:]
    test = run_cli("test", *TINY, "--trainer.default_root_dir", str(root), "--trainer.limit_test_batches", "1", cwd=cwd)
    assert test.returncode == 0, test.stderr[-3000:]
    assert list(cwd.iterdir()) == []
    assert (root / RUN_NAME / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_concurrent_fits_in_one_directory_keep_separate_runs(tmp_path) -> None:
    command = [sys.executable, "-m", "resnet_lightning", "fit", *TINY, "--trainer.max_steps", "3",
               "--trainer.limit_val_batches", "1"]
    procs = [
        subprocess.Popen([*command, "--seed_everything", str(seed)], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
        for seed in (1, 2)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    run_dirs = runs.list_runs(tmp_path, RUN_NAME)
    assert [d.name for d in run_dirs] == ["version_0", "version_1"]
    for run_dir in run_dirs:
        assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    seeds = {(d / "config.yaml").read_text().split("seed_everything: ")[1].split()[0] for d in run_dirs}
    assert seeds == {"1", "2"}  # each run holds its own process's config


SIGNALLER = """
import os, signal
import lightning as L

class SignalAtStep(L.Callback):
    '''Send this process a signal once training reaches `step`, as a scheduler preempting it would.'''
    def __init__(self, step: int, signum: int = 15):
        self.step, self.signum = step, signum
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)
"""


# on_device: the loader that resumes mid-epoch at the exact batch (data/device.py). 20 steps an epoch.
SIGNAL_FIT = ["fit", *TINY, "--trainer.max_epochs", "2", "--data.on_device", "true"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The last checkpoint of the fit that the stopped-and-continued ones must equal."""
    root = tmp_path_factory.mktemp("uninterrupted")
    result = run_cli(*SIGNAL_FIT, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return load(root / RUN_NAME / "version_0" / "checkpoints" / "last.ckpt")


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_epoch_saves_and_resumes_bit_identically(tmp_path, uninterrupted, signum, code) -> None:
    (tmp_path / "signaller.py").write_text(SIGNALLER)
    (tmp_path / "signal.yaml").write_text(
        f"trainer:\n  callbacks:\n    - class_path: signaller.SignalAtStep\n      init_args: {{step: 27, signum: {int(signum)}}}\n"
    )
    env = {"PYTHONPATH": str(tmp_path)}
    stopped = run_cli(*SIGNAL_FIT, "--config", "signal.yaml", cwd=tmp_path, env=env)
    assert stopped.returncode == code, stopped.stderr[-3000:]
    last = tmp_path / RUN_NAME / "version_0" / "checkpoints" / "last.ckpt"
    assert f"fit stopped by {signal.Signals(signum).name} at epoch 1, step 27" in stopped.stderr
    assert f"--ckpt_path {last}" in stopped.stderr  # how to continue, as one command
    assert load(last)["global_step"] == 27  # mid-epoch 2

    resumed = run_cli(*SIGNAL_FIT, "--ckpt_path", "last", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert runs.list_runs(tmp_path, RUN_NAME) == [last.parent.parent]  # continued in its own run
    assert_same_weights(load(last), uninterrupted)


def test_resume_removes_best_checkpoints_the_resumed_state_does_not_know(tmp_path) -> None:
    fit = run_cli("fit", *TINY, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    checkpoints = tmp_path / RUN_NAME / "version_0" / "checkpoints"
    (best,) = checkpoints.glob("best-*.ckpt")
    stale = checkpoints / "best-007-000099.ckpt"  # as if written by a run killed before its last.ckpt
    stale.write_bytes(best.read_bytes())
    resumed = run_cli("fit", *TINY, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2",
                      "--ckpt_path", "last", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not stale.exists()
    assert len(list(checkpoints.glob("best-*.ckpt"))) == 1


def test_continue_with_no_run_says_so_and_starts_one(tmp_path) -> None:
    result = run_cli("fit", *TINY, "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1",
                     "--ckpt_path", "last", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if "--ckpt_path last" in line]
    assert len(lines) == 1 and "no run there" in lines[0] and "starting a new run" in lines[0]
    assert (tmp_path / RUN_NAME / "version_0" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("ckpt", [[], ["--ckpt_path", "best"], ["--ckpt_path", "last"]])
def test_evaluating_without_a_checkpoint_is_an_error(tmp_path, ckpt) -> None:
    result = run_cli("test", *TINY, *ckpt, cwd=tmp_path)
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if "error" in line]
    assert line.startswith("resnet-lightning: error: test: nothing to evaluate") and "--ckpt_path untrained" in line
    assert "Traceback" not in result.stderr


def test_untrained_on_request(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = cli_main(["test", *TINY, "--ckpt_path", "untrained", "--trainer.limit_test_batches", "1"])
    assert cli.trainer.ckpt_path is None and "test/acc" in cli.trainer.callback_metrics


def test_checkpoint_contradicting_the_options_is_an_error(tmp_path) -> None:
    fit = run_cli("fit", *TINY, "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1", cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    last = tmp_path / RUN_NAME / "version_0" / "checkpoints" / "last.ckpt"
    result = run_cli("test", *QUIET, "--model.arch", "cifar_resnet56", "--ckpt_path", str(last), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "model.arch is 'cifar_resnet56' here but 'cifar_resnet' in the checkpoint" in result.stderr
    # Options left at their defaults come from the checkpoint: the file alone rebuilds its model.
    alone = run_cli("test", *QUIET, "--ckpt_path", str(last), "--trainer.limit_test_batches", "1", cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert "from the checkpoint: model.arch='cifar_resnet', model.arch_kwargs={'depth': 8}" in alone.stderr
    # A continued fit must agree on every hyperparameter, the optimizer's too.
    lr = run_cli("fit", *TINY, "--model.optimizer.init_args.lr", "0.5", "--ckpt_path", str(last), cwd=tmp_path)
    assert lr.returncode == 1 and "'lr': 0.5" in lr.stderr and "'lr': 0.1" in lr.stderr


def test_damaged_checkpoint_is_one_line_naming_it(tmp_path) -> None:
    damaged = tmp_path / "half.ckpt"
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.randn(1000)}, "hyper_parameters": {}}, good)
    damaged.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for command in ("test", "fit"):
        result = run_cli(command, *TINY, "--ckpt_path", str(damaged), cwd=tmp_path)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        (line,) = [line for line in result.stderr.splitlines() if "error" in line]
        assert str(damaged) in line and "incomplete" in line


@pytest.mark.parametrize("flag", ["--optimizer", "--optimizer=SGD", "--lr_scheduler.T_max"])
def test_automatic_optimizer_flags_point_at_the_model(tmp_path, flag) -> None:
    result = run_cli("fit", flag, "SGD", cwd=tmp_path)
    assert result.returncode == 2
    assert "--model." in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_slurm_requeue_continues_in_the_run_that_job_created(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    first = runs.new_run(tmp_path, RUN_NAME)
    runs.new_run(tmp_path, RUN_NAME)  # another job's run, newer
    (tmp_path / RUN_NAME / "version_1" / "run.json").write_text(json.dumps({"slurm_job_id": "999"}))
    assert runs.requeued_run(tmp_path, RUN_NAME) is None  # not requeued: a fresh run
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert runs.requeued_run(tmp_path, RUN_NAME) == first
