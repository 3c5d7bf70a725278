"""Runs you can trust: one directory per fit, the right checkpoint found again, clean stops.

Every test drives the real `resnet-lightning` command in a fresh process (or
``cli_main`` in this one) on tiny CPU fits in a tmp directory.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
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
    # The summary's "continue it with: ... --ckpt_path last" is the command for later, not about this one.
    lines = [line for line in result.stderr.splitlines() if "--ckpt_path last" in line and "continue it with" not in line]
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


# --- a run directory only for a fit that started training ------------------------------


def _fails(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``args`` through the real CLI in this process; it must fail with one error line, which is returned."""
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "Traceback" not in err, err
    (line,) = [line for line in err.splitlines() if line.startswith("resnet-lightning: error: ")]
    return line


@pytest.fixture
def other_weights(tmp_path: Path) -> Path:
    """A weights file saved from a deeper network: it loads, but cannot initialise TINY's (found when the fit starts)."""
    from resnet_lightning import create_model

    path = tmp_path / "other.pt"
    torch.save(create_model("cifar_resnet", depth=14, num_classes=10, in_channels=1).state_dict(), path)
    return path


@pytest.mark.parametrize(
    ("case", "args", "says"),
    [
        # While building the classes, at the start of `fit` (prepare_data) and in on_fit_start:
        ("misspelt block", ["--model.block", "preactt"], "unknown block 'preactt'"),
        ("missing dataset", ["--data", "MNISTDataModule", "--data.data_dir", "nowhere", "--data.download", "false"],
         "MNIST not found"),
        ("weights of another network", ["--model.weights", "{weights}"], "do not fit cifar_resnet"),
    ],
)
def test_a_fit_that_fails_before_training_leaves_no_run_directory(tmp_path, monkeypatch, capsys, other_weights, case, args, says) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "runs" / "here"  # made by the claim, so removed with it
    args = [arg.format(weights=other_weights) for arg in args]
    line = _fails(["fit", *TINY, *args, "--trainer.max_steps", "1", "--trainer.default_root_dir", str(root)], capsys)
    assert says in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.pt"]  # no <name>/version_0, no <name>/, no root


