"""AtomicCheckpointIO against a real Trainer and a real ``kill -9``; checkpoint_problem against real files."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel

from resnet_lightning.checkpoint_io import (
    AtomicCheckpointIO,
    CheckpointError,
    checkpoint_problem,
    require_complete_checkpoint,
)

TESTS = Path(__file__).resolve().parent
STATE_NUMEL = 26_214_400  # float32: 100 MiB, so that a save takes long enough to be killed in the middle
PARTIAL = re.compile(r"^\..+\.partial-(\d+)-")

# Importing torch and Lightning costs a child ~5 s of CPU. So one child process, the host,
# imports them once and forks a fresh saver process per kill: "save <io> <path> <tmpdir>
# <version>" starts one, which saves ever newer versions of the big state to one path;
# "reap <pid>" waits for a killed one (a zombie would still count as a live process).
# Its stdout carries, in order, what each saver printed and when it was reaped. A saver
# whose parent test process is gone stops at its next print (BrokenPipeError).
HOST = """
import itertools, os, sys, tempfile, traceback
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from resnet_lightning.checkpoint_io import AtomicCheckpointIO
from test_checkpoint_io import checkpoint_state

for command in sys.stdin:
    match command.split():
        case ["reap", pid]:
            os.waitpid(int(pid), 0)
            print("reaped", pid, flush=True)
        case ["save", io, path, tmpdir, first] if os.fork() == 0:
            try:
                os.environ["TMPDIR"], tempfile.tempdir = tmpdir, None  # where fsspec puts its temporary files
                torch.set_num_threads(1)
                checkpoint_io = AtomicCheckpointIO() if io == "atomic" else TorchCheckpointIO()
                print("started", os.getpid(), flush=True)
                for version in itertools.count(int(first)):
                    state = checkpoint_state(version)
                    print("saving", version, flush=True)
                    checkpoint_io.save_checkpoint(state, path)
                    print("saved", version, flush=True)
            except BaseException:
                traceback.print_exc()
                os._exit(1)
"""


def checkpoint_state(version: int) -> dict:
    """Version ``version`` of the big state; its tensor comes from a generator seeded by the version."""
    weight = torch.randn(STATE_NUMEL, generator=torch.Generator().manual_seed(version))
    return {"version": version, "state_dict": {"weight": weight}}


def assert_complete_version(path: Path, versions: set[int]) -> None:
    """``path`` loads completely and is exactly one of ``versions``."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    version = checkpoint["version"]
    assert version in versions, f"{path.name} holds version {version}, not one of {versions}"
    assert torch.equal(checkpoint["state_dict"]["weight"], checkpoint_state(version)["state_dict"]["weight"])
    assert checkpoint_problem(path) is None


def partial_files(directory: Path) -> list[Path]:
    return [path for path in directory.iterdir() if PARTIAL.match(path.name)]


def wait_for_partial_file(directory: Path, size: float, timeout: float) -> None:
    """Return once a partial file in ``directory`` holds at least ``size`` bytes, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for partial in partial_files(directory):
            try:
                if partial.stat().st_size >= size:
                    return
            except FileNotFoundError:  # renamed onto the target meanwhile
                pass
        time.sleep(0.001)


class SaverHost:
    """The ``HOST`` child process, and the lines printed by the saver it runs now."""

    def __init__(self) -> None:
        pythonpath = os.pathsep.join([str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")])
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen([sys.executable, "-c", HOST], env={**os.environ, "PYTHONPATH": pythonpath},
                                        text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self.saver: int | None = None
        self.events: list[tuple[str, int]] = []  # ("saving", 3), ("saved", 3), ...

    def start(self, io: str, path: Path, tmpdir: Path, version: int) -> int:
        """Fork a saver with ``io`` ("atomic" or "stock") writing to ``path`` from ``version`` on; its pid."""
        self._stop()  # one left running by a failed test would write into this one's lines
        self._send(f"save {io} {path} {tmpdir} {version}")
        self.events = []
        self.saver = self.expect("started")
        return self.saver

    def expect(self, word: str) -> int:
        """Wait for the next line, which must be ``<word> <number>``; the number."""
        line = self.process.stdout.readline()
        if not line:
            self.stderr.seek(0)
            pytest.fail(f"the saver host exited with {self.process.wait()}:\n{self.stderr.read()}")
        event, number = line.split()
        assert event == word, f"expected '{word}', the saver printed {line!r}"
        self.events.append((event, int(number)))
        return int(number)

    def kill(self) -> tuple[int, int | None]:
        """SIGKILL the saver; the last version it saved, and the one it was saving or None."""
        self._stop()
        saved = max(version for event, version in self.events if event == "saved")
        saving = self.events[-1][1] if self.events[-1][0] == "saving" else None
        return saved, saving

    def close(self) -> None:
        self._stop()
        self.process.kill()  # nothing to finish: quicker than its interpreter's shutdown
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.stderr):
            stream.close()

    def _stop(self) -> None:
        """SIGKILL the saver, if one runs, and collect the lines it printed before it died."""
        if self.saver is None:
            return
        os.kill(self.saver, signal.SIGKILL)
        self._send(f"reap {self.saver}")
        for line in self.process.stdout:  # its last lines, then the host's "reaped"
            event, number = line.split()
            if event == "reaped":
                break
            self.events.append((event, int(number)))
        self.saver = None

    def _send(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()


@pytest.fixture(scope="module")
def saver_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaverHost]:
    """A :class:`SaverHost`, where ``/dev/shm`` is another filesystem than the tests' tmp_path."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm: the test needs a TMPDIR on another filesystem than the checkpoints")
    if os.stat("/dev/shm").st_dev == os.stat(tmp_path_factory.getbasetemp()).st_dev:
        pytest.skip("/dev/shm is on the same filesystem as tmp_path: moving a file out of TMPDIR would be atomic")
    host = SaverHost()
    yield host
    host.close()


