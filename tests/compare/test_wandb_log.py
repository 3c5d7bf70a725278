"""A comparison whose fits log to W&B gets one more W&B run: its pictures and tables, read back from the offline run.

The comparison is real (basic and plain at depth 8 over two seeds, every fit with a WandbLogger,
WANDB_MODE=offline); the runs are read back with wandb's own reader (``wandb leet inspect``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from resnet_lightning.tracking import read_offline_run
from tests.search.helpers import DIGITS

from .helpers import compare, read_csv, tiny_comparison


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A finished comparison whose base configs give every fit a WandbLogger: (its output, the command's stderr)."""
    cwd = tmp_path_factory.mktemp("compare-wandb")
    logger = cwd / "wandb.yaml"
    logger.write_text(yaml.safe_dump({"trainer": {"logger": {"class_path": "lightning.pytorch.loggers.WandbLogger",
                                                             "init_args": {"log_model": False}}}}))
    config = tiny_comparison(cwd / "tiny.yaml", configs=[str(DIGITS), str(logger)], metrics=["test/acc"])
    done = compare("--config", str(config), cwd=cwd)  # WANDB_MODE=offline (tests.search.helpers.ENV)
    assert done.returncode == 0, done.stderr[-4000:]
    return cwd / "compare" / "tiny", done.stderr


@pytest.fixture(scope="module")
def output(finished: tuple[Path, str]) -> Path:
    return finished[0]


@pytest.fixture(scope="module")
def logged(finished: tuple[Path, str]) -> tuple[Path, str]:
    """The comparison's W&B run, which the command logged offline at its end: (its directory, its console line)."""
    lines = [line for line in finished[1].splitlines() if "W&B" in line]
    assert len(lines) == 1, finished[1][-3000:]
    run_dir = Path(lines[0].split("offline run ", 1)[1].split(" (upload", 1)[0])
    return run_dir, lines[0] + "\n"


def test_the_run_is_a_compare_job_grouped_by_the_comparison_in_the_fits_project(output: Path, logged: tuple[Path, str]) -> None:
    run_dir, console = logged
    assert run_dir.parent == (output / "wandb").resolve() and run_dir.name.startswith("offline-run-")
    run = read_offline_run(run_dir)
    fit_config = yaml.safe_load((Path(read_csv(output / "runs.csv")[0]["run_dir"]) / "config.yaml").read_text())
    project = fit_config["trainer"]["logger"]["init_args"]["project"]
    assert project == "resnet-lightning-digits" and run.project == project
    assert (run.job_type, run.group, run.state) == ("compare", "tiny", "finished")
    assert run.config["definition"]["variants"] == {"basic": {"model.block": "basic"}, "plain": {"model.block": "plain"}}
    # W&B's banner is one line: where the run is and how to upload it.
    assert console.strip().splitlines() == [f"resnet-lightning: W&B: offline run {run_dir} (upload it with `wandb sync {run_dir}`)"]


def test_the_pictures_are_the_comparisons_pngs(output: Path, logged: tuple[Path, str]) -> None:
    run = read_offline_run(logged[0])
    assert run.metric_keys() == {"compare/curves", "compare/summary", "compare/summary_table", "compare/runs_table"}
    (row,) = run.history
    for key, name in (("compare/curves", "curves.png"), ("compare/summary", "summary.png")):
        assert row[f"{key}._type"] == "image-file"
        assert row[f"{key}.sha256"] == hashlib.sha256((output / name).read_bytes()).hexdigest()
        assert row[f"{key}.path"] in run.files


def test_the_tables_hold_summary_csv_and_runs_csv(output: Path, logged: tuple[Path, str]) -> None:
    run_dir = logged[0]
    row = read_offline_run(run_dir).history[0]
    for key, name in (("compare/summary_table", "summary.csv"), ("compare/runs_table", "runs.csv")):
        table = json.loads((run_dir / "files" / row[f"{key}.path"]).read_text())
        expected = read_csv(output / name)
        assert table["columns"] == list(expected[0])
        assert len(table["data"]) == len(expected)
        for got, want in zip(table["data"], expected):
            for value, text in zip(got, want.values()):  # typed back: numbers as numbers, empty cells as None
                if text == "":
                    assert value is None
                elif isinstance(value, str):
                    assert value == text
                else:
                    assert value == pytest.approx(float(text))


def test_every_runs_own_wandb_run_is_grouped_by_the_comparison(output: Path) -> None:
    for row in read_csv(output / "runs.csv"):
        runs = [read_offline_run(d) for d in Path(row["run_dir"]).glob("**/offline-run-*")]  # the fit's, its test's
        assert runs and {run.group for run in runs} == {"tiny"}, [(r.group, r.job_type) for r in runs]
