"""No file runs code: a checkpoint or weights file whose pickle carries a payload is refused by every command.

The payload is real: unpickling it runs ``os.system("touch MARKER")``. Each command
gets the file where a user would give it (``--ckpt_path``, found as a run's
``last.ckpt``, ``--model.weights``, a search's fit options) in a fresh process;
the marker must never appear, and the command must print one line naming the file
and the global it wanted, and exit non-zero. A checkpoint with bytes flipped inside
a weight tensor is refused the same way (its zip CRC-32 no longer matches).
"""

from __future__ import annotations

import ast
import os
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from resnet_lightning.checkpoint_io import CheckpointError, read_checkpoint
from resnet_lightning.models.pretrained import WeightsError, read_weights_file
from resnet_lightning.safe_load import FileLoadError, safe_load

from tests.fixtures_cli import DIGITS, RUN_NAME, run_cli

TINY = ["--config", DIGITS, "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}"]
SHORT = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]


class Payload:
    """Unpickling this runs a shell command: what a hostile checkpoint carries."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real run of a tiny fit, and hostile and damaged copies of its checkpoint."""
    root = tmp_path_factory.mktemp("no_code")
    done = run_cli("fit", *TINY, *SHORT, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    run = root / RUN_NAME / "version_0"
    good = run / "checkpoints" / "last.ckpt"
    marker = root / "MARKER"
    checkpoint = torch.load(good, map_location="cpu", weights_only=True)

    evil_ckpt = root / "evil.ckpt"  # a whole, working Lightning checkpoint, plus the payload
    torch.save({**checkpoint, "hyper_parameters": {**checkpoint["hyper_parameters"], "note": Payload(marker)}}, evil_ckpt)
    network = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    evil_weights = root / "evil.pth"
    torch.save({**network, "_metadata": Payload(marker)}, evil_weights)

    evil_run = root / "evil_runs" / RUN_NAME / "version_0"  # `test` finds the payload as the run's last.ckpt
    shutil.copytree(run, evil_run)
    shutil.copy(evil_ckpt, evil_run / "checkpoints" / "last.ckpt")
    for best in (evil_run / "checkpoints").glob("best-*.ckpt"):
        shutil.copy(evil_ckpt, best)

    flipped = root / "flipped.ckpt"  # 64 bytes inverted inside the largest weight tensor
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as archive:
        member = max(archive.infolist(), key=lambda m: m.file_size)
        offset = member.header_offset + 30 + len(member.filename.encode()) + len(member.extra)
    for i in range(offset + 64, offset + 128):
        data[i] ^= 0xFF
    flipped.write_bytes(bytes(data))
    search = root / "search.yaml"
    search.write_text(
        f"study: evil\nconfigs: [{DIGITS}]\nfixed:\n  model.arch: cifar_resnet\n  model.arch_kwargs.depth: 8\n"
        f"  model.weights: {evil_weights}\n  trainer.max_epochs: 1\n  trainer.limit_train_batches: 2\n"
        "space:\n  model.optimizer.init_args.lr: {type: float, low: 0.01, high: 0.1}\n"
        "objectives:\n  val/acc: maximize\nn_trials: 1\n"
    )
    return {"root": root, "good": good, "marker": marker, "evil_ckpt": evil_ckpt, "evil_weights": evil_weights,
            "evil_runs": root / "evil_runs", "flipped": flipped, "search": search}


COMMANDS = {
    # id: (arguments, the file the one line must name); {name} is a key of `files`
    "test": (["test", *TINY, "--ckpt_path", "{evil_ckpt}"], "evil_ckpt"),
    "validate": (["validate", *TINY, "--ckpt_path", "{evil_ckpt}"], "evil_ckpt"),
    "predict": (["predict", *TINY, "--ckpt_path", "{evil_ckpt}"], "evil_ckpt"),
    "fit_resume": (["fit", *TINY, *SHORT, "--ckpt_path", "{evil_ckpt}"], "evil_ckpt"),
    "test_finds_last": (["test", *TINY, "--trainer.default_root_dir", "{evil_runs}", "--ckpt_path", "last"], "evil_runs"),
    "test_finds_best": (["test", *TINY, "--trainer.default_root_dir", "{evil_runs}"], "evil_runs"),
    "export": (["export", "--ckpt_path", "{evil_ckpt}", "--format", "pt2"], "evil_ckpt"),
    "analyze_lesion": (["analyze", "lesion", "--ckpt_path", "{evil_ckpt}", "--limit_batches", "1"], "evil_ckpt"),
    "weights_file": (["fit", *TINY, *SHORT, "--model.weights", "{evil_weights}"], "evil_weights"),
    "fine_tune_from_ckpt": (["fit", *TINY, *SHORT, "--model.weights", "{evil_ckpt}"], "evil_ckpt"),
    "search": (["search", "--config", "{search}", "--output", "{root}/search_out"], "evil_weights"),
}


def _fill(arg: str, files: dict[str, Path]) -> str:
    for name, path in files.items():
        arg = arg.replace(f"{{{name}}}", str(path))
    return arg


@pytest.mark.parametrize("case", list(COMMANDS))
def test_a_payload_never_runs_and_is_refused_in_one_line(files: dict[str, Path], case: str, tmp_path: Path) -> None:
    args, named = COMMANDS[case]
    done = run_cli(*(_fill(a, files) for a in args), cwd=tmp_path, env={"WANDB_MODE": "offline"})
    assert not files["marker"].exists(), f"{case}: the payload ran"
    assert done.returncode != 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, done.stderr[-3000:]
    assert "wants to import posix.system, which a" in errors[0] and "refusing to load it" in errors[0]
    assert os.fspath(files[named]) in errors[0] or (named == "evil_runs" and "last.ckpt" in errors[0])


@pytest.mark.parametrize("command", [["test"], ["export", "--format", "pt2"]])
def test_a_checkpoint_damaged_inside_a_tensor_is_refused(files: dict[str, Path], command: list[str], tmp_path: Path) -> None:
    args = [*command, *(TINY if command[0] == "test" else []), "--ckpt_path", str(files["flipped"])]
    done = run_cli(*args, cwd=tmp_path, env={"WANDB_MODE": "offline"})
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "flipped.ckpt' is damaged" in last and "fails the CRC-32 check" in last, last


def test_the_loaders_refuse_payloads_and_damage_without_running_them(files: dict[str, Path]) -> None:
    with pytest.raises(CheckpointError, match=r"evil.ckpt' wants to import posix.system, which a checkpoint never needs"):
        read_checkpoint(files["evil_ckpt"])
    with pytest.raises(WeightsError, match=r"evil.pth' wants to import posix.system, which a weights file never needs"):
        read_weights_file(files["evil_weights"])
    with pytest.raises(CheckpointError, match=r"is damaged: its part .*/data/\d+ fails the CRC-32 check"):
        read_checkpoint(files["flipped"])
    assert not files["marker"].exists()
    assert read_checkpoint(files["good"])["state_dict"]  # our own checkpoint loads


def test_a_file_saved_without_checksums_still_loads(tmp_path: Path) -> None:
    """torch.serialization.set_crc32_options(False) writes CRC 0 everywhere: nothing to check, not damage."""
    path = tmp_path / "no_crc.pt"
    torch.serialization.set_crc32_options(False)
    try:
        torch.save({"w": torch.arange(4.0)}, path)
    finally:
        torch.serialization.set_crc32_options(True)
    assert torch.equal(safe_load(path, "weights file")["w"], torch.arange(4.0))
    with pytest.raises(FileLoadError, match="does not exist"):
        safe_load(tmp_path / "missing.pt")


def test_no_unrestricted_unpickling_in_the_package() -> None:
    """Only safe_load calls torch.load (weights only); nothing calls pickle.load or passes weights_only=False."""
    package = Path(__file__).resolve().parents[1] / "resnet_lightning"
    offenders = []
    for source in sorted(package.rglob("*.py")):
        where = source.relative_to(package)
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.Call):
                continue
            call = ast.unparse(node.func)
            if call in ("torch.load", "torch.serialization.load") and source.name != "safe_load.py":
                offenders.append(f"{where}: {call}")
            if call in ("pickle.load", "pickle.loads", "torch.hub.load_state_dict_from_url"):
                offenders.append(f"{where}: {call}")
            if any(k.arg == "weights_only" and not (isinstance(k.value, ast.Constant) and k.value.value is True) for k in node.keywords):
                offenders.append(f"{where}: {call}(weights_only=...)")
    assert offenders == []


def test_a_class_path_in_a_checkpoint_never_imports_a_module_beside_it(files: dict[str, Path], tmp_path: Path) -> None:
    """Options left at their defaults take the checkpoint's values, and jsonargparse imports a class path's module:
    a module in the working directory (on sys.path under ``python -m``) named by the file must not be imported."""
    checkpoint = torch.load(files["good"], map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"]["optimizer"] = {"class_path": "rl_evil_optim.Opt", "init_args": {}}
    torch.save(checkpoint, tmp_path / "hp.ckpt")
    marker = tmp_path / "IMPORTED"
    (tmp_path / "rl_evil_optim.py").write_text(f"open({str(marker)!r}, 'w').close()\nimport torch\nclass Opt(torch.optim.SGD): pass\n")
    done = run_cli("fit", "--model.arch", "cifar_resnet", "--model.arch_kwargs", "{depth: 8}", *SHORT,
                   "--ckpt_path", str(tmp_path / "hp.ckpt"), cwd=tmp_path, env={"WANDB_MODE": "offline"})
    assert not marker.exists(), "the checkpoint's class path imported a module"
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "sets model.optimizer to class rl_evil_optim.Opt, whose module is not an installed package" in last, last