@pytest.fixture
def shm_tmpdir() -> Iterator[Path]:
    """A fresh folder on tmpfs (``/dev/shm``), to be the savers' ``TMPDIR``."""
    folder = Path(tempfile.mkdtemp(prefix="rl-test-tmpdir-", dir="/dev/shm"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def lightning_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``last.ckpt`` saved by a real Trainer through AtomicCheckpointIO after a 2-step fit."""
    root = tmp_path_factory.mktemp("trainer")
    trainer = L.Trainer(plugins=[AtomicCheckpointIO()], max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=root)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    trainer.fit(BoringModel())
    trainer.save_checkpoint(root / "checkpoints" / "last.ckpt")  # the folder does not exist yet
    return root / "checkpoints" / "last.ckpt"


def test_trainer_saves_complete_checkpoint_and_no_partial_files(lightning_checkpoint: Path) -> None:
    checkpoint = torch.load(lightning_checkpoint, map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 2
    assert set(checkpoint["state_dict"]) == set(BoringModel().state_dict())
    assert os.listdir(lightning_checkpoint.parent) == ["last.ckpt"]
    umask = os.umask(0)
    os.umask(umask)
    # As any new file, not tempfile.mkstemp's 0600 (a checkpoint others in the group cannot read).
    assert lightning_checkpoint.stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_save_keeps_previous_checkpoint_and_no_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"weight": torch.ones(3)}}, path)
    with pytest.raises(Exception, match="pickle"):  # torch.save cannot pickle a lambda
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"weight": torch.zeros(3)}, "hook": lambda: 0}, path)
    assert os.listdir(tmp_path) == ["last.ckpt"]
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["weight"], torch.ones(3))


def test_save_removes_partial_files_of_dead_processes_only(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, live = int(finished.stdout), os.getppid()  # live: whoever started pytest
    stale = [tmp_path / f".last.ckpt.partial-{dead}-0123abcd",
             tmp_path / f".best-epoch=3.ckpt.partial-{dead}-89abcdef",
             tmp_path / f".last.ckpt.partial-{os.getpid()}-00000000"]  # this pid, but no save of ours writes it
    kept = [tmp_path / f".last.ckpt.partial-{live}-0123abcd", tmp_path / ".last.ckpt.notes"]
    for path in stale + kept:
        path.write_bytes(b"PK\x03\x04 half a checkpoint")
    AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, tmp_path / "last.ckpt")
    assert sorted(os.listdir(tmp_path)) == sorted(["last.ckpt"] + [path.name for path in kept])


@pytest.mark.slow
def test_kill_9_during_saves_never_leaves_a_broken_checkpoint(tmp_path: Path, saver_host: SaverHost,
                                                              shm_tmpdir: Path) -> None:
    kills, rng = 6, random.Random(0)
    directory = tmp_path / "checkpoints"
    path = directory / "last.ckpt"
    caught_writing = 0  # kills that left a partial file: the interesting moment
    version = 0
    for number in range(kills):
        saver = saver_host.start("atomic", path, shm_tmpdir, version)  # a fresh process each time
        saver_host.expect("saving")
        started = time.monotonic()
        saver_host.expect("saved")  # at least one complete save per process
        seconds, full_size = time.monotonic() - started, path.stat().st_size
        saver_host.expect("saving")
        # Kill at varied moments: half when the partial file holds a random share of the
        # bytes (surely mid-write), half after a random delay (anywhere, between saves too).
        if number % 2 == 0:
            wait_for_partial_file(directory, rng.uniform(0.05, 0.95) * full_size, timeout=1 + 10 * seconds)
        else:
            time.sleep(rng.uniform(0.0, 1.5) * seconds)
        saved, saving = saver_host.kill()
        partials = partial_files(directory)
        caught_writing += bool(partials)
        assert {int(PARTIAL.match(p.name)[1]) for p in partials} <= {saver}, \
            "the first save of this process should have removed the partial files of the earlier kills"
        assert [p.name for p in directory.glob("*.ckpt")] == ["last.ckpt"]
        assert_complete_version(path, {saved, saving} - {None})  # the old version or the new one, whole
        assert list(shm_tmpdir.iterdir()) == [], "nothing is written to TMPDIR"
        version = max(saved, saving or 0) + 1
    assert caught_writing, f"none of the {kills} kills landed during a write: the test exercised nothing"
    AtomicCheckpointIO().save_checkpoint(checkpoint_state(version), path)  # one more save cleans up
    assert os.listdir(directory) == ["last.ckpt"]
    assert_complete_version(path, {version})


@pytest.mark.slow
def test_lightning_torch_checkpoint_io_killed_while_moving_out_of_tmpdir(tmp_path: Path, saver_host: SaverHost,
                                                                         shm_tmpdir: Path) -> None:
    """The problem AtomicCheckpointIO solves: Lightning's own save, killed, truncates ``last.ckpt``."""
    path = tmp_path / "last.ckpt"
    saver_host.start("stock", path, shm_tmpdir, 0)
    saver_host.expect("saving")
    saver_host.expect("saved")
    full_size = path.stat().st_size
    deadline = time.monotonic() + 60
    # The move out of TMPDIR is a copy onto last.ckpt itself: it shrinks to 0, then grows.
    while path.stat().st_size >= full_size:
        assert time.monotonic() < deadline, "never saw last.ckpt being rewritten"
        time.sleep(0.0005)
    saver_host.kill()
    assert "incomplete" in checkpoint_problem(path)
    assert list(shm_tmpdir.iterdir()), "the temporary file stays behind in TMPDIR"


def test_checkpoint_problem_names_what_is_wrong(tmp_path: Path, lightning_checkpoint: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert checkpoint_problem(lightning_checkpoint) is None
    require_complete_checkpoint(lightning_checkpoint)

    data = lightning_checkpoint.read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    tensor = tmp_path / "tensor.ckpt"
    torch.save(torch.ones(3), tensor)
    empty = tmp_path / "empty.ckpt"
    empty.touch()
    uninstalled = tmp_path / "uninstalled.ckpt"  # holds an object of a plugin: never unpickled, installed or not
    plugin = types.ModuleType("rl_uninstalled_plugin")
    plugin.Block = type("Block", (), {"__module__": plugin.__name__})
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, plugin.__name__, plugin)
        torch.save({"state_dict": {}, "hyper_parameters": {"block": plugin.Block()}}, uninstalled)
    expected = {truncated: "is incomplete or corrupt", text: "is not a checkpoint written by torch.save",
                tensor: "is not a Lightning checkpoint (no 'state_dict')", empty: "is incomplete or corrupt",
                uninstalled: "wants to import rl_uninstalled_plugin.Block, which a checkpoint never needs",
                tmp_path / "missing.ckpt": "does not exist", tmp_path: "is not a file"}
    for path, what in expected.items():
        problem = checkpoint_problem(path)
        assert f"checkpoint '{path}' {what}" in problem
        assert "\n" not in problem
        with pytest.raises(CheckpointError) as raised:
            require_complete_checkpoint(path)
        assert str(raised.value) == problem
    assert "best-*.ckpt" in checkpoint_problem(truncated)


def test_a_moved_run_resumes_into_its_own_last_ckpt(tmp_path: Path) -> None:
    """Lightning forgets the saved paths of a run whose directory moved, then wrote last-v1.ckpt (stale last.ckpt)."""
    from resnet_lightning.callbacks import RunCheckpoint

    def fit(root: Path, epochs: int, ckpt_path: Path | None = None) -> None:
        trainer = L.Trainer(
            max_epochs=epochs, limit_train_batches=2, limit_val_batches=1, logger=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=root,
            callbacks=[RunCheckpoint(dirpath=root / "checkpoints", save_last=True, monitor="step", mode="max")],
        )
        trainer.fit(BoringModel(), ckpt_path=ckpt_path)

    fit(tmp_path / "there", 1)
    shutil.copytree(tmp_path / "there", tmp_path / "here")  # another disk, another machine
    fit(tmp_path / "here", 2, tmp_path / "here" / "checkpoints" / "last.ckpt")
    # The old top-1 was tracked, and so replaced; last.ckpt is the newest state, no last-v1.ckpt.
    assert sorted(os.listdir(tmp_path / "here" / "checkpoints")) == ["epoch=1-step=4.ckpt", "last.ckpt"]
    assert torch.load(tmp_path / "here" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    assert sorted(os.listdir(tmp_path / "there" / "checkpoints")) == ["epoch=0-step=2.ckpt", "last.ckpt"]
