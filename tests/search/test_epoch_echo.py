"""The worker's console shows each trial's epoch lines as they happen, with the trial's number."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from resnet_lightning.search.epoch_echo import EpochEcho

from .helpers import GOOD, finish, start_search, tiny_search

EPOCH = re.compile(r"^search: trial (\d+) epoch (\d+)/2  .*val/acc \d\.\d{4}.* img/s  [\d.]+ s$", re.MULTILINE)


def test_a_fresh_interpreter_trial_shows_its_epochs_on_the_worker_console(tmp_path: Path) -> None:
    search = tiny_search(tmp_path / "tiny.yaml", enqueue=[GOOD])
    out = finish(start_search("--config", str(search), "--n_trials", "1", "--output", "out", "--trial_process", "fresh",
                              cwd=tmp_path))
    lines = out.splitlines()
    epochs = [i for i, text in enumerate(lines) if EPOCH.match(text)]
    assert [EPOCH.match(lines[i]).groups() for i in epochs] == [("0", "1"), ("0", "2")], out
    started = next(i for i, text in enumerate(lines) if text.startswith("search: trial 0 model.block="))
    ended = next(i for i, text in enumerate(lines) if text.startswith("search: trial 0 COMPLETE"))
    assert started < epochs[0] < epochs[1] < ended  # between the trial's start and its outcome, not after it
    log = (tmp_path / "out" / "logs" / "trial-0000.log").read_text()
    assert EPOCH.match(lines[epochs[0]])[0].split("epoch ", 1)[1].split("  ")[:6] == \
        log.split("resnet-lightning: epoch ", 1)[1].split("  ")[:6]  # the log's line, the same content


def test_lines_are_echoed_whole_once_and_a_gone_console_stops_only_the_echo(tmp_path: Path, monkeypatch) -> None:
    log = tmp_path / "trial-0007.log"
    console = io.StringIO()
    monkeypatch.setattr("sys.stderr", console)
    echo = EpochEcho(log, "search: trial 7")
    echo()  # no log yet: nothing, no error
    log.write_text("resnet-lightning: fit: run directory x\nresnet-lightning: epoch 1/3  val/acc 0.5")
    echo()
    assert console.getvalue() == ""  # half a line waits for its end
    with open(log, "a") as f:
        f.write("000  1.0 s\nresnet-lightning: warning: not an epoch line\n")
    echo()
    echo()
    assert console.getvalue() == "search: trial 7 epoch 1/3  val/acc 0.5000  1.0 s\n"
    console.close()  # the console is gone
    with open(log, "a") as f:
        f.write("resnet-lightning: epoch 2/3  val/acc 0.6000  1.0 s\n")
    echo()  # does not raise
    assert not echo._on


@pytest.mark.parametrize("name, shown", [("trial-0012", "trial 12"), ("variant-a-seed-1", "variant-a-seed-1")])
def test_the_prefix_names_the_trial(tmp_path: Path, name: str, shown: str) -> None:
    from resnet_lightning.search.epoch_echo import trial_name

    assert trial_name(tmp_path / f"{name}.log") == shown