def test_a_failed_evaluation_leaves_no_empty_log_folder(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    missing = ["--data", "MNISTDataModule", "--data.data_dir", "nowhere", "--data.download", "false"]
    assert "MNIST not found" in _fails(["test", *TINY, *missing, "--ckpt_path", "untrained"], capsys)
    assert list(tmp_path.iterdir()) == []  # no mnist-cifar_resnet-d8/test/version_0


def test_a_failed_fit_keeps_the_runs_beside_it_and_the_next_is_version_1(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    fast = ["--trainer.max_steps", "1", "--trainer.limit_val_batches", "1"]
    cli_main(["fit", *TINY, *fast])
    first = tmp_path / RUN_NAME / "version_0"
    before = sorted(p.relative_to(first) for p in first.rglob("*"))
    assert "unknown block 'preactt'" in _fails(["fit", *TINY, *fast, "--model.block", "preactt"], capsys)
    # Continuing the run fails before training (the data are missing): the run it continues is not its to remove.
    missing = ["--data", "MNISTDataModule", "--data.data_dir", "nowhere", "--data.download", "false"]
    _fails(["fit", *TINY, *fast, *missing, "--ckpt_path", str(first / "checkpoints" / "last.ckpt")], capsys)
    assert sorted(p.relative_to(first) for p in first.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == [RUN_NAME]
    second = cli_main(["fit", *TINY, *fast])
    assert Path(second.trainer.default_root_dir) == tmp_path / RUN_NAME / "version_1"


# --- test and fit --ckpt_path last find the run of the model asked for ----------------------


def test_evaluation_and_resume_take_the_newest_run_of_the_same_model(tmp_path, monkeypatch, capsys) -> None:
    # README: the main job, then a variant with stochastic depth. Both are runs of one name.
    monkeypatch.chdir(tmp_path)
    fast = ["--trainer.max_steps", "1", "--trainer.limit_val_batches", "1"]
    variant = ["--model.arch_kwargs", "{depth: 8, drop_path_rate: 0.1}"]
    cli_main(["fit", *TINY, *fast])
    cli_main(["fit", *TINY, *variant, *fast])
    main_run, variant_run = (tmp_path / RUN_NAME / f"version_{n}" for n in (0, 1))
    capsys.readouterr()

    plain = cli_main(["test", *TINY, "--trainer.limit_test_batches", "1"])
    assert runs.run_of_checkpoint(plain.trainer.ckpt_path) == main_run
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("resnet-lightning: test: run")]
    assert line.startswith(
        f"resnet-lightning: test: run {main_run} (the newest run of '{RUN_NAME}' with this model configuration; "
        "skipped newer version_1 (model.arch_kwargs.drop_path_rate is 0.1 there, unset here)), checkpoint "
    ), line
    chosen = cli_main(["test", *TINY, *variant, "--trainer.limit_test_batches", "1"])
    assert runs.run_of_checkpoint(chosen.trainer.ckpt_path) == variant_run
    resumed = cli_main(["fit", *TINY, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--ckpt_path", "last"])
    assert Path(resumed.trainer.default_root_dir) == main_run and resumed.trainer.global_step == 2

    # Other options than the network's differ in every run: the newest run of this network, saying what differs.
    capsys.readouterr()
    other_lr = cli_main(["test", *TINY, "--model.optimizer.init_args.lr", "0.5", "--trainer.limit_test_batches", "1"])
    assert runs.run_of_checkpoint(other_lr.trainer.ckpt_path) == main_run
    assert "with this network; its other model options differ: model.optimizer.init_args.lr is 0.1 there, 0.5 here; " \
           "skipped newer version_1 (model.arch_kwargs.drop_path_rate is 0.1 there, unset here)" in capsys.readouterr().err
    # A network no run has: nothing to evaluate, each run's difference named.
    line = _fails(["test", *TINY, "--model.arch_kwargs", "{depth: 8, zero_init_residual: true}"], capsys)
    assert "nothing to evaluate" in line and "--run N" in line
    assert "version_0: model.arch_kwargs.zero_init_residual is unset there, True here" in line


# --- one writer per run -------------------------------------------------------------------

HOLDER = """
import time
from pathlib import Path
import lightning as L

class HoldAtStart(L.Callback):
    '''Say that training started, then wait until the test says go on.'''
    def on_train_start(self, trainer, *args):
        Path("started").touch()
        for _ in range(1200):
            if Path("go-on").exists():
                return
            time.sleep(0.1)
"""


def test_a_second_fit_of_a_run_refuses_naming_the_process_that_writes_it(tmp_path, monkeypatch) -> None:
    import socket

    monkeypatch.chdir(tmp_path)
    fast = ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]
    cli_main(["fit", *TINY, *fast, "--trainer.max_epochs", "1"])  # in this process: its lock ends with the command
    run_dir = tmp_path / RUN_NAME / "version_0"
    (tmp_path / "holder.py").write_text(HOLDER)
    (tmp_path / "hold.yaml").write_text("trainer:\n  callbacks:\n    - class_path: holder.HoldAtStart\n")
    resume = [sys.executable, "-m", "resnet_lightning", "fit", *TINY, *fast, "--trainer.max_epochs", "3", "--ckpt_path", "last"]
    first = subprocess.Popen([*resume, "--config", "hold.yaml"], cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                             env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
    try:
        for _ in range(1200):
            if (tmp_path / "started").exists() or first.poll() is not None:
                break
            time.sleep(0.1)
        assert (tmp_path / "started").exists(), first.communicate()[1][-3000:]
        second = run_cli(*resume[3:], cwd=tmp_path)
    finally:
        (tmp_path / "go-on").touch()
        first_err = first.communicate(timeout=300)[1]
    assert second.returncode == 1 and "Traceback" not in second.stderr, second.stderr
    (line,) = [line for line in second.stderr.splitlines() if "error" in line]
    assert line.startswith(
        f"resnet-lightning: error: fit: run {run_dir} is being written by process {first.pid} on host {socket.gethostname()} (since "
    ), line
    assert first.returncode == 0, first_err[-3000:]
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert "last-v1.ckpt" not in checkpoints and load(run_dir / "checkpoints" / "last.ckpt")["epoch"] == 2


def test_a_dead_process_keeps_no_lock(tmp_path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    code = "import os, signal, sys; from resnet_lightning import runs; runs.lock_run(sys.argv[1]); print('locked', flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    holder = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, timeout=120)
    assert holder.returncode == -signal.SIGKILL and holder.stdout == "locked\n", holder.stderr
    runs.lock_run(run_dir)  # the dead process's lock went with it
    try:
        code = "import sys; from resnet_lightning import runs; runs.lock_run(sys.argv[1])"
        other = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, timeout=120)
        assert other.returncode == 1 and f"run {run_dir.resolve()} is being written by process {__import__('os').getpid()}" in other.stderr
    finally:
        runs.release_run(run_dir)
