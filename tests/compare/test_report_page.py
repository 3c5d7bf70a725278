"""A comparison's HTML report: `resnet-lightning report DIR` on a real finished comparison, opened in headless Chromium.

The comparison is real (basic and plain at depth 8 over two seeds, and a variant whose fits fail
at build), run by the real command; the page is checked in a real browser as the run and search
reports are (tests/test_report.py).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from resnet_lightning.tracking.compare import log_comparison_to_wandb
from tests.fixtures_cli import run_cli
from tests.search.helpers import ENV
from tests.test_report import check_page

from .helpers import compare, read_csv, tiny_comparison

HEADINGS = ["test/acc", "Curves and intervals", "How to read it", "Runs", "The comparison"]
VARIANTS = {"basic": {"model.block": "basic"}, "plain": {"model.block": "plain"},
            "broken": {"model.block": "basic", "model.arch_kwargs.depth": 9}}  # parses; cifar_resnet refuses it at build


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A finished comparison (two of its six runs failed), and its report written by the report command:
    (its output, the comparison's stderr)."""
    cwd = tmp_path_factory.mktemp("compare-report")
    config = tiny_comparison(cwd / "tiny.yaml", variants=VARIANTS, metrics=["test/acc"])
    done = compare("--config", str(config), cwd=cwd)
    assert done.returncode == 1 and "2 of 6 runs failed" in done.stderr, done.stderr[-4000:]
    output = cwd / "compare" / "tiny"
    reported = run_cli("report", str(output), cwd=cwd, env=ENV)
    assert reported.returncode == 0, reported.stderr[-3000:]
    assert reported.stderr.strip().splitlines()[-1] == f"resnet-lightning: report: {output / 'report.html'}"
    return output, done.stderr


@pytest.fixture(scope="module")
def output(finished: tuple[Path, str]) -> Path:
    return finished[0]


def test_a_failing_variant_is_reported_and_the_others_complete(finished: tuple[Path, str]) -> None:
    output, stderr = finished
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("resnet-lightning: error: compare: 2 of 6 runs failed, e.g. broken seed 0: ") and "depth=9" in last, last
    assert "run the same command again" in last
    runs = read_csv(output / "runs.csv")
    assert sorted(r["state"] for r in runs) == ["COMPLETE"] * 4 + ["FAIL"] * 2
    assert all("depth=9" in r["fail_reason"] for r in runs if r["state"] == "FAIL")
    summary = {r["variant"]: r for r in read_csv(output / "summary.csv")}
    assert summary["plain"]["verdict"] != "too few paired seeds" and summary["plain"]["p_value"] != ""
    assert summary["broken"]["seeds"] == "" and summary["broken"]["verdict"] == "too few paired seeds"
    assert "broken seed 1 (trial" in (output / "report.md").read_text()


def test_the_page_loads_whole_in_a_browser_with_the_comparisons_own_pictures(output: Path, tmp_path: Path) -> None:
    page = output / "report.html"
    parsed, _ = check_page(page, tmp_path, HEADINGS, min_images=2)
    embedded = [base64.b64decode(img["src"].split(",", 1)[1]) for img in parsed.images]
    assert embedded == [(output / "curves.png").read_bytes(), (output / "summary.png").read_bytes()]
    assert "<h1>Comparison tiny</h1>" in page.read_text()


def test_the_summary_table_holds_summary_csvs_numbers(output: Path) -> None:
    text = (output / "report.html").read_text()
    assert "<th>mean [95% CI]</th><th>sd</th><th>difference to basic [95% CI]</th>" in text
    rows = {r["variant"]: r for r in read_csv(output / "summary.csv")}
    basic, plain = rows["basic"], rows["plain"]
    mean = f"{float(basic['mean']):.4g} [{float(basic['ci_low']):.4g}, {float(basic['ci_high']):.4g}]"
    assert f"<tr><td>basic</td><td>2</td><td>{mean}</td>" in text
    difference = (f"{float(plain['difference']):.4g} [{float(plain['difference_ci_low']):.4g}, "
                  f"{float(plain['difference_ci_high']):.4g}]</td><td>{float(plain['p_value']):.3g}</td>"
                  f"<td>{float(plain['p_value_bh']):.3g}</td><td>{plain['verdict']}</td>")
    assert "<tr><td>plain</td><td>2</td>" in text and difference in text
    assert "<tr><td>broken</td><td>-</td><td>-</td><td>-</td><td>-</td><td>-</td><td>-</td><td>too few paired seeds</td>" in text


def test_the_runs_table_links_each_runs_own_report_and_says_why_runs_failed(output: Path) -> None:
    text = (output / "report.html").read_text()
    runs = read_csv(output / "runs.csv")
    links = re.findall(r'<a href="([^"]+)">report</a>', text)
    finished = [r for r in runs if r["state"] == "COMPLETE"]
    assert len(finished) == 4 and len(links) == 4
    assert sorted((output / link).resolve() for link in links) == sorted(Path(r["run_dir"]) / "report.html" for r in finished)
    assert all(not link.startswith("/") for link in links)  # relative: the directory can move
    failed = [r for r in runs if r["state"] == "FAIL"]
    assert len(failed) == 2
    for row in failed:
        assert re.search(rf"<tr><td>broken</td><td>{row['seed']}</td><td>FAIL</td>.*depth=9", text)


def test_the_notes_and_the_comparisons_definition_are_there(output: Path) -> None:
    text = (output / "report.html").read_text()
    assert "<strong>p (BH)</strong>" in text and "<code>scipy.stats.ttest_rel</code>" in text and "**" not in text
    assert "<tr><td>basic (baseline)</td><td>model.block: basic</td></tr>" in text
    assert "<tr><td>broken</td><td>model.block: basic, model.arch_kwargs.depth: 9</td></tr>" in text
    assert "model.arch: cifar_resnet" in text and "digits.yaml" in text


def test_without_a_wandb_logger_nothing_goes_to_wandb(output: Path) -> None:
    assert log_comparison_to_wandb(output) is None
    assert not (output / "wandb").exists()


def test_running_it_again_retries_only_the_failed_runs_and_counts_each_once(finished: tuple[Path, str]) -> None:
    output, _ = finished  # last in this module: it rewrites the outputs
    again = compare("--config", str(output.parents[1] / "tiny.yaml"), cwd=output.parents[1])
    assert again.returncode == 1
    assert "4 run(s) finished, 2 queued now" in again.stderr
    assert again.stderr.strip().splitlines()[-1].startswith("resnet-lightning: error: compare: 2 of 6 runs failed")
