"""Real comparisons on digits: every run a fit and a test, results over seeds, resumed without repeating a run."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from .helpers import compare, fit_runs, read_csv, start_compare, tiny_comparison


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path, str]:
    """One comparison of basic and plain (depth 8) over two seeds, run to its end: (directory, output, its stderr)."""
    cwd = tmp_path_factory.mktemp("compare")
    config = tiny_comparison(cwd / "tiny.yaml")
    done = compare("--config", str(config), cwd=cwd)
    assert done.returncode == 0, done.stderr[-4000:]
    return cwd, cwd / "compare" / "tiny", done.stderr


def test_every_variant_and_seed_is_a_fit_and_a_test(finished):
    _, output, stderr = finished
    runs = read_csv(output / "runs.csv")
    assert sorted((r["variant"], r["seed"]) for r in runs) == [("basic", "0"), ("basic", "1"), ("plain", "0"), ("plain", "1")]
    assert all(r["state"] == "COMPLETE" for r in runs)
    for r in runs:
        run_dir = Path(r["run_dir"])
        assert run_dir.parent.name == f"digits-cifar_resnet-{r['variant']}-d8"
        tested = list((run_dir / "test").glob("version_*/metrics.csv"))
        assert len(tested) == 1  # the test of its best checkpoint, in the run's own directory
        logged = read_csv(tested[0])[-1]
        assert float(logged["test/acc"]) == pytest.approx(float(r["test/acc"]))
        assert 0.5 < float(r["test/acc"]) <= 1 and 0 < float(r["train/acc"]) <= 1
        assert int(r["macs"]) > 0 and int(r["params"]) > 0 and float(r["images_per_sec"]) > 0
    # Seeds differ within a variant (seed_everything per run), so their fits differ.
    basic = [r for r in runs if r["variant"] == "basic"]
    assert basic[0]["train/acc"] != basic[1]["train/acc"]
    assert "compare: basic: test/acc" in stderr and "compare: plain: test/acc" in stderr and "baseline" in stderr


def test_intervals_and_paired_test_are_scipys_on_the_same_numbers(finished):
    _, output, _ = finished
    runs = read_csv(output / "runs.csv")
    summary = {(r["variant"], r["metric"]): r for r in read_csv(output / "summary.csv")}
    for metric in ("test/acc", "train/acc"):
        value = {(r["variant"], int(r["seed"])): float(r[metric]) for r in runs}
        basic = np.array([value[("basic", s)] for s in (0, 1)])
        plain = np.array([value[("plain", s)] for s in (0, 1)])
        for name, x in (("basic", basic), ("plain", plain)):
            row = summary[(name, metric)]
            assert int(row["seeds"]) == 2 and float(row["mean"]) == pytest.approx(x.mean())
            assert float(row["std"]) == pytest.approx(x.std(ddof=1))
            if x.std() > 0:
                low, high = stats.ttest_1samp(x, 0).confidence_interval(0.95)
                assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx((low, high))
        row = summary[("plain", metric)]
        assert float(row["difference"]) == pytest.approx((plain - basic).mean())
        if np.std(plain - basic) > 0:
            paired = stats.ttest_rel(plain, basic)
            low, high = paired.confidence_interval(0.95)
            assert float(row["p_value"]) == pytest.approx(paired.pvalue)
            assert (float(row["difference_ci_low"]), float(row["difference_ci_high"])) == pytest.approx((low, high))
            shown = low > 0 or high < 0
            assert row["verdict"] == ("no difference shown" if not shown else ("higher (shown)" if low > 0 else "lower (shown)"))
        assert summary[("basic", metric)]["verdict"] == "baseline"
        assert float(row["macs"]) > 0 and float(row["images_per_sec"]) > 0


def test_report_and_pictures(finished):
    _, output, _ = finished
    report = (output / "report.md").read_text()
    assert "![training and validation error per epoch](curves.png)" in report and "(summary.png)" in report
    assert "| basic | 2 |" in report and "| plain | 2 |" in report and "ttest_rel" in report
    # Real PNGs of the figures' sizes (inches x dpi), with more than one colour drawn.
    for name, size in (("curves.png", (1210, 462)), ("summary.png", (825, 528))):
        with Image.open(output / name) as image:
            assert image.format == "PNG" and image.size == size
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 20


def test_a_second_run_repeats_nothing_and_more_seeds_run_only_the_new_ones(finished):
    cwd, output, _ = finished
    before = fit_runs(output)
    again = compare("--config", "tiny.yaml", cwd=cwd)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 run(s) finished, 0 queued now" in again.stderr and fit_runs(output) == before
    more = compare("--config", "tiny.yaml", "--seeds", "3", cwd=cwd)
    assert more.returncode == 0, more.stderr[-3000:]
    assert "4 run(s) finished, 2 queued now" in more.stderr
    assert len(fit_runs(output)) == 6
    assert {r["seeds"] for r in read_csv(output / "summary.csv")} == {"3"}
    shown = compare("--summary", str(output), cwd=cwd)
    assert shown.returncode == 0 and "over 3 seeds" in shown.stderr and "trial" not in shown.stderr


def test_a_killed_comparison_resumed_runs_only_the_missing_fits(tmp_path):
    config = tiny_comparison(tmp_path / "tiny.yaml")
    worker = start_compare("--config", str(config), cwd=tmp_path)
    lines = []
    for line in worker.stdout:  # until the first run has finished and the second has started
        lines.append(line)
        if "(log " in line and any(" COMPLETE: " in seen for seen in lines):
            break
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and the fit it had started
    worker.wait(timeout=30)
    finished_line = next((line for line in lines if " COMPLETE: " in line), None)
    assert finished_line is not None, "".join(lines)[-3000:]
    first = finished_line.split("run ")[-1].rstrip(")\n")
    resumed = compare("--config", str(config), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "1 run(s) finished" in resumed.stderr and "left running by a killed worker on this host: FAIL, queued again" in resumed.stderr
    started = [line for line in resumed.stderr.splitlines() if "(log " in line]
    assert len(started) == 3, resumed.stderr  # the three missing runs, not the finished one
    runs = read_csv(tmp_path / "compare" / "tiny" / "runs.csv")
    assert len(runs) == 4 and all(r["state"] == "COMPLETE" for r in runs)
    assert first in {r["run_dir"] for r in runs}  # the run finished before the kill is the one reported


def test_a_metric_the_runs_do_not_log_ends_the_comparison_after_the_first_run(tmp_path):
    config = tiny_comparison(tmp_path / "tiny.yaml", metrics=["test/accuracy"])
    done = compare("--config", str(config), cwd=tmp_path)
    assert done.returncode == 2  # a metric misspelt in the comparison file: its mistake, as in a search
    err = done.stderr.strip().splitlines()
    assert err[-1].startswith("resnet-lightning: error: ") and "'test/accuracy'" in err[-1] and "test/acc" in err[-1], err[-1]
    assert len([line for line in err if "(log " in line]) == 1  # one run, not four


def test_two_workers_on_one_comparison_share_its_runs(tmp_path):
    config = tiny_comparison(tmp_path / "tiny.yaml")
    workers = [start_compare("--config", str(config), cwd=tmp_path) for _ in range(2)]
    outs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outs
    started = [line for out in outs for line in out.splitlines() if "(log " in line]
    assert len(started) == 4, outs  # each run started once, by one worker or the other
    output = tmp_path / "compare" / "tiny"
    assert len(fit_runs(output)) == 4  # no run twice
    assert [r["state"] for r in read_csv(output / "runs.csv")] == ["COMPLETE"] * 4
